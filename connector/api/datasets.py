from __future__ import annotations

from flask import Response, request

from ..context import ctx
from ..errors import Invalid
from ..services import catalog, coco
from ..services.data_check import data_check


def list_datasets(model_id):
    return catalog.list_datasets(ctx().store, model_id)


def create_dataset(model_id, body):
    return catalog.create_dataset(ctx().store, model_id, body["name"], body.get("kind", "training")), 201


def get_dataset(model_id, dataset_id):
    return catalog.dataset_details(ctx().store, model_id, dataset_id)


def check_data(model_id, dataset_id=None):
    c = ctx()
    return data_check(c.store, c.config["data_check"], model_id, dataset_id)


def import_coco(model_id, dataset_id, body=None, **_files):
    c = ctx()
    images = request.files.get("images")
    if images is None:
        raise Invalid("send the images as a zip in the 'images' form field")
    annotations = request.files.get("annotations")
    add = str((body or {}).get("addLabels", "true")).lower() not in ("false", "0", "no")
    return coco.import_zip(c.store, c.limits, model_id, dataset_id, images.read(),
                           annotations.read() if annotations is not None else None, add), 201


def import_coco_folder(model_id, dataset_id, body):
    c = ctx()
    return coco.import_folder(c.store, c.limits, c.config["storage"]["import_root"], model_id, dataset_id,
                              body["folder"], body.get("annotations", "coco.json"), body.get("addLabels", True)), 201


def export_coco(model_id, dataset_id, include_images=False):
    data, archive = coco.export_coco(ctx().store, model_id, dataset_id, include_images)
    if archive is None:
        return data
    return Response(archive, mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="dataset-{dataset_id}-coco.zip"'})
