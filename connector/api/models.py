from __future__ import annotations

from ..context import ctx
from ..services import catalog


def list_models(include_archived=False):
    return catalog.list_models(ctx().store, include_archived)


def create_model(body):
    return catalog.create_model(ctx().store, body["name"], body["labels"], body.get("description", "")), 201


def get_model(model_id):
    return catalog.model_details(ctx().store, model_id)


def update_model(model_id, body):
    return catalog.update_model(ctx().store, model_id, body.get("name"), body.get("description"))


def archive_model(model_id):
    return catalog.archive_model(ctx().store, model_id)


def restore_model(model_id):
    return catalog.restore_model(ctx().store, model_id)


def list_labels(model_id):
    return catalog.list_labels(ctx().store, model_id)


def add_labels(model_id, body):
    return catalog.add_labels(ctx().store, model_id, body["names"]), 201


def rename_label(model_id, label_id, body):
    return catalog.rename_label(ctx().store, model_id, label_id, body["name"])


def delete_label(model_id, label_id):
    return catalog.delete_label(ctx().store, model_id, label_id)
