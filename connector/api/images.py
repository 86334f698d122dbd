from __future__ import annotations

import base64
import binascii

from flask import Response, request

from ..context import ctx
from ..errors import Invalid
from ..services import image_list
from ..services import images as svc
from ..services.images import Upload
from .responses import no_content


def decode_base64(value: str, what: str) -> bytes:
    """Base64 as flows send it: plain, or a data URL (what a Power Apps camera gives)."""
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(f"{what} is not valid base64") from None


def _answer(report: dict):
    if report["created"] == 0 and report["duplicates"] == 0:
        raise Invalid("no image was accepted: " + "; ".join(r["reason"] for r in report["results"]),
                      results=report["results"])
    return report, 201 if report["created"] else 200


def upload_images_json(model_id, dataset_id, body):
    uploads = [Upload(name=item.get("name") or f"image-{i + 1}",
                      data=decode_base64(item["content"], f"images[{i}].content"),
                      regions=item.get("regions"))
               for i, item in enumerate(body["images"])]
    return _answer(svc.add_images(ctx().store, ctx().limits, model_id, dataset_id, uploads))


def upload_image_files(model_id, dataset_id, body=None, files=None):
    sent = request.files.getlist("files")
    uploads = [Upload(name=f.filename or f"file-{i + 1}", data=f.read()) for i, f in enumerate(sent)]
    return _answer(svc.add_images(ctx().store, ctx().limits, model_id, dataset_id, uploads))


def upload_image_binary(model_id, dataset_id, body=None, name=None):
    data = request.get_data(cache=False)
    return _answer(svc.add_images(ctx().store, ctx().limits, model_id, dataset_id,
                                  [Upload(name=name or "image", data=data)]))


def list_images(model_id, dataset_id, page=1, page_size=50, label=None, tagged=None, has_suggestions=None,
                sort="id"):
    return image_list.list_images(ctx().store, model_id, dataset_id, page, page_size, label, tagged, has_suggestions, sort)


def get_image(model_id, dataset_id, image_id):
    return svc.image_details(ctx().store, model_id, dataset_id, image_id)


def get_image_content(model_id, dataset_id, image_id):
    data, mimetype = svc.image_content(ctx().store, model_id, dataset_id, image_id)
    return Response(data, mimetype=mimetype)


def delete_image(model_id, dataset_id, image_id):
    svc.delete_image(ctx().store, model_id, dataset_id, image_id)
    return no_content()


def set_image_regions(model_id, dataset_id, image_id, body, keep_suggestions=True):
    return svc.set_regions(ctx().store, model_id, dataset_id, image_id, body["regions"], keep_suggestions)


def approve_regions(model_id, dataset_id, image_id, body=None):
    return svc.approve_regions(ctx().store, model_id, dataset_id, image_id, (body or {}).get("regionIds"))
