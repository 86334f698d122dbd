"""The webhook dispatcher: a background thread that sends due deliveries from the store.

Deliveries live in the store, so a restart loses none: the dispatcher of the next
start finds them still pending (a delivery whose send was cut off is retried once its
lease ends). Sends run on a small pool so that one slow receiver does not hold up
the others. Each send checks its URL against the callback policy again (net_guard.py), connects to
the address that passed and follows no redirect.
"""
from __future__ import annotations

import http.client
import logging
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from model_store import Store
from model_store.schema import utcnow

from ..net_guard import CallbackPolicy, Refused
from ..services import webhooks as svc

log = logging.getLogger("odconnect.webhooks")


class _Pinned:
    """An HTTP(S) connection to one checked address; the Host header and TLS name stay the URL's host."""

    def __init__(self, address: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = lambda where, *a, **k: socket.create_connection((address, where[1]), *a, **k)


class _PinnedHTTP(_Pinned, http.client.HTTPConnection):
    pass


class _PinnedHTTPS(_Pinned, http.client.HTTPSConnection):
    pass


def send(url: str, body: bytes, headers: dict, timeout: float, policy: CallbackPolicy) -> tuple[str | None, bool]:
    """POST once. Returns (error or None, gone) where gone means the receiver answered 410.

    The URL is checked again here (its name may resolve elsewhere now) and the connection goes to an
    address that passed; http.client follows no redirect, so a 3xx answer is an error."""
    try:
        url, addresses = policy.check(url)
    except Refused as exc:
        return exc.detail, False
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    error = "no address to connect to"
    for address in addresses:
        if https:
            conn = _PinnedHTTPS(address, parts.hostname, port, timeout=timeout, context=ssl.create_default_context())
        else:
            conn = _PinnedHTTP(address, parts.hostname, port, timeout=timeout)
        try:
            try:
                conn.connect()
            except OSError as exc:  # refused, unreachable, TLS: try the host's next address
                error = f"{exc.__class__.__name__}: {exc}"
                continue
            conn.request("POST", target, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read(65536)
            if 200 <= resp.status < 300:
                return None, False
            return f"HTTP {resp.status} {resp.reason}", resp.status == 410
        except (OSError, http.client.HTTPException) as exc:  # timed out, reset, a broken answer: retried
            return f"{exc.__class__.__name__}: {exc}", False
        finally:
            conn.close()
    return error, False


class WebhookDispatcher:
    def __init__(self, store: Store, config: dict):
        self.store = store
        self.cfg = config["webhooks"]
        self.public_url = config["server"]["public_url"]
        # the one callback policy of the app: subscribing checks URLs with it too (api/webhooks.py)
        self.policy = CallbackPolicy.from_config(self.cfg)
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=max(1, int(self.cfg["workers"])),
                                       thread_name_prefix="webhook-send")
        self.thread = threading.Thread(target=self._loop, name="webhook-dispatch", daemon=True)
        self.inflight: set[int] = set()
        self.lock = threading.Lock()

    def start(self) -> None:
        svc.register_wakeup(self.store, self.wake)
        if self.cfg["enabled"]:
            self.thread.start()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self.wake.clear()  # before looking, so an emit during the look wakes the next wait
            try:
                self.dispatch_due()
            except Exception:  # the store may be busy or gone for a moment; try again later
                log.exception("webhook dispatch failed")
            self.wake.wait(self._sleep())

    def _sleep(self) -> float:
        poll = float(self.cfg["poll_seconds"])
        try:
            nxt = svc.next_due(self.store)
        except Exception:
            return poll
        if nxt is None:
            return poll
        return max(0.05, min(poll, (nxt - utcnow()).total_seconds()))

    def dispatch_due(self) -> int:
        """Claim and hand to the pool every due delivery; returns how many were handed over."""
        handed = 0
        for delivery_id in svc.due_ids(self.store):
            with self.lock:
                if delivery_id in self.inflight:
                    continue
            job = svc.claim(self.store, delivery_id, float(self.cfg["lease_seconds"]))
            if job is None or self.stopping.is_set():
                continue
            with self.lock:
                self.inflight.add(delivery_id)
            self.pool.submit(self._deliver, job)
            handed += 1
        return handed

    def _deliver(self, job: dict) -> None:
        try:
            body = svc.body_bytes(svc.with_public_links(job["payload"], self.public_url))
            headers = {"Content-Type": "application/json", "User-Agent": "odconnect-webhooks",
                       self.cfg["signature_header"]: svc.sign(job["secret"], body),
                       "X-Odconnect-Event": job["event"], "X-Odconnect-Delivery": str(job["id"])}
            error, gone = send(job["url"], body, headers, float(self.cfg["timeout_seconds"]), self.policy)
            status = svc.record_attempt(self.store, self.cfg, job["id"], error, gone)
            if error:
                log.warning("webhook delivery %s attempt %s to %s: %s (now %s)", job["id"], job["attempts"],
                            job["url"], error, status)
        except Exception:
            log.exception("webhook delivery %s failed", job["id"])
        finally:
            with self.lock:
                self.inflight.discard(job["id"])
            self.wake.set()  # a retry may now be due sooner than the poll

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Until nothing is due or being sent (tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                busy = bool(self.inflight)
            if not busy and not svc.due_ids(self.store, 1):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.wake.set()
        svc.register_wakeup(self.store, None)
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        self.pool.shutdown(wait=True, cancel_futures=True)
