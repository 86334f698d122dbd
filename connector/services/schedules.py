"""Scheduled retraining: a cron per model, and what happens when it fires."""
from __future__ import annotations

import logging

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select

from model_store import Store
from model_store.schema import Model, Schedule, Version, utcnow

from ..errors import Invalid, OdError
from ..views import schedule_view
from .catalog import get_model, get_model_part

log = logging.getLogger("odconnect.schedule")


def parse_cron(expr: str) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(expr, timezone="UTC")
    except ValueError as exc:
        raise Invalid(f"cron {expr!r} is not valid: {exc} (five fields: minute hour day month weekday)") from exc


def save_schedule(store: Store, scheduler, model_ref, cron: str, only_if_new_data: bool = True,
                  enabled: bool = True) -> dict:
    """Store the schedule, then bring the running scheduler in step with it."""
    parse_cron(cron)
    with store.transaction() as s:
        model = get_model(s, model_ref)
        sch = s.get(Schedule, model.id) or Schedule(model_id=model.id)
        sch.cron, sch.only_if_new_data, sch.enabled = cron, only_if_new_data, enabled
        s.add(sch)
        s.flush()
        model_id = model.id
    if enabled:
        scheduler.set(model_id, cron)
    else:
        scheduler.remove(model_id)
    return get_schedule(store, scheduler, model_id)


def get_schedule(store: Store, scheduler, model_ref) -> dict:
    with store.transaction() as s:
        sch = get_model_part(s, Schedule, get_model(s, model_ref), "retraining schedule")
        return schedule_view(sch, scheduler.next_run(sch.model_id))


def delete_schedule(store: Store, scheduler, model_ref) -> None:
    with store.transaction() as s:
        model = get_model(s, model_ref)
        s.delete(get_model_part(s, Schedule, model, "retraining schedule"))
        model_id = model.id
    scheduler.remove(model_id)


def active_schedules(store: Store) -> list[tuple[int, str]]:
    with store.transaction() as s:
        rows = s.scalars(select(Schedule).join(Model, Model.id == Schedule.model_id)
                         .where(Schedule.enabled.is_(True), Model.archived_at.is_(None)))
        return [(r.model_id, r.cron) for r in rows]


def fire(store: Store, config: dict, model_id: int, submit) -> str:
    """The scheduled job: retrain on the current data, unless nothing changed since the last version."""
    from .training import current_data_hash, start_training
    with store.transaction() as s:
        sch = s.get(Schedule, model_id)
        model = s.get(Model, model_id)
        if sch is None or not sch.enabled or model is None or model.archived_at is not None:
            return "skipped: no active schedule"
        last = s.get(Version, model.last_trained_version_id) if model.last_trained_version_id else None
        only_new = sch.only_if_new_data
    outcome = None
    if only_new and last is not None and current_data_hash(store, model_id) == last.data_snapshot.get("trainHash"):
        outcome = f"skipped: no new data since version {last.number}"
    if outcome is None:
        try:
            run = start_training(store, config, model_id, {}, trigger="schedule")
            submit(run["id"])
            outcome = f"started run {run['id']}"
        except OdError as exc:
            outcome = f"not started: {exc.detail}"
    with store.transaction() as s:
        sch = s.get(Schedule, model_id)
        if sch is not None:
            sch.last_fired_at, sch.last_outcome = utcnow(), outcome[:500]
    log.info("schedule for model %s: %s", model_id, outcome)
    return outcome
