"""The worker pool that executes training runs, with a cancel signal per run."""
from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import Future

from model_store import Store

from ..services import training
from .identity import is_dead_here, process_id
from .run_watch import watched

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
    """Runs queued training runs one at a time on a worker thread that exits when the queue is empty.

    One at a time: detectron2 keeps its training event storage and the seeded RNGs
    process-wide, so two runs in one process would corrupt each other's metrics and
    reproducibility. Not a long-lived pool: the OpenMP worker threads torch starts for a thread live as long as
    that thread, and an idle training team left behind would slow every later detect (see
    connector.inference.model_thread).
    """

    def __init__(self, store: Store, config: dict):
        self.store, self.config = store, config
        self.queue: deque[tuple[int, CancelSignal, Future]] = deque()
        self.worker: threading.Thread | None = None
        self.cancel_events: dict[int, CancelSignal] = {}
        self.futures: dict[int, Future] = {}
        self.lock = threading.Lock()
        self.closed = False

    def start(self) -> None:
        """Recover the store after a restart and queue again what was waiting."""
        for run_id in training.recover(self.store, is_dead_here):
            self.submit(run_id)

    def submit(self, run_id: int) -> None:
        with self.lock:
            if self.closed:
                return  # still queued in the store: the next start picks it up
            event = self.cancel_events.setdefault(run_id, CancelSignal())
            future: Future = Future()
            self.futures[run_id] = future
            self.queue.append((run_id, event, future))
            if self.worker is None:
                self.worker = threading.Thread(target=self._drain, name="train", daemon=True)
                self.worker.start()

    def _drain(self) -> None:
        while True:
            with self.lock:
                if not self.queue or self.closed:
                    self.worker = None  # decided under the lock: a submit now starts a new worker
                    return
                run_id, event, future = self.queue.popleft()
            if future.set_running_or_notify_cancel():
                try:
                    with watched(self.store, run_id, event, self.config["jobs"]["heartbeat_seconds"]):
                        training.execute_run(self.store, self.config, run_id, event, process_id())
                    future.set_result(None)
                except BaseException as exc:  # the future carries it to whoever waits
                    future.set_exception(exc)
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
        with self.lock:
            self.closed = True  # under the lock: a submit after this leaves its run queued in the store
            events = list(self.cancel_events.values())
            waiting = [future for _, _, future in self.queue]
            self.queue.clear()
            worker = self.worker
        for future in waiting:
            future.cancel()
        for event in events:
            event.fire("failed", "the server stopped while this run was training; start it again")
        if worker is not None:
            worker.join()
