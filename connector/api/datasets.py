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
    limits = c.limits
    images = request.files.get("images")
    if images is None:
        raise Invalid("send the images as a zip in the 'images' form field")
    source = coco.ZipSource(images.read(), limits["max_import_bytes"], limits["max_image_bytes"])
    annotations = request.files.get("annotations")
    if annotations is not None:
        raw = annotations.read()
    else:
        found = source.json_files()
        if len(found) != 1:
            raise Invalid("send the COCO annotations in the 'annotations' form field, "
                          f"or put exactly one .json file in the zip (found {len(found)})")
        raw = source.read_named(found[0])
    add = str((body or {}).get("addLabels", "true")).lower() not in ("false", "0", "no")
    report = coco.import_coco(c.store, limits, model_id, dataset_id, coco.parse_coco(raw), source, add)
    return report, 201


def import_coco_folder(model_id, dataset_id, body):
    c = ctx()
    folder = coco.resolve_import_folder(c.config["storage"]["import_root"], body["folder"])
    read = coco.FolderSource(folder, c.limits["max_image_bytes"])
    try:
        raw = read(body.get("annotations", "coco.json"))
    except FileNotFoundError as exc:
        raise Invalid(f"annotations file: {exc}") from exc
    report = coco.import_coco(c.store, c.limits, model_id, dataset_id, coco.parse_coco(raw), read,
                              body.get("addLabels", True))
    return report, 201


def export_coco(model_id, dataset_id, include_images=False):
    data, archive = coco.export_coco(ctx().store, model_id, dataset_id, include_images)
    if archive is None:
        return data
    return Response(archive, mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="dataset-{dataset_id}-coco.zip"'})
