"""Runs queued work (training runs, background jobs) one at a time on a thread of this process.

One at a time: detectron2 keeps its training event storage and the seeded RNGs process-wide, so
two runs in one process would corrupt each other's metrics and reproducibility; and every
forward pass goes to the one model thread anyway. Not a long-lived pool: the thread exits when
the queue is empty, because the OpenMP worker threads torch starts for a thread live as long as
that thread, and an idle team left behind would slow every later detect (see
connector.inference.model_thread).
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import Future
from typing import Callable

log = logging.getLogger("odconnect.jobs")


class CancelSignal(threading.Event):
    """A cancel event that also says why, so a shutdown is not recorded as a user's cancel."""

    def __init__(self):
        super().__init__()
        self.status, self.reason = "canceled", "canceled by request"

    def fire(self, status: str = "canceled", reason: str = "canceled by request") -> None:
        self.status, self.reason = status, reason
        self.set()


class SerialRunner:
    """`execute(id, cancel)` does one item and records its outcome itself (it never raises for the
    item's own failures); `recover()` says, at start, which items wait to be queued again."""

    def __init__(self, name: str, execute: Callable[[int, CancelSignal], None], recover: Callable[[], list[int]],
                 shutdown_reason: str):
        self.name, self.execute, self.recover, self.shutdown_reason = name, execute, recover, shutdown_reason
        self.queue: deque[tuple[int, CancelSignal, Future]] = deque()
        self.worker: threading.Thread | None = None
        self.cancel_events: dict[int, CancelSignal] = {}
        self.futures: dict[int, Future] = {}
        self.lock = threading.Lock()
        self.closed = False

    def start(self) -> None:
        for item in self.recover():
            self.submit(item)

    def submit(self, item: int) -> None:
        with self.lock:
            if self.closed:
                return  # still queued in the store: the next start picks it up
            event = self.cancel_events.setdefault(item, CancelSignal())
            future: Future = Future()
            self.futures[item] = future
            self.queue.append((item, event, future))
            if self.worker is None:
                self.worker = threading.Thread(target=self._drain, name=self.name, daemon=True)
                self.worker.start()

    def _drain(self) -> None:
        while True:
            with self.lock:
                if not self.queue or self.closed:
                    self.worker = None  # decided under the lock: a submit now starts a new worker
                    return
                item, event, future = self.queue.popleft()
            if future.set_running_or_notify_cancel():
                try:
                    self.execute(item, event)
                    future.set_result(None)
                except BaseException as exc:  # the future carries it to whoever waits
                    future.set_exception(exc)
            with self.lock:
                self.cancel_events.pop(item, None)
                self.futures.pop(item, None)

    def cancel(self, item: int) -> None:
        with self.lock:
            event = self.cancel_events.get(item)
        if event is not None:
            event.fire()

    def wait(self, item: int, timeout: float | None = None) -> None:
        """Block until an item's worker is done with it (tests and the CLI use this)."""
        with self.lock:
            future = self.futures.get(item)
        if future is not None:
            future.result(timeout=timeout)

    def close(self) -> None:
        """Stop: what runs is failed (a restart cannot resume it), what waits stays queued in the store."""
        if self.closed:
            return
        with self.lock:
            self.closed = True  # under the lock: a submit after this leaves its item queued in the store
            events = list(self.cancel_events.values())
            waiting = [future for _, _, future in self.queue]
            self.queue.clear()
            worker = self.worker
        for future in waiting:
            future.cancel()
        for event in events:
            event.fire("failed", self.shutdown_reason)
        if worker is not None:
            worker.join()
