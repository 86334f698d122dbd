"""Detect, batch detect, quick test, suggest, export, publish: trained versions at work.

The path of a detect request: one transaction resolves the model (id or name)
to its published version -> the predictor cache returns that version's warm
predictor (torch or onnxruntime, see engine_choice) -> the image's header is
checked, then it is decoded once, straight to the model's input size -> the
forward pass -> boxes normalized to Custom Vision's shape, plus AI Builder's
counts per label.

Which detections count: those at or above the caller's `threshold` when one is given (one
value for every label), else each label's own threshold, chosen on validation images when the
version was trained so that counts come out right (see connector/training/thresholds.py).
"""
from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from model_store import Store
from model_store.schema import Model, Version

from .. import metrics
from ..errors import Conflict, Invalid, OdError
from ..imaging import check_header, check_image, corrupt
from ..modeling.artifacts import VersionFiles
from ..modeling.boxes import pixels_to_fraction
from . import engine_choice
from . import images as images_svc
from . import webhooks
from .catalog import get_model
from .production import SeenPredictor, Served
from .versions import get_version

if TYPE_CHECKING:
    from ..context import AppContext


@dataclass(frozen=True)
class DetectOptions:
    """What a caller may ask of a detection; a threshold of None means the default."""
    threshold: float | None = None
    max_results: int | None = None
    labels: tuple[str, ...] | None = None


# Versions trained before per-label thresholds were recorded count from this probability.
FALLBACK_THRESHOLD = 0.5


@dataclass(frozen=True)
class Target:
    model_id: int
    model_name: str
    version_id: int
    version_number: int
    labels: tuple[str, ...]        # label index -> name, as the version was trained
    label_ids: tuple[int | None, ...]  # label index -> the model's label id today
    thresholds: tuple[float, ...] = ()  # label index -> the version's default threshold


def version_thresholds(version: Version) -> tuple[float, ...]:
    """Each label's default threshold as recorded in the version's metrics."""
    per_label = (version.metrics or {}).get("perLabel") or {}
    out = []
    for name in version.labels:
        t = (per_label.get(name) or {}).get("threshold")
        out.append(float(t) if t is not None else FALLBACK_THRESHOLD)
    return tuple(out)


def resolve(store: Store, model_ref, version_ref: str | None, default_alias: str) -> Target:
    """Model + version in one read. Detect defaults to `published`, quick test to `lastTrained`."""
    with store.transaction() as s:
        model = get_model(s, model_ref)
        ref = version_ref or default_alias
        if ref == "published" and model.published_version_id is None:
            raise Conflict(f"model {model.name!r} has no published version; publish one first")
        if ref == "lastTrained" and model.last_trained_version_id is None:
            raise Conflict(f"model {model.name!r} has no trained version yet; train it first")
        version = get_version(s, model, ref)
        if version.archived_at is not None:
            raise Conflict(f"version {version.number} of model {model.name!r} is archived")
        return Target(model.id, model.name, version.id, version.number, tuple(version.labels),
                      label_ids_today(model, version), version_thresholds(version))


def label_ids_today(model: Model, version: Version) -> tuple[int | None, ...]:
    """The model's label id for each of the version's labels: by the ids the version recorded
    (so a renamed label still maps), by name for versions trained before labels were recorded."""
    today = {label.id for label in model.labels}
    recorded = version.data_snapshot.get("labelIds")
    if recorded and len(recorded) == len(version.labels):
        return tuple(i if i in today else None for i in recorded)
    ids = {label.name: label.id for label in model.labels}
    return tuple(ids.get(n) for n in version.labels)


def decode_for_detection(predictor, data: bytes, limits: dict, name: str = "image"):
    """The picture ready for the predictor's model, decoded once (a large JPEG at reduced scale):
    the same guards as uploads on the header (but small pictures are fine to detect on), and a
    400 when the pixels do not decode."""
    header = check_header(data, {**limits, "min_side": 1}, name)
    try:
        return predictor.prepare(header)
    except Exception as exc:  # Pillow raises several types for broken data
        raise corrupt(name, exc) from exc


