"""Training on Celery workers over Redis, when `jobs.broker_url` is set.

The API queues a run's id on the `jobs.queue` queue (CeleryRunner, the same face as the
embedded RunManager); `odconnect worker` takes one run at a time (solo pool) and trains it with
the same service code. Progress, the cancel flag and the heartbeat live in the database, so any
API process can report, cancel and recover a run that any worker trains.

A message is acknowledged after the run (acks_late), so a run whose worker dies is offered again;
the second delivery finds the run no longer queued (it is training, or failed by the reaper) and
does nothing: a killed worker's run ends failed, never twice trained. Failing (instead of
queueing it again) is deliberate: a run that killed its worker (out of memory, say) would kill the
next one too, and the maker sees why and can start it again.
"""
from __future__ import annotations

import logging
import threading

from celery import Celery

from model_store import Store

from ..services import training, workers
from .identity import is_dead_here, process_id
from .run_watch import watched
from .runs import CancelSignal

log = logging.getLogger("odconnect.jobs")
TRAIN_TASK = "odconnect.train"


def celery_app(config: dict) -> Celery:
    jobs = config["jobs"]
    app = Celery("odconnect", broker=jobs["broker_url"], set_as_current=False)
    app.conf.update(task_default_queue=jobs["queue"], task_acks_late=True, worker_prefetch_multiplier=1,
                    task_reject_on_worker_lost=False, broker_connection_retry_on_startup=True,
                    worker_hijack_root_logger=False, task_ignore_result=True)
    return app


class CeleryRunner:
    """What the API uses instead of the embedded runner when a broker is configured."""

    def __init__(self, store: Store, config: dict):
        self.store, self.config = store, config
        self.app = celery_app(config)

    def start(self) -> None:
        for run_id in training.recover(self.store, is_dead_here):
            self.submit(run_id)  # a duplicate of a message still in the broker is harmless (see above)

    def submit(self, run_id: int) -> None:
        self.app.send_task(TRAIN_TASK, args=[run_id], queue=self.config["jobs"]["queue"])

    def cancel(self, run_id: int) -> None:
        """Nothing to send: the worker watches the run's cancel flag, set by the cancel service."""

    def close(self) -> None:
        self.app.close()


class WorkerBeat:
    """The worker's own heartbeat row (`workers` table), for /health and the metrics."""

    def __init__(self, store: Store, worker_id: str, device: str, every_s: float):
        self.store, self.worker_id, self.device, self.every = store, worker_id, device, every_s
        self.current: int | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        workers.beat(self.store, self.worker_id, self.device, None)
        threading.Thread(target=self._loop, name="worker-beat", daemon=True).start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                workers.beat(self.store, self.worker_id, self.device, self.current)
            except Exception:
                log.exception("worker heartbeat failed")

    def stop(self) -> None:
        self._stop.set()
        workers.gone(self.store, self.worker_id)


def run_worker(config: dict, device: str, loglevel: str = "INFO") -> None:
    """`odconnect worker`: train queued runs one at a time until stopped."""
    store = Store(config["storage"]["database_url"], config["storage"]["root"])
    app = celery_app(config)
    worker_id = process_id()
    beat = WorkerBeat(store, worker_id, device, config["jobs"]["heartbeat_seconds"])

    @app.task(name=TRAIN_TASK)
    def train(run_id: int) -> None:
        cancel = CancelSignal()
        beat.current = run_id
        try:
            with watched(store, run_id, cancel, config["jobs"]["heartbeat_seconds"]):
                training.execute_run(store, config, run_id, cancel, worker_id, device=device)
        finally:
            beat.current = None

    beat.start()
    try:
        app.worker_main(["worker", "--queues", config["jobs"]["queue"], "--pool", "solo", "--concurrency", "1",
                         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", loglevel,
                         "--hostname", f"odconnect-{worker_id.replace(':', '-')}@%h"])
    finally:
        beat.stop()
        store.dispose()
