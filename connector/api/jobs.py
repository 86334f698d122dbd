"""Background jobs of a model (dataset-wide suggestions): poll, list, cancel."""
from __future__ import annotations

from ..context import ctx
from ..services import jobs as svc
from ..routes import job_path
from .urls import absolute


def accepted(job: dict):
    """202 + Location + Retry-After: Power Automate's async pattern, as for training runs."""
    retry = str(ctx().config["suggestions"]["retry_after_seconds"])
    return job, 202, {"Location": absolute(job_path(job["modelId"], job["id"])), "Retry-After": retry}


def list_jobs(model_id):
    return svc.list_jobs(ctx().store, model_id)


def get_job(model_id, job_id):
    job = svc.get_job(ctx().store, model_id, job_id)
    return accepted(job) if job["status"] in ("queued", "running") else job


def cancel_job(model_id, job_id):
    c = ctx()
    return svc.cancel_job(c.store, c.jobs, model_id, job_id), 202