def decode_for_drawing(data: bytes, limits: dict, name: str = "image"):
    """The whole picture, upright and RGB (the quick test draws on it; the predictor resizes it)."""
    return check_image(data, {**limits, "min_side": 1}, name).rgb()


def check_options(target: Target, threshold: float | None, label_filter) -> list[float]:
    """Each label's threshold: the caller's one for every label, or (None) the version's own."""
    if threshold is not None and not 0 <= threshold <= 1:
        raise Invalid("threshold must be between 0 and 1")
    per_label = ([float(threshold)] * len(target.labels) if threshold is not None
                 else list(target.thresholds or [FALLBACK_THRESHOLD] * len(target.labels)))
    if label_filter:
        unknown = sorted(set(label_filter) - set(target.labels))
        if unknown:
            raise Invalid(f"unknown labels {unknown}; this version detects {list(target.labels)}")
    return per_label


def detect(predictor, target: Target, image, threshold: float | None = None, max_results: int | None = None,
           label_filter: tuple[str, ...] | list[str] | None = None) -> tuple[dict, list[dict]]:
    """Run the predictor on one picture (a PIL image, or a ModelInput from decode_for_detection);
    answer in Custom Vision's and AI Builder's shapes. ``threshold`` None: each label's own.

    Returns the response body and the kept detections in pixels (for drawing).
    """
    per_label = check_options(target, threshold, label_filter)
    started = time.perf_counter()
    detections = predictor.predict(image, min_score=min(per_label, default=FALLBACK_THRESHOLD))
    return answer(target, detections, image.size, per_label, max_results, label_filter,
                  time.perf_counter() - started)


def answer(target: Target, detections, size: tuple[int, int], per_label: list[float], max_results: int | None,
           label_filter, seconds: float) -> tuple[dict, list[dict]]:
    """The detect response of a picture of ``size`` (width, height) from the predictor's detections,
    keeping those at or above their label's threshold, and the kept detections in pixels."""
    started = time.perf_counter()
    width, height = size
    kept = []
    for det in detections:
        name = target.labels[det.label_index]
        if (label_filter and name not in label_filter) or det.score < per_label[det.label_index]:
            continue
        kept.append({"labelIndex": det.label_index, "tagName": name, "probability": float(det.score),
                     "x0": det.x0, "y0": det.y0, "x1": det.x1, "y1": det.y1})
    kept.sort(key=lambda d: -d["probability"])
    if max_results is not None:
        kept = kept[:max_results]
    predictions = [{
        "tagId": target.label_ids[d["labelIndex"]],
        "tagName": d["tagName"],
        "probability": round(d["probability"], 4),
        "boundingBox": pixels_to_fraction(d["x0"], d["y0"], d["x1"], d["y1"], width, height, digits=5),
    } for d in kept]
    counts = {name: 0 for name in target.labels if not label_filter or name in label_filter}
    for d in kept:
        counts[d["tagName"]] += 1
    body = {
        "model": {"id": target.model_id, "name": target.model_name},
        "version": target.version_number,
        "image": {"width": width, "height": height},
        "predictions": predictions,
        "counts": [{"tagName": n, "count": c} for n, c in counts.items()],
        "totalCount": len(kept),
        "durationMs": round((seconds + time.perf_counter() - started) * 1000, 1),
    }
    return body, kept


