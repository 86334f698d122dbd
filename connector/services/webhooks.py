"""Webhooks: subscriptions (Power Automate triggers) and their persisted, retried, signed deliveries.

An event is *emitted* by inserting one delivery row per matching subscription, right
after the run or publish that caused it has committed; sending is the dispatcher's
job (connector/jobs/webhooks.py). Emitting never raises: a webhook problem must not
fail the training run or the publish that emitted it.

Each delivery is an HTTP POST of the JSON payload with
``X-Odconnect-Signature: sha256=<hex HMAC-SHA256 of the body, keyed by the subscription secret>``,
``X-Odconnect-Event`` and ``X-Odconnect-Delivery`` (the delivery id: receivers dedupe on it,
since a delivery whose answer was lost is sent again).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import threading

from sqlalchemy import func, select, update

from model_store import Store
from model_store.schema import (Model, TrainingRun, Version, WebhookDelivery, WebhookSubscription,
                                utcnow)

from ..errors import Invalid, NotFound
from ..net_guard import CallbackPolicy
from ..routes import run_path
from ..views import iso, subscription_view
from .catalog import get_model

log = logging.getLogger("odconnect.webhooks")

RUN_FINISHED = "trainingRunFinished"
VERSION_PUBLISHED = "versionPublished"
MODEL_NEEDS_ATTENTION = "modelNeedsAttention"  # emitted by services/monitoring.py
EVENTS = (RUN_FINISHED, VERSION_PUBLISHED, MODEL_NEEDS_ATTENTION)
FINISHED_STATES = ("succeeded", "failed", "canceled")


# --- subscriptions ----------------------------------------------------------------------------

def subscribe(store: Store, event: str, body: dict, policy: CallbackPolicy) -> dict:
    """A new subscription; its callback URL must pass the policy now (and passes it again at each delivery)."""
    if event not in EVENTS:
        raise Invalid(f"unknown event {event!r}")
    url, _ = policy.check(body.get("callbackUrl", ""))
    secret = body.get("secret") or secrets.token_urlsafe(32)
    with store.transaction() as s:
        model_id = None
        if body.get("modelId") not in (None, ""):
            model_id = get_model(s, body["modelId"]).id
        sub = WebhookSubscription(event=event, model_id=model_id, callback_url=url, secret=secret)
        s.add(sub)
        s.flush()
        return subscription_view(sub, {}, with_secret=True)


def _active(s, sub_id: int) -> WebhookSubscription:
    sub = s.get(WebhookSubscription, sub_id)
    if sub is None or sub.deleted_at is not None:
        raise NotFound(f"webhook subscription {sub_id} does not exist")
    return sub


def _counts(s, sub_ids: list[int]) -> dict[int, dict]:
    rows = s.execute(select(WebhookDelivery.subscription_id, WebhookDelivery.status, func.count())
                     .where(WebhookDelivery.subscription_id.in_(sub_ids))
                     .group_by(WebhookDelivery.subscription_id, WebhookDelivery.status))
    out: dict[int, dict] = {i: {} for i in sub_ids}
    for sub_id, status, n in rows:
        out[sub_id][status] = n
    return out


def list_subscriptions(store: Store) -> list[dict]:
    with store.transaction() as s:
        subs = s.scalars(select(WebhookSubscription).where(WebhookSubscription.deleted_at.is_(None))
                         .order_by(WebhookSubscription.id)).all()
        counts = _counts(s, [x.id for x in subs])
        return [subscription_view(x, counts[x.id]) for x in subs]


def get_subscription(store: Store, sub_id: int, recent: int = 20) -> dict:
    with store.transaction() as s:
        sub = _active(s, sub_id)
        latest = s.scalars(select(WebhookDelivery).where(WebhookDelivery.subscription_id == sub.id)
                           .order_by(WebhookDelivery.id.desc()).limit(recent)).all()
        return subscription_view(sub, _counts(s, [sub.id])[sub.id], latest)


def unsubscribe(store: Store, sub_id: int) -> None:
    """Soft-delete (the delivery history stays); what was still pending is dropped as failed."""
    with store.transaction() as s:
        sub = _active(s, sub_id)
        sub.deleted_at = utcnow()
        s.execute(update(WebhookDelivery)
                  .where(WebhookDelivery.subscription_id == sub.id, WebhookDelivery.status == "pending")
                  .values(status="failed", last_error="unsubscribed"))


# --- emitting ---------------------------------------------------------------------------------

_wakeups: dict[int, threading.Event] = {}


def register_wakeup(store: Store, event: threading.Event | None) -> None:
    """The dispatcher of `store` registers an event that emit sets, so that it sends at once."""
    if event is None:
        _wakeups.pop(id(store), None)
    else:
        _wakeups[id(store)] = event


def emit(store: Store, event: str, model_id: int, payload: dict) -> list[int]:
    """Persist one pending delivery per active subscription to `event` for this model (or all models)."""
    with store.transaction() as s:
        subs = s.scalars(select(WebhookSubscription).where(
            WebhookSubscription.event == event, WebhookSubscription.deleted_at.is_(None),
            (WebhookSubscription.model_id.is_(None)) | (WebhookSubscription.model_id == model_id))
            .order_by(WebhookSubscription.id)).all()
        ids = []
        for sub in subs:
            delivery = WebhookDelivery(subscription_id=sub.id, event=event, payload={}, status="pending",
                                       attempts=0, next_attempt_at=utcnow())
            s.add(delivery)
            s.flush()
            delivery.payload = {"event": event, "deliveryId": delivery.id, **payload}
            ids.append(delivery.id)
    if ids and id(store) in _wakeups:
        _wakeups[id(store)].set()
    return ids


def _score(version: Version | None):
    return None if version is None else (version.metrics or {}).get("score")


def emit_run_finished(store: Store, run_id: int) -> None:
    """Called where a run reaches succeeded, failed or canceled. Never raises."""
    try:
        with store.transaction() as s:
            run = s.get(TrainingRun, run_id)
            if run is None or run.status not in FINISHED_STATES:
                return
            model = s.get(Model, run.model_id)
            version = s.get(Version, run.version_id) if run.version_id else None
            published = s.get(Version, model.published_version_id) if model.published_version_id else None
            payload = {
                "occurred": iso(run.finished_at or utcnow()), "modelId": model.id, "modelName": model.name,
                "runId": run.id, "status": run.status, "reason": run.reason or None, "trigger": run.trigger,
                "version": version.number if version else None, "versionId": run.version_id,
                "performanceScore": _score(version), "publishedScore": _score(published),
                "runUrl": run_path(model.id, run.id),
            }
        emit(store, RUN_FINISHED, payload["modelId"], payload)
    except Exception:  # a webhook must never break the run that emitted it
        log.exception("could not emit %s for run %s", RUN_FINISHED, run_id)


def emit_version_published(store: Store, model_id: int, version_id: int, previous_version_id: int | None) -> None:
    """Called after a publish has committed. Never raises."""
    try:
        with store.transaction() as s:
            model = s.get(Model, model_id)
            version = s.get(Version, version_id)
            previous = s.get(Version, previous_version_id) if previous_version_id else None
            payload = {
                "occurred": iso(utcnow()), "modelId": model.id, "modelName": model.name,
                "version": version.number, "versionId": version.id, "performanceScore": _score(version),
                "previousVersion": previous.number if previous else None, "previousVersionId": previous_version_id,
            }
        emit(store, VERSION_PUBLISHED, model_id, payload)
    except Exception:
        log.exception("could not emit %s for model %s", VERSION_PUBLISHED, model_id)


# --- delivering (the dispatcher's side) -----------------------------------------------------------

def body_bytes(payload: dict) -> bytes:
    """The exact bytes sent, and signed: the same for every attempt of a delivery."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def with_public_links(payload: dict, public_url: str) -> dict:
    """Server-relative links (`runUrl`) made absolute on server.public_url, when one is set."""
    if not public_url:
        return payload
    return {k: public_url.rstrip("/") + v if k.endswith("Url") and isinstance(v, str) and v.startswith("/") else v
            for k, v in payload.items()}


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def due_ids(store: Store, limit: int = 50) -> list[int]:
    with store.transaction() as s:
        return list(s.scalars(select(WebhookDelivery.id).where(
            WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= utcnow())
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit)))


