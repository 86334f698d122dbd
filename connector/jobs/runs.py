"""The worker pool that executes training runs, with a cancel signal per run."""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from model_store import Store

from ..services import training

log = logging.getLogger("odconnect.jobs")


class CancelSignal(threading.Event):
    """A cancel event that also says why, so a shutdown is not recorded as a user's cancel."""

    def __init__(self):
        super().__init__()
        self.status, self.reason = "canceled", "canceled by request"

    def fire(self, status: str = "canceled", reason: str = "canceled by request") -> None:
        self.status, self.reason = status, reason
        self.set()


class RunManager:
    def __init__(self, store: Store, config: dict):
        self.store, self.config = store, config
        workers = config["training"]["workers"]
        if workers != 1:
            # detectron2 keeps its training event storage and the seeded RNGs process-wide:
            # two runs in one process would corrupt each other's metrics and reproducibility.
            log.warning("training.workers=%s: runs share one process, so they train one at a time", workers)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="train")
        self.cancel_events: dict[int, CancelSignal] = {}
        self.futures: dict[int, Future] = {}
        self.lock = threading.Lock()
        self.closed = False

    def start(self) -> None:
        """Recover the store after a restart and queue again what was waiting."""
        for run_id in training.recover(self.store):
            self.submit(run_id)

    def submit(self, run_id: int) -> None:
        with self.lock:
            event = self.cancel_events.setdefault(run_id, CancelSignal())
            self.futures[run_id] = self.pool.submit(self._execute, run_id, event)

    def _execute(self, run_id: int, event: CancelSignal) -> None:
        try:
            training.execute_run(self.store, self.config, run_id, event)
        finally:
            with self.lock:
                self.cancel_events.pop(run_id, None)
                self.futures.pop(run_id, None)

    def cancel(self, run_id: int) -> None:
        with self.lock:
            event = self.cancel_events.get(run_id)
        if event is not None:
            event.fire()

    def wait(self, run_id: int, timeout: float | None = None) -> None:
        """Block until a run's worker is done (tests and the CLI use this)."""
        with self.lock:
            future = self.futures.get(run_id)
        if future is not None:
            future.result(timeout=timeout)

    def close(self) -> None:
        """Stop: cancel what runs (it is marked canceled), drop what waits (recovered on next start)."""
        if self.closed:
            return
        self.closed = True
        with self.lock:
            events = list(self.cancel_events.values())
        for event in events:
            event.fire("failed", "the server stopped while this run was training; start it again")
        self.pool.shutdown(wait=True, cancel_futures=True)
