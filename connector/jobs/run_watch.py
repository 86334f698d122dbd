"""While a run trains (or a job runs): keep its heartbeat fresh and pass on a cancel asked for in
the database.

Cancel requests and heartbeats go through the database because the process that does the work
may be another one than the API process that was asked (a Celery worker on another machine).
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

log = logging.getLogger("odconnect.jobs")


@contextmanager
def watched(beat: Callable[[], bool], cancel, every_s: float) -> Iterator[None]:
    """Call `beat()` every `every_s` seconds while the block runs; it records the heartbeat and
    returns whether a cancel was asked for, which fires `cancel`."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            try:
                if beat() and not cancel.is_set():
                    cancel.fire()
            except Exception:  # a missed beat is retried; the reaper only acts after many
                log.exception("heartbeat failed")

    thread = threading.Thread(target=loop, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
