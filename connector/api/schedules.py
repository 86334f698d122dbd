from __future__ import annotations

from ..context import ctx
from ..services import gate
from ..services import schedules as svc
from .responses import no_content


def get_retrain_schedule(model_id):
    c = ctx()
    return svc.get_schedule(c.store, c.config, model_id)


def set_retrain_schedule(model_id, body):
    c = ctx()
    return svc.save_schedule(c.store, c.config, c.scheduler, model_id, body["cron"], body.get("onlyIfNewData", True),
                             body.get("enabled", True), body.get("publish", "never"), body.get("publishMargin", 0.0))


def delete_retrain_schedule(model_id):
    c = ctx()
    svc.delete_schedule(c.store, c.scheduler, model_id)
    return no_content()


def list_schedule_history(model_id, limit=50):
    return gate.history(ctx().store, model_id, limit)
