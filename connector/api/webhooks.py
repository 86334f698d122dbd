"""Webhook subscriptions: the three Power Automate triggers, listing, and the DELETE that unsubscribes."""
from __future__ import annotations

from ..context import ctx
from ..routes import subscription_path
from ..services import webhooks as svc
from .responses import no_content
from .urls import absolute


def _created(view: dict):
    return view, 201, {"Location": absolute(subscription_path(view["id"]))}


def on_training_run_finished(body):
    c = ctx()
    return _created(svc.subscribe(c.store, svc.RUN_FINISHED, body, c.webhooks.policy))


def on_version_published(body):
    c = ctx()
    return _created(svc.subscribe(c.store, svc.VERSION_PUBLISHED, body, c.webhooks.policy))


def on_model_needs_attention(body):
    c = ctx()
    return _created(svc.subscribe(c.store, svc.MODEL_NEEDS_ATTENTION, body, c.webhooks.policy))


def list_webhooks():
    return svc.list_subscriptions(ctx().store)


def get_webhook(subscription_id):
    return svc.get_subscription(ctx().store, subscription_id)


def delete_webhook(subscription_id):
    svc.unsubscribe(ctx().store, subscription_id)
    return no_content()
