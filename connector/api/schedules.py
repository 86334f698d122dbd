from __future__ import annotations

from ..context import ctx
from ..services import schedules as svc


def get_retrain_schedule(model_id):
    c = ctx()
    view = svc.get_schedule(c.store, model_id)
    return {**view, "nextRun": _next(view["modelId"])}


def set_retrain_schedule(model_id, body):
    c = ctx()
    view = svc.save_schedule(c.store, model_id, body["cron"], body.get("onlyIfNewData", True),
                             body.get("enabled", True))
    scheduler = c.services["scheduler"]
    if view["enabled"]:
        scheduler.set(view["modelId"], view["cron"])
    else:
        scheduler.remove(view["modelId"])
    return {**view, "nextRun": _next(view["modelId"])}


def delete_retrain_schedule(model_id):
    c = ctx()
    c.services["scheduler"].remove(svc.delete_schedule(c.store, model_id))
    return None, 204


def _next(model_id: int):
    when = ctx().services["scheduler"].next_run(model_id)
    return when.isoformat() if when else None
