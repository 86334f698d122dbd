"""Background jobs (dataset-wide suggestions) on a thread of the serving process, one at a time.

The thread itself never runs torch: a job's forward passes go to the model thread through the
predictor cache, so they queue with detect requests instead of starting a second OpenMP team
(see connector.inference.model_thread).
"""
from __future__ import annotations

from typing import Callable

from model_store import Store

from ..services import jobs
from .identity import is_dead_here, process_id
from .run_watch import watched
from .serial import CancelSignal, SerialRunner


def job_runner(store: Store, config: dict, execute: Callable[[int, CancelSignal, str], None]) -> SerialRunner:
    """`execute(job_id, cancel, worker)` does one job and writes its outcome to the job row."""
    def run(job_id: int, cancel: CancelSignal) -> None:
        with watched(lambda: jobs.heartbeat(store, job_id), cancel, config["jobs"]["heartbeat_seconds"]):
            execute(job_id, cancel, process_id())

    return SerialRunner("jobs", run, lambda: jobs.recover(store, is_dead_here), jobs.INTERRUPTED)
