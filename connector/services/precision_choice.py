"""Whether onnxruntime serves a version in int8 or float: decided at publish, after the float
export passed its check (engine_choice), and recorded with the engine.

``inference.int8``:

* ``auto``: quantize the network (connector/inference/onnx_quantize.py), calibrated on 32 of the
  version's training pictures; score float and int8 on the version's evaluation images (the
  ones that reported its score, with today's approved boxes); serve int8 only when neither AP50
  nor AP drops by more than ``inference.int8_max_ap_drop``. Without evaluation images that have
  boxes there is nothing to check on, and float serves.
* ``off``: float serves; nothing is quantized.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from sqlalchemy import select

from model_store import Store
from model_store.schema import Image, Version

from ..inference.engines import FLOAT32, INT8
from ..modeling.artifacts import VersionFiles

__all__ = ["FLOAT32", "INT8", "PrecisionChoice", "choose_precision", "int8_verdict", "evaluation_records"]

CALIBRATION_PICTURES = 32  # training pictures the int8 activation ranges are calibrated on

log = logging.getLogger("odconnect.inference")


def int8_verdict(float_metrics: dict, int8_metrics: dict, max_drop: float) -> tuple[bool, str]:
    """(serve int8?, why) from both precisions' metrics on the same images."""
    parts, ok = [], True
    for key, name in (("ap50", "AP50"), ("ap", "AP")):
        f, q = float_metrics.get(key), int8_metrics.get(key)
        if f is None or q is None or math.isnan(f) or math.isnan(q):
            return False, f"int8 not checked: no {name} on the evaluation images"
        ok = ok and f - q <= max_drop
        parts.append(f"{name} {q:.3f} int8 vs {f:.3f} float")
    verdict = "int8 serves" if ok else f"float serves (int8 loses more than {max_drop:g})"
    return ok, f"{verdict}: {', '.join(parts)}"


def evaluation_records(store: Store, version_id: int, count: int):
    """(the version's labels, up to ``count`` ImageRecords): its evaluation images with today's
    approved boxes of the labels it was trained on, read from the store."""
    from .training import image_record

    with store.transaction() as s:
        version = s.get(Version, version_id)
        snapshot = version.data_snapshot or {}
        labels = list(version.labels)
        ids = list(snapshot.get("scored") or snapshot.get("evaluation") or [])
        label_ids = snapshot.get("labelIds") or []
        index = {label_id: i for i, label_id in enumerate(label_ids)} if len(label_ids) == len(labels) else {}
        rows = {img.id: img for img in s.scalars(select(Image).where(Image.id.in_(ids)))} if ids else {}
        records = []
        for image_id in ids:
            img = rows.get(image_id)
            if img is None or img.deleted_at is not None:
                continue
            records.append(image_record(store, img, index))
            if len(records) >= count:
                break
    return labels, records


def _training_pictures(store: Store, version_id: int, count: int) -> list[bytes]:
    from .engine_choice import stored_images
    return [data for _, data in stored_images(store, version_id, count, ("training",))[1]]


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str
    why: str
    # When both precisions were checked: what the one that serves answers on those evaluation
    # images. int8 moves probabilities a little, so production's drift test must compare with
    # int8's answers, not with the float model's profile recorded at training.
    profile: dict | None = None


def choose_precision(store: Store, config: dict, folder: str, version_id: int) -> PrecisionChoice:
    """The precision onnxruntime serves a version in; quantizes when ``inference.int8`` is auto."""
    from pathlib import Path

    from ..inference.onnx_predictor import OnnxPredictor
    from ..inference.onnx_quantize import quantize_network
    from ..training.evaluation import evaluate_detections, prediction_profile

    inference = config["inference"]
    if inference["int8"] == "off":
        # an int8 network from an earlier decision was not checked by this one; without it, a later
        # publish with int8 on quantizes and checks again (engine_choice._int8_untried)
        VersionFiles.at(folder).int8.unlink(missing_ok=True)
        return PrecisionChoice(FLOAT32, "inference.int8 is off")
    labels, records = evaluation_records(store, version_id, inference["int8_check_images"])
    if not any(r.boxes for r in records):
        return PrecisionChoice(FLOAT32, "int8 not checked: no evaluation image with boxes")
    pictures = _training_pictures(store, version_id, CALIBRATION_PICTURES)
    try:
        quantize_network(folder, pictures)
        engines = {precision: OnnxPredictor(folder, num_threads=inference["onnx_threads"], int8=precision == INT8)
                   for precision in (FLOAT32, INT8)}
    except Exception as exc:  # quantization is an optimization: any failure leaves float serving
        log.exception("version id %s: int8 quantization failed", version_id)
        return PrecisionChoice(FLOAT32, f"int8 quantization failed: {type(exc).__name__}: {exc}"[:512])
    found = {precision: [p.predict(Path(r.path).read_bytes(), 0.0) for r in records] for precision, p in engines.items()}
    metrics = {precision: evaluate_detections(dets, records, labels, interval_level=None)
               for precision, dets in found.items()}
    ok, why = int8_verdict(metrics[FLOAT32], metrics[INT8], inference["int8_max_ap_drop"])
    why = f"{why} on {len(records)} evaluation images"
    precision = INT8 if ok else FLOAT32
    return PrecisionChoice(precision, why, prediction_profile(found[precision], labels))
