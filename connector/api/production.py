"""Learning from production: capture settings, review of captured images, monitoring figures."""
from __future__ import annotations

import datetime as dt

from ..context import ctx
from ..errors import Invalid
from ..services import capture, monitoring


def get_capture_settings(model_id):
    return capture.get_settings(ctx(), model_id)


def set_capture_settings(model_id, body):
    return capture.set_settings(ctx(), model_id, body)


def list_captured_images(model_id, order="newest", version=None, since=None, page=1, page_size=50):
    when = None
    if since:
        try:
            when = dt.datetime.fromisoformat(since)
        except ValueError:
            raise Invalid(f"since must be a date-time such as 2026-11-23T08:00:00Z (got {since!r})") from None
    return capture.list_captures(ctx().store, model_id, order, version, when, page, page_size)


def approve_captured_images(model_id, body):
    return capture.approve(ctx(), model_id, body["imageIds"], body.get("datasetId"))


def discard_captured_images(model_id, body):
    return capture.discard(ctx(), model_id, body["imageIds"])


def delete_captured_images(model_id):
    return capture.delete_all(ctx(), model_id)


def get_model_monitoring(model_id, days=7):
    return monitoring.report(ctx(), model_id, days)
