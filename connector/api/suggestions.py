"""ML-assisted labeling: suggest for one image or a whole dataset (a job), review, reject, and take a
review back (unapprove, restore)."""
from __future__ import annotations

from ..context import ctx
from ..services import dataset_suggestions, suggestions as svc
from .jobs import accepted


def suggest_regions(model_id, dataset_id, image_id, version=None, threshold=None):
    c = ctx()
    return svc.suggest_image(c.store, c.predictors, c.config["inference"]["default_threshold"],
                             model_id, dataset_id, image_id, version, threshold)


def suggest_dataset_regions(model_id, dataset_id, body=None):
    c = ctx()
    body = body if isinstance(body, dict) else {}  # no body at all: the defaults
    return accepted(dataset_suggestions.submit(c.store, c.config, c.jobs, model_id, dataset_id, body))


def review_suggestions(model_id, dataset_id, body):
    return svc.review(ctx().store, model_id, dataset_id, body["approveAbove"], body.get("rejectRest", False),
                      body.get("label"))


def reject_regions(model_id, dataset_id, image_id, body=None):
    body = body if isinstance(body, dict) else {}  # no body at all: reject every suggestion
    return svc.reject_regions(ctx().store, model_id, dataset_id, image_id, body.get("regionIds"))


def unapprove_regions(model_id, dataset_id, image_id, body):
    return svc.unapprove_regions(ctx().store, model_id, dataset_id, image_id, body["regionIds"])


def restore_suggestions(model_id, dataset_id, image_id, body):
    return svc.restore_suggestions(ctx().store, model_id, dataset_id, image_id, body["suggestions"])
