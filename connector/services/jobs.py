"""Background jobs of the serving process, as rows: read, cancel, begin, finish, recover.

What a job does lives with its kind (services/suggestions.py for `suggest`); this module only
keeps the row's life cycle, the same one training runs have: queued -> running -> succeeded |
failed | canceled, and after a restart what was running is failed, what was queued runs again.
"""
from __future__ import annotations

from sqlalchemy import select

from model_store import Store
from model_store.schema import ACTIVE_JOB_STATES, Job, Version, utcnow

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
    """Cancel a queued job at once; for a running one return True so the caller signals its worker."""
    with store.transaction() as s:
        job = _job(s, model_ref, job_id)
        if job.status not in ACTIVE_JOB_STATES:
            raise Conflict(f"job {job_id} already {job.status}")
        if job.status == "queued":
            job.status, job.reason, job.finished_at = "canceled", "canceled before it started", utcnow()
            return view(s, job), False
        return view(s, job), True


def cancel_job(store: Store, runner, model_ref, job_id: int) -> dict:
    """Cancel a queued job at once, or signal a running one to stop after its current image."""
    job, signal = request_cancel(store, model_ref, job_id)
    if signal:
        runner.cancel(job_id)
    return job


def begin(store: Store, job_id: int) -> bool:
    """Queued -> running; False when the job is no longer queued (canceled while it waited)."""
    with store.transaction() as s:
        job = s.get(Job, job_id)
        if job is None or job.status != "queued":
            return False
        job.status, job.started_at = "running", utcnow()
        return True


def finish(store: Store, job_id: int, status: str, reason: str = "") -> None:
    with store.transaction() as s:
        job = s.get(Job, job_id)
        job.status, job.reason, job.finished_at = status, reason[:2000], utcnow()


def recover(store: Store) -> list[int]:
    """After a restart: jobs that were running are failed; queued ones are returned to run again."""
    with store.transaction() as s:
        for job in s.scalars(select(Job).where(Job.status == "running")):
            job.status, job.reason, job.finished_at = "failed", INTERRUPTED, utcnow()
        return [j.id for j in s.scalars(select(Job).where(Job.status == "queued").order_by(Job.id))]
