"""Training runs and background jobs on Celery workers over Redis, when `jobs.broker_url` is set.

The API queues a run's (or a dataset suggestion job's) id on the `jobs.queue` queue
(CeleryRunner, the same face as the embedded runners); `odconnect worker` takes one at a time
(solo pool) and does it with the same service code. Progress, the cancel flag and the heartbeat live in the database, so any
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

from typing import Callable

from celery import Celery

from model_store import Store

from ..services import jobs, training, workers
from .identity import is_dead_here, process_id
from .run_watch import watched
from .serial import CancelSignal

log = logging.getLogger("odconnect.jobs")
TRAIN_TASK = "odconnect.train"
SUGGEST_TASK = "odconnect.suggest"


def celery_app(config: dict) -> Celery:
    jobs_cfg = config["jobs"]
    app = Celery("odconnect", broker=jobs_cfg["broker_url"], set_as_current=False)
    app.conf.update(task_default_queue=jobs_cfg["queue"], task_acks_late=True, worker_prefetch_multiplier=1,
                    task_reject_on_worker_lost=False, broker_connection_retry_on_startup=True,
                    worker_hijack_root_logger=False, task_ignore_result=True)
    return app


class CeleryRunner:
    """What the API uses instead of an embedded runner when a broker is configured: `submit`
    queues the id for a worker; `cancel` has nothing to send, since the worker watches the cancel
    flag the cancel service sets in the database."""

    def __init__(self, config: dict, task: str, recover: Callable[[], list[int]]):
        self.config, self.task, self.recover = config, task, recover
        self.app = celery_app(config)

    def start(self) -> None:
        for item in self.recover():
            self.submit(item)  # a duplicate of a message still in the broker is harmless (see above)

    def submit(self, item: int) -> None:
        self.app.send_task(self.task, args=[item], queue=self.config["jobs"]["queue"])

    def cancel(self, item: int) -> None:
        pass

    def close(self) -> None:
        self.app.close()


def celery_runners(store: Store, config: dict) -> tuple[CeleryRunner, CeleryRunner]:
    """(training runs, background jobs) on the broker."""
    return (CeleryRunner(config, TRAIN_TASK, lambda: training.recover(store, is_dead_here)),
            CeleryRunner(config, SUGGEST_TASK, lambda: jobs.recover(store, is_dead_here)))


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


class InlineRuns:
    """Training runs a job starts inside a worker (a labeling model) train right there, in the
    task's thread: waiting for another worker could wait forever with only one."""

    def __init__(self, train: Callable[[int], None]):
        self.train = train

    def submit(self, run_id: int) -> None:
        self.train(run_id)

    def cancel(self, run_id: int) -> None:
        pass  # the run's cancel flag, set by the job's cancel, is watched while it trains


def run_worker(config: dict, device: str, loglevel: str = "INFO") -> None:
    """`odconnect worker`: train queued runs and run background jobs, one at a time, until stopped."""
    from ..inference.cache import PredictorCache
    from ..inference.model_thread import ModelThread
    from ..services import dataset_suggestions
    from ..services.engine_choice import predictor_loader
    from ..services.inference import publish

    if config["jobs"]["worker_threads"]:
        import torch  # the solo pool trains in this (the main) thread, which the setting applies to
        torch.set_num_threads(int(config["jobs"]["worker_threads"]))
    store = Store(config["storage"]["database_url"], config["storage"]["root"])
    app = celery_app(config)
    worker_id = process_id()
    every = config["jobs"]["heartbeat_seconds"]
    beat = WorkerBeat(store, worker_id, device, every)
    model_thread = ModelThread()
    threads = config["jobs"]["worker_threads"] or config["inference"]["torch_threads"]  # the gate's scoring too
    scoring = {**config, "inference": {**config["inference"], "torch_threads": threads}}
    predictors = PredictorCache(predictor_loader(store, scoring, model_thread), config["inference"]["cache_size"])

    def train_run(run_id: int) -> None:
        cancel = CancelSignal()
        with watched(lambda: training.heartbeat(store, run_id), cancel, every):
            training.execute_run(store, config, run_id, cancel, worker_id, device=device,
                                 publish=lambda model_id, number: publish(
                                     store, scoring, model_thread, predictors, model_id, number))

    @app.task(name=TRAIN_TASK)
    def train(run_id: int) -> None:
        beat.current = run_id
        try:
            train_run(run_id)
        finally:
            beat.current = None

    @app.task(name=SUGGEST_TASK)
    def suggest(job_id: int) -> None:
        cancel = CancelSignal()
        with watched(lambda: jobs.heartbeat(store, job_id), cancel, every):
            dataset_suggestions.execute(store, config, predictors, InlineRuns(train_run), job_id, cancel, worker_id)

    beat.start()
    try:
        app.worker_main(["worker", "--queues", config["jobs"]["queue"], "--pool", "solo", "--concurrency", "1",
                         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", loglevel,
                         "--hostname", f"odconnect-{worker_id.replace(':', '-')}@%h"])
    finally:
        beat.stop()
        predictors.close()
        model_thread.close()
        store.dispose()
