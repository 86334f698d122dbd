from __future__ import annotations

from ..context import ctx
from ..services import training as training_svc
from ..services import versions as svc
from .responses import no_content


def list_versions(model_id, include_archived=False):
    return svc.list_versions(ctx().store, model_id, include_archived)


def get_version(model_id, version):
    return svc.version_details(ctx().store, model_id, version)


def archive_version(model_id, version):
    return svc.archive_version(ctx().store, model_id, version)


def get_draft(model_id):
    return svc.get_draft(ctx().store, model_id)


def save_draft(model_id, body):
    c = ctx()
    return svc.save_draft(c.store, c.config["training"], training_svc.preset_names(), model_id,
                          body.get("settings") or {}, body.get("baseVersion"))


def discard_draft(model_id):
    svc.discard_draft(ctx().store, model_id)
    return no_content()