def publish(store: Store, config: dict, model_thread, predictors, model_ref, version_ref) -> dict:
    """Decide the engine (engine_choice), load and warm the version, then switch the pointer in one
    short transaction. The API and the promotion gate both publish through here."""
    target = resolve(store, model_ref, str(version_ref), "published")
    engine = engine_choice.serve(store, config, model_thread, predictors, target.version_id)
    with store.transaction() as s:
        model = s.get(Model, target.model_id)
        previous = model.published_version_id
        model.published_version_id = target.version_id
    webhooks.emit_version_published(store, target.model_id, target.version_id, previous)  # never raises
    return {"modelId": target.model_id, "published": target.version_number,
            "previousVersionId": previous, "versionId": target.version_id, "engine": engine.name}


def unpublish(store: Store, model_ref) -> dict:
    with store.transaction() as s:
        model = get_model(s, model_ref)
        if model.published_version_id is None:
            raise Conflict(f"model {model.name!r} has no published version")
        previous, model.published_version_id = model.published_version_id, None
        return {"modelId": model.id, "published": None, "previousVersionId": previous}


def warm_published(store: Store, cache, skip: set[int]) -> set[int]:
    """Load the published versions into the cache, so that the first detect after a start (or a
    publish by another process) is fast. Returns the versions that failed to load; `skip` holds
    those that failed before (a broken version is reported by detect, not retried here)."""
    from sqlalchemy import select
    with store.transaction() as s:
        ids = s.scalars(select(Model.published_version_id).where(
            Model.published_version_id.is_not(None), Model.archived_at.is_(None)).order_by(Model.updated_at.desc())).all()
    failed = set()
    for version_id in ids[: cache.capacity]:
        if version_id in skip:
            continue
        try:
            cache.get(version_id)
        except Exception:  # a broken version must not stop the service; detect will report it
            import logging
            logging.getLogger("odconnect.inference").exception("could not warm version %s", version_id)
            failed.add(version_id)
    return failed


# --- the use cases the API calls -------------------------------------------------------------

def _detect_on(ctx: "AppContext", target: Target, data: bytes, name: str, options: DetectOptions,
               for_drawing: bool = False, predictor=None):
    predictor = predictor or ctx.predictors.get(target.version_id)
    image = (decode_for_drawing(data, ctx.limits, name) if for_drawing
             else decode_for_detection(predictor, data, ctx.limits, name))
    threshold = ctx.config["inference"]["default_threshold"] if options.threshold is None else options.threshold
    body, kept = detect(predictor, target, image, threshold, options.max_results, options.labels)
    return body, kept, image


def _serve(ctx: "AppContext", target: Target, data: bytes, name: str, options: DetectOptions,
           operation: str, correlation_id: str | None) -> dict:
    """Detect on the published version, then hand what it saw to capture and monitoring: a
    non-blocking hand-over after the answer is computed (connector/jobs/production.py)."""
    seen = SeenPredictor(ctx.predictors.get(target.version_id))
    body = _detect_on(ctx, target, data, name, options, predictor=seen)[0]
    _observe(ctx, target, operation, correlation_id, data, body, seen.found, seen.min_score)
    return body


def _observe(ctx: "AppContext", target: Target, operation: str, correlation_id: str | None, data: bytes,
             body: dict, found, threshold: float) -> None:
    """Hand an answered image to capture and monitoring (never blocks, never raises), and count it."""
    ctx.production.observe(Served(
        target.model_id, target.version_id, target.labels, operation, correlation_id, data,
        body["image"]["width"], body["image"]["height"], tuple(found), threshold,
        tuple(p["tagName"] for p in body["predictions"])))
    metrics.record_detection(target.model_name, body["totalCount"])


def detect_image(ctx: "AppContext", model_ref, data: bytes, name: str, options: DetectOptions,
                 correlation_id: str | None = None) -> dict:
    """Detect with the published version: what flows and apps call."""
    target = resolve(ctx.store, model_ref, None, "published")
    return _serve(ctx, target, data, name, options, "detect", correlation_id)


