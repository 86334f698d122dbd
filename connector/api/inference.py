from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

from flask import Response, request

from ..context import ctx
from ..errors import Conflict, Invalid, OdError
from ..services import inference as svc
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


def _options(body, threshold, max_results, labels):
    """Query parameters, or the same keys in a JSON body (what a flow's action form sends)."""
    body = body if isinstance(body, dict) else {}
    threshold = body.get("threshold", threshold)
    max_results = body.get("maxResults", max_results)
    labels = body.get("labels", labels)
    if isinstance(labels, str):
        labels = [x.strip() for x in labels.split(",") if x.strip()]
    return (ctx().config["inference"]["default_threshold"] if threshold is None else float(threshold),
            max_results, labels or None)


def _run(model_id, version, alias, data: bytes, name: str, opts):
    c = ctx()
    target = svc.resolve(c.store, model_id, version, alias)
    image = svc.decode_for_detection(data, c.limits, name)
    predictor = c.services["predictors"].get(target.version_id)
    body, kept = svc.detect(predictor, target, image, *opts)
    return body, kept, image


def detect_objects(model_id, body=None, threshold=None, max_results=None, labels=None):
    data, name = _image_from_request(body)
    result, _, _ = _run(model_id, None, "published", data, name, _options(body, threshold, max_results, labels))
    return result


def detect_objects_batch(model_id, body=None, threshold=None, max_results=None, labels=None, **_files):
    c = ctx()
    if (request.mimetype or "") == "multipart/form-data":
        items = [(f.filename or f"file-{i + 1}", f.read) for i, f in enumerate(request.files.getlist("files"))]
    else:
        items = [(it.get("name") or f"image-{i + 1}", lambda it=it, i=i: decode_base64(it["content"], f"images[{i}].content"))
                 for i, it in enumerate((body or {}).get("images", []))]
    if not items:
        raise Invalid("send at least one image")
    if len(items) > c.config["inference"]["max_batch"]:
        raise Invalid(f"{len(items)} images is over the batch limit of {c.config['inference']['max_batch']}")
    opts = _options(body, threshold, max_results, labels)
    target = svc.resolve(c.store, model_id, None, "published")  # one version for the whole batch
    predictor = c.services["predictors"].get(target.version_id)
    results = []
    for name, read in items:
        try:
            image = svc.decode_for_detection(read(), c.limits, name)
            result, _ = svc.detect(predictor, target, image, *opts)
            results.append({"name": name, "status": "ok", "result": result})
        except OdError as exc:
            results.append({"name": name, "status": "error", "error": {"status": exc.status, "detail": exc.detail}})
    return {"model": {"id": target.model_id, "name": target.model_name}, "version": target.version_number,
            "results": results}


def quick_test(model_id, body=None, version=None, threshold=None, max_results=None, labels=None):
    data, name = _image_from_request(body)
    version = (body or {}).get("version", version) if isinstance(body, dict) else version
    result, kept, image = _run(model_id, version, "lastTrained", data, name,
                               _options(body, threshold, max_results, labels))
    from ..inference.draw import draw_detections
    png = draw_detections(image, kept)
    if request.accept_mimetypes.best_match(["application/json", "image/png"]) == "image/png":
        return Response(png, mimetype="image/png")
    result["annotatedImage"] = base64.b64encode(png).decode()
    return result


def publish_version(model_id, version):
    c = ctx()
    return svc.publish(c.store, c.services["predictors"], model_id, version)


def unpublish_model(model_id):
    return svc.unpublish(ctx().store, model_id)


def export_version(model_id, version, format_="detectron2"):  # connexion renames `format`
    c = ctx()
    target = svc.resolve(c.store, model_id, version, "lastTrained")
    from ..services.versions import artifact_dir
    folder = Path(artifact_dir(c.store, target.version_id))
    if format_ == "torchscript":
        from ..inference.export import export_torchscript
        c.services["model_thread"].call(export_torchscript, folder)  # tracing runs the model
    elif format_ == "onnx":
        from ..inference.onnx_export import OnnxExportError, export_onnx
        try:
            c.services["model_thread"].call(export_onnx, folder)
        except OnnxExportError as exc:
            raise Conflict(f"version {target.version_number} cannot be exported to ONNX: {exc}") from exc
    only_for = {".ts": "torchscript", ".onnx": "onnx", "onnx.json": "onnx"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.iterdir()):
            # traced and exported models go out only when asked for: they are large
            if path.is_file() and only_for.get(path.name, only_for.get(path.suffix)) in (None, format_):
                zf.write(path, path.name)
    filename = f"{target.model_name}-v{target.version_number}.zip".replace('"', "")
    return Response(buf.getvalue(), mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
