"""The production worker: one background thread that writes what detect handed over.

Detect calls `observe` once its answer is computed. `observe` adds to the monitoring figures in
memory and, when the model's (cached) capture setting wants the image, puts it on a bounded
queue without waiting: when the queue is full (in items or in bytes) the capture is dropped and
counted. It never raises and never touches the store, except to refresh a model's cached
capture setting (at most once per ``capture.settings_ttl_seconds``).

The thread writes the queued captures (blob, rows, cap), every ``monitoring.flush_seconds`` adds
the counted figures to the store and runs the drift test on them, and every
``capture.purge_interval_seconds`` purges captured images past their model's retention. It runs
beside the model thread, so it keeps its own work small: the image was decoded by detect
already, and only its header is read again.
"""
from __future__ import annotations

import datetime as dt
import logging
import queue
import random
import threading
import time
from collections import Counter, defaultdict

from model_store import Store
from model_store.schema import utcnow

from ..services import capture, monitoring
from ..services.production import Served

log = logging.getLogger("odconnect.capture")


class ProductionWorker:
    def __init__(self, store: Store, config: dict):
        self.store = store
        self.config = config
        ccfg, self.mcfg = config["capture"], config["monitoring"]
        self.defaults = capture.CaptureSettings.defaults(ccfg)
        self.settings = capture.SettingsCache(store, self.defaults, float(ccfg["settings_ttl_seconds"]))
        self.figures = monitoring.Figures()
        self.queue: queue.Queue[Served] = queue.Queue(maxsize=max(1, int(ccfg["queue_size"])))
        self.max_bytes = int(ccfg["queue_max_bytes"])
        self.flush_seconds = float(self.mcfg["flush_seconds"])
        self.purge_seconds = float(ccfg["purge_interval_seconds"])
        seed = int(ccfg["sample_seed"])
        self._rng = random.Random(None if seed < 0 else seed)
        self._rng_lock = threading.Lock()
        self._queued_bytes = 0
        self._outcomes: dict[int, Counter] = defaultdict(Counter)
        self._small = threading.Lock()  # byte count, outcomes, cleared
        self._flush_lock = threading.Lock()
        self._cleared: dict[int, dt.datetime] = {}
        # Held while captures are written and while review operations change captured images.
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="production-worker", daemon=True)

    def start(self) -> None:
        self.thread.start()

    # --- the request path -------------------------------------------------------------------------
    def observe(self, served: Served) -> None:
        """Count the answer and maybe queue the image for capture. Never raises, never waits."""
        try:
            if self.mcfg["enabled"]:
                self.figures.add(served)
            settings = self.settings.get(served.model_id)
            if settings.mode != "off" and capture.wanted(served, settings, self._draw):
                self._offer(served)
        except Exception:  # capture and monitoring must never fail a detect
            log.exception("could not hand over an image of model %s", served.model_id)

    def _draw(self) -> float:
        with self._rng_lock:
            return self._rng.random()

    def _offer(self, served: Served) -> None:
        size = len(served.data)
        with self._small:
            room = self._queued_bytes + size <= self.max_bytes and not self.stopping.is_set()
            if room:
                self._queued_bytes += size
        if room:
            try:
                self.queue.put_nowait(served)
                return
            except queue.Full:
                with self._small:
                    self._queued_bytes -= size
        self._count(served.model_id, "dropped")

    def _count(self, model_id: int, outcome: str) -> None:
        with self._small:
            self._outcomes[model_id][outcome] += 1

    # --- what the API asks of it ----------------------------------------------------------------
    def counts_of(self, model_id: int) -> dict:
        """Capture outcomes of a model since this process started: kept, duplicate, evicted, dropped, failed."""
        with self._small:
            return dict(self._outcomes.get(model_id, {}))

    def clear(self, model_id: int) -> None:
        """Captures of the model still queued now are not written (delete-all means all)."""
        with self._small:
            self._cleared[model_id] = utcnow()

    def flush(self) -> list[int]:
        """Write the counted figures and test them for drift; returns the attention events made."""
        with self._flush_lock:
            taken = self.figures.take()
            try:
                keys = monitoring.flush(self.store, taken)
            except Exception:
                self.figures.put_back(taken)
                log.exception("could not write the monitoring figures; kept for the next flush")
                return []
            try:
                return monitoring.check_drift(self.store, self.mcfg, keys)
            except Exception:
                log.exception("drift check failed")
                return []

    def purge(self) -> int:
        with self.lock:
            try:
                return capture.purge_expired(self.store, self.defaults)
            except Exception:
                log.exception("purging expired captures failed")
                return 0

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Until every queued capture is written (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while self.queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    # --- the thread ------------------------------------------------------------------------------
    def _write(self, served: Served) -> None:
        try:
            with self._small:
                self._queued_bytes -= len(served.data)
            settings = self.settings.get(served.model_id)
            if settings.mode == "off":  # turned off while it waited
                return
            with self.lock:  # a delete-all holds it too: it either sees this image or clears it
                with self._small:
                    cleared = self._cleared.get(served.model_id)
                if cleared is not None and served.at <= cleared:
                    return
                outcome, evicted = capture.keep(self.store, served, settings)
            with self._small:
                counts = self._outcomes[served.model_id]
                counts["evicted"] += evicted  # every image the cap removed, the new one included
                if outcome != "evicted":
                    counts[outcome] += 1
        except Exception:
            log.exception("could not keep a captured image of model %s", served.model_id)
            self._count(served.model_id, "failed")
        finally:
            self.queue.task_done()

    def _loop(self) -> None:
        now = time.monotonic()
        next_flush, next_purge = now + self.flush_seconds, now + min(self.purge_seconds, 5.0)
        while not self.stopping.is_set():
            wait = max(0.0, min(next_flush, next_purge, time.monotonic() + 0.5) - time.monotonic())
            try:
                self._write(self.queue.get(timeout=wait))
            except queue.Empty:
                pass
            now = time.monotonic()
            if now >= next_flush:
                self.flush()
                next_flush = now + self.flush_seconds
            if now >= next_purge:
                self.purge()
                next_purge = now + self.purge_seconds

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking captures, write those queued (for at most `timeout` s) and the figures."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._write(self.queue.get_nowait())
            except queue.Empty:
                break
        self.flush()
