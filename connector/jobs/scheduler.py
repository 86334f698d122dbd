"""APScheduler in the background: one cron job per model schedule, fired by one process only.

Every server process keeps an APScheduler with a job per enabled schedule, in step with the store.
Only the process holding the scheduler lease (connector/jobs/leader.py) runs its scheduler; the
others keep theirs paused. On a takeover the new leader resumes its scheduler, which fires a
firing that fell due while nobody led (within `scheduler.misfire_grace_seconds`) once.

Two guards make "once" exact: the lease (one process fires) and the claim of each firing in
the gate history, unique per (model, scheduled time) (connector/services/gate.py). The claim
covers the moment the lease cannot: a leader stalled past its lease (a paused VM, a long GC)
firing the same scheduled time as its successor. APScheduler 3 hands the scheduled time to its
executor, not to the job, so a small executor passes it on.
"""
from __future__ import annotations

import threading

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING

from model_store import Store

from ..services import schedules
from .leader import LeaderLease

LEASE_NAME = "retrain-scheduler"


class _Firing:
    """A job as the executor runs it, with the time it was scheduled for as a keyword argument."""

    def __init__(self, job, scheduled_for):
        self._job = job
        self.kwargs = {**job.kwargs, "scheduled_for": scheduled_for}

    def __getattr__(self, name):
        return getattr(self._job, name)

    def __str__(self) -> str:
        return str(self._job)


class _ScheduledTimeExecutor(ThreadPoolExecutor):
    def _do_submit_job(self, job, run_times):
        # Jobs coalesce: run_times holds the one (latest) time this firing stands for.
        super()._do_submit_job(_Firing(job, run_times[-1]), run_times)


class RetrainScheduler:
    def __init__(self, store: Store, config: dict, submit):
        self.store, self.config, self.submit = store, config, submit
        cfg = config["scheduler"]
        # One instance at a time per model; missed firings coalesce into one.
        self.scheduler = BackgroundScheduler(timezone="UTC", executors={"default": _ScheduledTimeExecutor(4)},
                                             job_defaults={"coalesce": True, "max_instances": 1,
                                                           "misfire_grace_time": int(cfg["misfire_grace_seconds"])})
        self.lease = LeaderLease(store, LEASE_NAME, cfg["lease_seconds"], cfg["renew_seconds"], self._on_tick)
        self.crons: dict[int, str] = {}  # the jobs this scheduler has: model id -> cron
        self.lock = threading.Lock()

    @property
    def is_leader(self) -> bool:
        return self.lease.leader

    def start(self) -> None:
        self.scheduler.start(paused=True)
        self.sync()
        self.lease.start()

    def _on_tick(self, leader: bool) -> None:
        """Each lease renewal: take up schedule changes other processes stored, then run or pause."""
        self.sync()
        with self.lock:
            if leader and self.scheduler.state == STATE_PAUSED:
                self.scheduler.resume()
            elif not leader and self.scheduler.state == STATE_RUNNING:
                self.scheduler.pause()

    def sync(self) -> None:
        wanted = dict(schedules.active_schedules(self.store))
        for model_id, cron in wanted.items():
            self.set(model_id, cron)
        for model_id in set(self.crons) - set(wanted):
            self.remove(model_id)

    def set(self, model_id: int, cron: str) -> None:
        with self.lock:
            if self.crons.get(model_id) == cron and self.scheduler.get_job(_job_id(model_id)):
                return  # unchanged: keep its next run time
            self.scheduler.add_job(self.fire, schedules.parse_cron(cron, self.config["scheduler"]["cron_seconds"]),
                                   args=[model_id], id=_job_id(model_id), replace_existing=True)
            self.crons[model_id] = cron

    def remove(self, model_id: int) -> None:
        with self.lock:
            self.crons.pop(model_id, None)
            if self.scheduler.get_job(_job_id(model_id)):
                self.scheduler.remove_job(_job_id(model_id))

    def fire(self, model_id: int, scheduled_for=None) -> str:
        return schedules.fire(self.store, self.config, model_id, self.submit, scheduled_for, self.lease.holder)

    def close(self) -> None:
        self.lease.close()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)


def _job_id(model_id: int) -> str:
    return f"retrain-{model_id}"
