from __future__ import annotations

from ..context import ctx
from ..routes import run_path
from ..services import training as svc
from ..services import weights
from .urls import absolute


def _accepted(run: dict):
    retry = str(ctx().config["training"]["retry_after_seconds"])
    return run, 202, {"Location": absolute(run_path(run["modelId"], run["id"])), "Retry-After": retry}


def train_model(model_id, body=None):
    c = ctx()
    return _accepted(svc.submit_training(c.store, c.config, c.runs, model_id, body))


def retrain_version(model_id, version, body=None):
    c = ctx()
    return _accepted(svc.submit_training(c.store, c.config, c.runs, model_id, body, "retrain", version))


def list_training_runs(model_id):
    return svc.list_runs(ctx().store, model_id)


def get_training_run(model_id, run_id):
    run = svc.get_run(ctx().store, model_id, run_id)
    if run["status"] in ("queued", "training"):
        return _accepted(run)  # Power Automate's async pattern: keep polling while 202
    return run


def cancel_training_run(model_id, run_id):
    c = ctx()
    return svc.cancel_run(c.store, c.runs, model_id, run_id), 202


def list_presets():
    return svc.list_presets()


def list_weights():
    return weights.list_weights(ctx().store)
