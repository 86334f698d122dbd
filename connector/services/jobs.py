"""Background jobs of the serving process, as rows: read, cancel, begin, finish, recover.

What a job does lives with its kind (services/suggestions.py for `suggest`); this module only
keeps the row's life cycle, the same one training runs have: queued -> running -> succeeded |
failed | canceled, and after a restart what was running is failed, what was queued runs again.
"""
from __future__ import annotations

import datetime as dt
from typing import Callable

from sqlalchemy import select, update

from model_store import Store
from model_store.schema import ACTIVE_JOB_STATES, ACTIVE_RUN_STATES, Job, TrainingRun, Version, utcnow

from ..errors import Conflict, NotFound
from ..views import job_view
from .catalog import get_model

INTERRUPTED = "the server stopped while this job was running; start it again"


def view(s, job: Job) -> dict:
    version = s.get(Version, job.version_id) if job.version_id else None
    return job_view(job, version.number if version else None)


def _job(s, model_ref, job_id: int) -> Job:
    model = get_model(s, model_ref)
    job = s.get(Job, job_id)
    if job is None or job.model_id != model.id:
        raise NotFound(f"model {model.name!r} has no job {job_id}")
    return job


def get_job(store: Store, model_ref, job_id: int) -> dict:
    with store.transaction() as s:
        return view(s, _job(s, model_ref, job_id))


def list_jobs(store: Store, model_ref) -> list[dict]:
    with store.transaction() as s:
        model = get_model(s, model_ref)
        numbers = dict(s.execute(select(Version.id, Version.number).where(Version.model_id == model.id)).all())
        return [job_view(j, numbers.get(j.version_id))
                for j in s.scalars(select(Job).where(Job.model_id == model.id).order_by(Job.id))]


def request_cancel(store: Store, model_ref, job_id: int) -> tuple[dict, bool]:
    """Cancel a queued job at once; for a running one set its cancel flag (seen by whichever process
    runs it, and by its labeling model's run) and return True so the caller signals its worker."""
    with store.transaction() as s:
        job = _job(s, model_ref, job_id)
        if job.status not in ACTIVE_JOB_STATES:
            raise Conflict(f"job {job_id} already {job.status}")
        if job.status == "queued":
            job.status, job.reason, job.finished_at = "canceled", "canceled before it started", utcnow()
            return view(s, job), False
        job.cancel_requested = True
        if job.run_id is not None:
            s.execute(update(TrainingRun).where(TrainingRun.id == job.run_id,
                                                TrainingRun.status.in_(ACTIVE_RUN_STATES))
                      .values(cancel_requested=True))
        return view(s, job), True


def cancel_job(store: Store, runner, model_ref, job_id: int) -> dict:
    """Cancel a queued job at once, or signal a running one to stop after its current image."""
    job, signal = request_cancel(store, model_ref, job_id)
    if signal:
        runner.cancel(job_id)
    return job


def begin(store: Store, job_id: int, worker: str) -> bool:
    """Queued -> running for `worker`, atomically; False when the job is no longer queued
    (canceled while it waited, or another process has it)."""
    with store.transaction() as s:
        now = utcnow()
        claimed = s.execute(update(Job).where(Job.id == job_id, Job.status == "queued")
                            .values(status="running", started_at=now, worker=worker, heartbeat_at=now))
        return claimed.rowcount == 1


def heartbeat(store: Store, job_id: int) -> bool:
    """Record that the job's process is alive; True when a cancel was asked for."""
    with store.transaction() as s:
        s.execute(update(Job).where(Job.id == job_id, Job.status == "running").values(heartbeat_at=utcnow()))
        return bool(s.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def finish(store: Store, job_id: int, status: str, reason: str = "") -> None:
    with store.transaction() as s:
        job = s.get(Job, job_id)
        job.status, job.reason, job.finished_at = status, reason[:2000], utcnow()


def recover(store: Store, is_dead: Callable[[str], bool]) -> list[int]:
    """After a start: fail the jobs whose process is known dead (see jobs/identity.py); return the
    queued ones, to run again. Jobs of other live processes are left to `reap_stale_jobs`."""
    with store.transaction() as s:
        for job in s.scalars(select(Job).where(Job.status == "running")):
            if not job.worker or is_dead(job.worker):
                job.status, job.reason, job.finished_at = "failed", INTERRUPTED, utcnow()
        return [j.id for j in s.scalars(select(Job).where(Job.status == "queued").order_by(Job.id))]


def reap_stale_jobs(store: Store, stale_after_s: float) -> list[int]:
    """Fail running jobs whose heartbeat stopped (their process was killed): returns their ids."""
    cutoff = utcnow() - dt.timedelta(seconds=stale_after_s)
    reason = (f"the process running this job stopped sending heartbeats for over {stale_after_s:g} s "
              "(it was killed or cut off); start it again")
    with store.transaction() as s:
        stale = list(s.scalars(select(Job.id).where(Job.status == "running", Job.heartbeat_at < cutoff)))
        for job_id in stale:
            s.execute(update(Job).where(Job.id == job_id, Job.status == "running", Job.heartbeat_at < cutoff)
                      .values(status="failed", reason=reason, finished_at=utcnow()))
    return stale
