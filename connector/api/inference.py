"""Detect, batch detect, quick test, publish, export: parse the request, call one service."""
from __future__ import annotations

import base64
import io

from flask import Response, request, send_file

from ..context import ctx
from ..errors import Invalid
from ..services import inference as svc
from ..services.inference import DetectOptions
from ..services.production import correlation_id
from .images import decode_base64


def _image_from_request(body) -> tuple[bytes, str]:
    """The one image of a request, in any of the three forms: JSON base64, multipart, raw body."""
    ctype = (request.mimetype or "").lower()
    if ctype == "application/json":
        if not isinstance(body, dict) or not body.get("content"):
            raise Invalid("send the image as base64 in 'content'")
        return decode_base64(body["content"], "content"), body.get("name") or "image"
    if ctype == "multipart/form-data":
        f = request.files.get("file")
        if f is None:
            raise Invalid("send the image in the 'file' form field")
        return f.read(), f.filename or "image"
    return request.get_data(cache=False), "image"


def _options(body, threshold, max_results, labels) -> DetectOptions:
    """Query parameters, or the same keys in a JSON body (what a flow's action form sends)."""
    body = body if isinstance(body, dict) else {}
    threshold = body.get("threshold", threshold)
    labels = body.get("labels", labels)
    if isinstance(labels, str):
        labels = [x.strip() for x in labels.split(",") if x.strip()]
    return DetectOptions(None if threshold is None else float(threshold), body.get("maxResults", max_results),
                         tuple(labels) if labels else None)


def detect_objects(model_id, body=None, threshold=None, max_results=None, labels=None):
    data, name = _image_from_request(body)
    return svc.detect_image(ctx(), model_id, data, name, _options(body, threshold, max_results, labels),
                            correlation_id(request.headers))


def detect_objects_batch(model_id, body=None, threshold=None, max_results=None, labels=None, **_files):
    if (request.mimetype or "") == "multipart/form-data":
        items = [(f.filename or f"file-{i + 1}", f.read) for i, f in enumerate(request.files.getlist("files"))]
    else:
        items = [(it.get("name") or f"image-{i + 1}",
                  lambda it=it, i=i: decode_base64(it["content"], f"images[{i}].content"))
                 for i, it in enumerate((body or {}).get("images", []))]
    return svc.detect_batch(ctx(), model_id, items, _options(body, threshold, max_results, labels),
                            correlation_id(request.headers))


def quick_test(model_id, body=None, version=None, threshold=None, max_results=None, labels=None):
    data, name = _image_from_request(body)
    version = (body or {}).get("version", version) if isinstance(body, dict) else version
    result, png = svc.quick_test(ctx(), model_id, version, data, name, _options(body, threshold, max_results, labels))
    if request.accept_mimetypes.best_match(["application/json", "image/png"]) == "image/png":
        return Response(png, mimetype="image/png")
    return {**result, "annotatedImage": base64.b64encode(png).decode()}


def publish_version(model_id, version):
    c = ctx()
    return svc.publish(c.store, c.config, c.model_thread, c.predictors, model_id, version)


def unpublish_model(model_id):
    return svc.unpublish(ctx().store, model_id)


def export_version(model_id, version, format_="detectron2"):  # connexion renames `format`
    filename, archive = svc.export_version(ctx(), model_id, version, format_)
    # send_file writes a non-ASCII name (the model's) as RFC 5987 filename*, which HTTP headers can carry
    return send_file(io.BytesIO(archive), mimetype="application/zip", as_attachment=True, download_name=filename)
