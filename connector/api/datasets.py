from __future__ import annotations

from flask import Response, request

from ..context import ctx
from ..errors import Invalid
from ..services import catalog, formats
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


def _import(fmt: str, model_id, dataset_id, body):
    c = ctx()
    images = request.files.get("images")
    if images is None:
        raise Invalid("send the images as a zip in the 'images' form field")
    annotations = request.files.get("annotations")
    add = str((body or {}).get("addLabels", "true")).lower() not in ("false", "0", "no")
    return formats.import_archive(c.store, c.limits, fmt, model_id, dataset_id, images.read(),
                                  annotations.read() if annotations is not None else None, add), 201


def import_coco(model_id, dataset_id, body=None, **_files):
    return _import("coco", model_id, dataset_id, body)


def import_voc(model_id, dataset_id, body=None, **_files):
    return _import("voc", model_id, dataset_id, body)


def import_yolo(model_id, dataset_id, body=None, **_files):
    return _import("yolo", model_id, dataset_id, body)


def import_label_studio(model_id, dataset_id, body=None, **_files):
    return _import("labelstudio", model_id, dataset_id, body)


def import_custom_vision(model_id, dataset_id, body=None, **_files):
    return _import("customvision", model_id, dataset_id, body)


def import_coco_folder(model_id, dataset_id, body):
    c = ctx()
    return formats.import_coco_folder(c.store, c.limits, c.config["storage"]["import_root"], model_id, dataset_id,
                                      body["folder"], body.get("annotations", "coco.json"),
                                      body.get("addLabels", True)), 201


def _zip(name_and_archive: tuple[str, bytes]) -> Response:
    name, archive = name_and_archive
    return Response(archive, mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def export_coco(model_id, dataset_id, include_images=False):
    if include_images:
        return _zip(formats.export_archive(ctx().store, "coco", model_id, dataset_id))
    return formats.export_coco_json(ctx().store, model_id, dataset_id)


def export_yolo(model_id, dataset_id):
    return _zip(formats.export_archive(ctx().store, "yolo", model_id, dataset_id))


def export_voc(model_id, dataset_id):
    return _zip(formats.export_archive(ctx().store, "voc", model_id, dataset_id))