def next_due(store: Store) -> dt.datetime | None:
    with store.transaction() as s:
        return s.scalar(select(func.min(WebhookDelivery.next_attempt_at))
                        .where(WebhookDelivery.status == "pending"))


def claim(store: Store, delivery_id: int, lease_seconds: float) -> dict | None:
    """Lease a due delivery (a conditional update, so two dispatchers never send it at once)."""
    now = utcnow()
    with store.transaction() as s:
        claimed = s.execute(update(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now)
            .values(next_attempt_at=now + dt.timedelta(seconds=lease_seconds),
                    attempts=WebhookDelivery.attempts + 1)).rowcount
        if claimed != 1:
            return None
        d = s.get(WebhookDelivery, delivery_id)
        sub = s.get(WebhookSubscription, d.subscription_id)
        if sub.deleted_at is not None:
            d.status, d.last_error = "failed", "unsubscribed"
            return None
        return {"id": d.id, "event": d.event, "payload": d.payload, "attempts": d.attempts,
                "url": sub.callback_url, "secret": sub.secret, "subscriptionId": sub.id}


def backoff_seconds(cfg: dict, attempts: int) -> float:
    return min(cfg["backoff_base_seconds"] * 2 ** max(attempts - 1, 0), cfg["backoff_max_seconds"])


def record_attempt(store: Store, cfg: dict, delivery_id: int, error: str | None, gone: bool = False) -> str:
    """After one attempt: delivered, or pending again after backoff, or failed for good."""
    with store.transaction() as s:
        d = s.get(WebhookDelivery, delivery_id)
        if error is None:
            d.status, d.delivered_at, d.last_error, d.next_attempt_at = "delivered", utcnow(), "", None
            return d.status
        d.last_error = error[:2000]
        if gone:  # 410 Gone: the receiver says the subscription is over (a deleted flow)
            d.status = "failed"
            sub = s.get(WebhookSubscription, d.subscription_id)
            sub.deleted_at = sub.deleted_at or utcnow()
        elif d.attempts >= cfg["max_attempts"]:
            d.status = "failed"
        else:
            d.next_attempt_at = utcnow() + dt.timedelta(seconds=backoff_seconds(cfg, d.attempts))
        return d.status
