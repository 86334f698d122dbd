"""Fails training runs (and background jobs) whose process was killed: their heartbeat stops, and after
`jobs.stale_after_seconds` the reaper, looking every `jobs.reaper_seconds`, marks them failed.

Every API process runs one; the update is conditional on the stale heartbeat, so two reapers
never fail a run twice, and a run that beats again in time is left alone.
"""
from __future__ import annotations

import logging
import threading

from model_store import Store

from ..services import jobs, training

log = logging.getLogger("odconnect.jobs")


class RunReaper:
    def __init__(self, store: Store, config: dict):
        self.store = store
        self.every = config["jobs"]["reaper_seconds"]
        self.stale_after = config["jobs"]["stale_after_seconds"]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                for run_id in training.reap_stale_runs(self.store, self.stale_after):
                    log.warning("run %s failed: its training process stopped beating", run_id)
                for job_id in jobs.reap_stale_jobs(self.store, self.stale_after):
                    log.warning("job %s failed: its process stopped beating", job_id)
            except Exception:  # the store may be briefly unreachable; look again next time
                log.exception("reaping stale runs failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
