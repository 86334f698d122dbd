"""While a run trains: keep its heartbeat fresh and pass on a cancel asked for in the database.

Cancel requests and heartbeats go through the database because the process that trains a run
may be another one than the API process that was asked (a Celery worker on another machine).
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Iterator

from model_store import Store

from ..services import training

log = logging.getLogger("odconnect.jobs")


@contextmanager
def watched(store: Store, run_id: int, cancel, every_s: float) -> Iterator[None]:
    """Beat every `every_s` seconds while the block runs; fire `cancel` when the run's cancel flag is set."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            try:
                if training.heartbeat(store, run_id) and not cancel.is_set():
                    cancel.fire()
            except Exception:  # a missed beat is retried; the reaper only acts after many
                log.exception("heartbeat of run %s failed", run_id)

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
