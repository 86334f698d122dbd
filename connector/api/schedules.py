from __future__ import annotations

from ..context import ctx
from ..services import schedules as svc


def get_retrain_schedule(model_id):
    c = ctx()
    return svc.get_schedule(c.store, c.scheduler, model_id)


def set_retrain_schedule(model_id, body):
    c = ctx()
    return svc.save_schedule(c.store, c.scheduler, model_id, body["cron"], body.get("onlyIfNewData", True),
                             body.get("enabled", True))


def delete_retrain_schedule(model_id):
    c = ctx()
    svc.delete_schedule(c.store, c.scheduler, model_id)
    return None, 204
