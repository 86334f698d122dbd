"""Scheduled retraining: a cron per model, and what happens when it fires.

A firing first claims its (model, scheduled time) in the gate history (connector/services/gate.py),
so that it happens once however many processes fire it; then it skips when the training data has
not changed, or starts a run whose version the promotion gate may publish when it finishes.
"""
from __future__ import annotations

import datetime as dt
import logging

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select

from model_store import Store
from model_store.schema import Model, Schedule, Version

from ..errors import Conflict, Invalid, OdError
from ..views import schedule_view
from . import gate
from .catalog import get_model, get_model_part

log = logging.getLogger("odconnect.schedule")


def parse_cron(expr: str, with_seconds: bool = False) -> CronTrigger:
    """Five cron fields (minute hour day month weekday), UTC; six, seconds first, when allowed.

    The weekday is standard cron's (0 or 7 Sunday, 1 Monday, names too). APScheduler 3 counts
    from Monday = 0, even in its ``from_crontab``, so the days are handed over by name."""
    fields = (expr or "").split()
    shape = "five or six fields (second minute hour day month weekday)" if with_seconds else \
        "five fields: minute hour day month weekday"
    if len(fields) != 5 and not (with_seconds and len(fields) == 6):
        raise Invalid(f"cron {expr!r} is not valid: it has {len(fields)} fields ({shape})")
    second = fields.pop(0) if len(fields) == 6 else "0"
    minute, hour, day, month, weekday = fields
    try:
        return CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month,
                           day_of_week=cron_weekdays(weekday), timezone="UTC")
    except ValueError as exc:
        raise Invalid(f"cron {expr!r} is not valid: {exc} ({shape})") from exc


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron's numbers 0..6 (7 is Sunday again)


def cron_weekdays(field: str) -> str:
    """A standard cron weekday field (``*``, ``1-5``, ``0,6``, ``*/2``, ``mon-fri``) as the days'
    names, which APScheduler reads the same whatever its own numbering."""
    days: set[int] = set()
    for part in field.lower().split(","):
        span, _, step = part.partition("/")
        if span == "*":
            first, last = 0, 6
        else:
            first, _, last = span.partition("-")
            first = _weekday(first)
            last = _weekday(last) if last else (7 if step else first)
        if step and not step.isdigit() or step == "0" or first > last:
            raise ValueError(f"weekday {part!r} is not a day, a range of days or a step over them")
        days.update(d % 7 for d in range(first, last + 1, int(step or 1)))
    return "*" if len(days) == 7 else ",".join(_WEEKDAYS[d] for d in sorted(days))


def _weekday(token: str) -> int:
    if token.isdigit() and int(token) <= 7:
        return int(token)
    if token in _WEEKDAYS:
        return _WEEKDAYS.index(token)
    raise ValueError(f"weekday {token!r} is not 0-7 or a day's name (sun, mon, ...)")


def next_run(cron: str, with_seconds: bool = False) -> dt.datetime | None:
    """The next firing, from the cron itself: the same answer in every process."""
    return parse_cron(cron, with_seconds).get_next_fire_time(None, dt.datetime.now(dt.timezone.utc))


def save_schedule(store: Store, config: dict, scheduler, model_ref, cron: str, only_if_new_data: bool = True,
                  enabled: bool = True, publish: str = "never", publish_margin: float = 0.0) -> dict:
    """Store the schedule, then bring this process's scheduler in step (the leader, if another
    process, picks the change up at its next lease renewal)."""
    parse_cron(cron, config["scheduler"]["cron_seconds"])
    publish, publish_margin = gate.check_policy(publish, publish_margin)
    with store.transaction() as s:
        model = get_model(s, model_ref)
        sch = s.get(Schedule, model.id) or Schedule(model_id=model.id)
        sch.cron, sch.only_if_new_data, sch.enabled = cron, only_if_new_data, enabled
        sch.publish, sch.publish_margin = publish, publish_margin
        s.add(sch)
        s.flush()
        model_id = model.id
    if enabled:
        scheduler.set(model_id, cron)
    else:
        scheduler.remove(model_id)
    return get_schedule(store, config, model_id)


def get_schedule(store: Store, config: dict, model_ref) -> dict:
    with store.transaction() as s:
        sch = get_model_part(s, Schedule, get_model(s, model_ref), "retraining schedule")
        upcoming = next_run(sch.cron, config["scheduler"]["cron_seconds"]) if sch.enabled else None
        return schedule_view(sch, upcoming, gate.last_firing(s, sch.model_id))


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


def fire(store: Store, config: dict, model_id: int, submit, scheduled_for: dt.datetime | None = None,
         fired_by: str = "") -> str:
    """The scheduled job: claim the firing, then retrain on the current data unless it is unchanged.

    `scheduled_for` is the time APScheduler scheduled this firing for (now, when fired by hand);
    it keys the claim. Returns what happened, in words (also in the history entry).
    """
    from .training import current_data_hash, start_training
    when = (scheduled_for or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).replace(tzinfo=None)
    entry_id, why_not = gate.claim_firing(store, model_id, when, fired_by)
    if entry_id is None:
        log.info("schedule for model %s not fired: %s", model_id, why_not)
        return f"not fired: {why_not}"
    with store.transaction() as s:
        model = s.get(Model, model_id)
        last = s.get(Version, model.last_trained_version_id) if model.last_trained_version_id else None
        sch = s.get(Schedule, model_id)
        only_new = sch.only_if_new_data if sch is not None else True  # deleted since the claim
        last_number, last_hash = (last.number, last.data_snapshot.get("trainHash")) if last else (None, None)
    if only_new and last is not None and current_data_hash(store, model_id) == last_hash:
        outcome, detail = "skipped", f"no new data since version {last_number}"
    else:
        try:
            run = start_training(store, config, model_id, {}, trigger="schedule", gate_entry_id=entry_id)
            submit(run["id"])
            return _logged(model_id, f"started run {run['id']}")
        except Conflict as exc:  # the run of an earlier firing (or a person's) is still going
            outcome, detail = "skipped", f"not started: {exc.detail}"
        except OdError as exc:
            outcome, detail = "failed", f"not started: {exc.detail}"
        except Exception as exc:  # a bug: the entry must not stay "training" forever
            log.exception("schedule for model %s could not start a run", model_id)
            outcome, detail = "failed", f"not started: {exc.__class__.__name__}: {exc}"
    gate.finish(store, entry_id, outcome, detail)
    return _logged(model_id, f"{outcome}: {detail}")


def _logged(model_id: int, text: str) -> str:
    log.info("schedule for model %s: %s", model_id, text)
    return text

