"""The worker that executes background jobs (dataset-wide suggestions), with a cancel signal per job.

Jobs run one at a time, on a thread that exits when the queue is empty, like training runs
(connector.jobs.runs). The worker thread itself never runs torch: its forward passes go to the
model thread through the predictor cache, so they queue with detect requests instead of
starting a second OpenMP team (see connector.inference.model_thread).
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import Future
from typing import Callable

from model_store import Store

from ..services import jobs
from .runs import CancelSignal

log = logging.getLogger("odconnect.jobs")


class JobRunner:
    def __init__(self, store: Store, execute: Callable[[int, CancelSignal], None]):
        """`execute(job_id, cancel)` does one job and writes its outcome to the job row."""
        self.store, self.execute = store, execute
        self.queue: deque[tuple[int, CancelSignal, Future]] = deque()
        self.worker: threading.Thread | None = None
        self.cancel_events: dict[int, CancelSignal] = {}
        self.futures: dict[int, Future] = {}
        self.lock = threading.Lock()
        self.closed = False

    def start(self) -> None:
        """Recover the store after a restart and queue again what was waiting."""
        for job_id in jobs.recover(self.store):
            self.submit(job_id)

    def submit(self, job_id: int) -> None:
        with self.lock:
            if self.closed:
                return  # still queued in the store: the next start picks it up
            event = self.cancel_events.setdefault(job_id, CancelSignal())
            future: Future = Future()
            self.futures[job_id] = future
            self.queue.append((job_id, event, future))
            if self.worker is None:
                self.worker = threading.Thread(target=self._drain, name="jobs", daemon=True)
                self.worker.start()

    def _drain(self) -> None:
        while True:
            with self.lock:
                if not self.queue or self.closed:
                    self.worker = None  # decided under the lock: a submit now starts a new worker
                    return
                job_id, event, future = self.queue.popleft()
            if future.set_running_or_notify_cancel():
                try:
                    self.execute(job_id, event)
                    future.set_result(None)
                except BaseException as exc:  # the future carries it to whoever waits
                    future.set_exception(exc)
            with self.lock:
                self.cancel_events.pop(job_id, None)
                self.futures.pop(job_id, None)

    def cancel(self, job_id: int) -> None:
        with self.lock:
            event = self.cancel_events.get(job_id)
        if event is not None:
            event.fire()

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        """Block until a job's worker is done with it (tests use this)."""
        with self.lock:
            future = self.futures.get(job_id)
        if future is not None:
            future.result(timeout=timeout)

    def close(self) -> None:
        """Stop: the running job is failed (a restart cannot resume it), waiting ones stay queued."""
        if self.closed:
            return
        with self.lock:
            self.closed = True
            events = list(self.cancel_events.values())
            waiting = [future for _, _, future in self.queue]
            self.queue.clear()
            worker = self.worker
        for future in waiting:
            future.cancel()
        for event in events:
            event.fire("failed", jobs.INTERRUPTED)
        if worker is not None:
            worker.join()