def detect_batch(ctx: "AppContext", model_ref, items: list[tuple[str, Callable[[], bytes]]],
                 options: DetectOptions, correlation_id: str | None = None) -> dict:
    """Each image's answer or its own error; one version answers the whole batch.

    `items` are (name, read) pairs: reading (e.g. decoding base64) may fail for one image alone.
    """
    if not items:
        raise Invalid("send at least one image")
    limit = ctx.config["inference"]["max_batch"]
    if len(items) > limit:
        raise Invalid(f"{len(items)} images is over the batch limit of {limit}")
    target = resolve(ctx.store, model_ref, None, "published")
    threshold = ctx.config["inference"]["default_threshold"] if options.threshold is None else options.threshold
    per_label = check_options(target, threshold, options.labels)
    predictor = ctx.predictors.get(target.version_id)
    results: list[dict] = []
    ready = []  # (index in results, the decoded picture, its bytes)
    for name, read in items:
        try:
            data = read()
            ready.append((len(results), decode_for_detection(predictor, data, ctx.limits, name), data))
            results.append({"name": name, "status": "ok"})
        except OdError as exc:
            results.append({"name": name, "status": "error", "error": {"status": exc.status, "detail": exc.detail}})
    if ready:  # pictures that pad to the same size share a forward pass (connector/inference/engines.py)
        started = time.perf_counter()
        # every box the version scores: capture and monitoring also see those under the threshold
        found = predictor.predict_inputs([x for _, x, _ in ready], 0.0)
        share = (time.perf_counter() - started) / len(ready)
        for (index, x, data), dets in zip(ready, found):
            body = answer(target, dets, x.size, per_label, options.max_results, options.labels, share)[0]
            results[index]["result"] = body
            _observe(ctx, target, "batch", correlation_id, data, body, dets, min(per_label, default=FALLBACK_THRESHOLD))
    return {"model": {"id": target.model_id, "name": target.model_name}, "version": target.version_number,
            "results": results}


def quick_test(ctx: "AppContext", model_ref, version_ref: str | None, data: bytes, name: str,
               options: DetectOptions) -> tuple[dict, bytes]:
    """Detect with a trained version (the last trained by default) and draw the boxes: (answer, PNG)."""
    from ..inference.draw import draw_detections
    target = resolve(ctx.store, model_ref, version_ref, "lastTrained")
    body, kept, image = _detect_on(ctx, target, data, name, options, for_drawing=True)
    return body, draw_detections(image, kept)


EXPORT_FORMATS = ("detectron2", "torchscript", "onnx")


def export_version(ctx: "AppContext", model_ref, version_ref: str, fmt: str) -> tuple[str, bytes]:
    """(file name, zip bytes) of a version's files. TorchScript is traced and ONNX exported once,
    on the model thread (both run the model); a version ONNX cannot express is a 409 saying why."""
    if fmt not in EXPORT_FORMATS:
        raise Invalid(f"unknown export format {fmt!r}; choose one of {list(EXPORT_FORMATS)}")
    target = resolve(ctx.store, model_ref, version_ref, "lastTrained")
    with ctx.store.transaction() as s:
        files = VersionFiles.at(s.get(Version, target.version_id).artifact_dir)
    wanted = [files.weights, files.config]
    if fmt == "torchscript":
        from ..inference.export import export_torchscript
        wanted.append(ctx.model_thread.call(export_torchscript, files.folder))
    elif fmt == "onnx":
        from ..inference.onnx_export import OnnxExportError, export_onnx
        try:
            meta = ctx.model_thread.call(export_onnx, files.folder)
        except OnnxExportError as exc:
            raise Conflict(f"version {target.version_number} cannot be exported to ONNX: {exc}") from exc
        graphs = json.loads(meta.read_text())["graphs"].values()
        wanted += [files.folder / name for name in graphs] + [meta]
        if files.int8.is_file():  # quantized at publish (same input and outputs, same metadata)
            wanted.append(files.int8)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in wanted:
            zf.write(path, path.name)
    return f"{target.model_name}-v{target.version_number}.zip".replace('"', ""), buf.getvalue()
