from __future__ import annotations

from ..context import ctx
from .urls import absolute
from ..services import training as svc


def _accepted(run: dict):
    retry = str(ctx().config["training"]["retry_after_seconds"])
    return run, 202, {"Location": absolute(svc.run_location(run["modelId"], run["id"])), "Retry-After": retry}


def _start(model_id, body, trigger="api", retrain_ref=None):
    c = ctx()
    run = svc.start_training(c.store, c.config, model_id, body, trigger, retrain_ref)
    c.services["runs"].submit(run["id"])
    return _accepted(run)


def train_model(model_id, body=None):
    return _start(model_id, body)


def retrain_version(model_id, version, body=None):
    return _start(model_id, {"warmStart": bool((body or {}).get("warmStart"))}, "retrain", version)


def list_training_runs(model_id):
    return svc.list_runs(ctx().store, model_id)


def get_training_run(model_id, run_id):
    run = svc.get_run(ctx().store, model_id, run_id)
    if run["status"] in ("queued", "training"):
        return _accepted(run)  # Power Automate's async pattern: keep polling while 202
    return run


def cancel_training_run(model_id, run_id):
    c = ctx()
    run, signal = svc.request_cancel(c.store, model_id, run_id)
    if signal:
        c.services["runs"].cancel(run_id)
    return run, 202


def list_presets():
    from ..training.presets import PRESETS
    return [{"name": p.name, "description": p.description} for p in PRESETS.values()]


def list_weights():
    from ..services.weights import list_weights as listing
    return listing(ctx().store)
