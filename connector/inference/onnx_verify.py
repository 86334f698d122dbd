"""Check that an ONNX export predicts what the torch predictor predicts, image by image.

Every box of one engine must have a box of the other with the same label, IoU >= ``min_iou``
(0.99) and a probability within ``prob_tol`` (0.01). Matching is greedy per label, best IoU
first: after per-class NMS two boxes of one label in one engine overlap by at most the NMS
threshold (0.5), so a box can have at most one partner above 0.99 and greedy is exact.

A box without a partner is excused only where rounding alone may decide (the engines' outputs
differ by about 1e-6), that is where it ties, within ``tie_tol`` (0.0001), with

* ``min_score``: the other engine may have it just below;
* the other engine's lowest probability: where the list ends (the model's cap on detections
  per image, a chain of NMS decisions among tied boxes) may cut either of the two;
* a box of the same label in the other engine that overlaps it by more than the model's NMS
  IoU threshold: NMS keeps whichever of the two comes first, and a tie decides that. With
  Soft-NMS any overlap counts: whichever comes first lowers the other's probability.

Barely trained models give such ties by the hundred (every score near the prior 0.01); a
trained one rarely does. A systematic fault (shifted anchors, a wrong channel order) changes
most boxes, and most boxes have no tie to hide behind.
"""
from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np
from PIL import Image, ImageOps

from ..imaging import to_rgb
from ..modeling.boxes import iou_matrix

__all__ = ["VerifyReport", "compare", "verify", "set_score_threshold"]


@dataclass
class VerifyReport:
    images: int = 0
    matched: int = 0
    max_prob_diff: float = 0.0
    min_iou: float = 1.0
    excused: int = 0  # unpartnered near-ties (see the module docstring)
    boxes: dict = field(default_factory=lambda: {"torch": 0, "onnxruntime": 0})  # compared, per engine
    unmatched: list[dict] = field(default_factory=list)  # {image, engine, label, probability, box}

    @property
    def ok(self) -> bool:
        return not self.unmatched

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def summary(self) -> str:
        return (f"{self.images} images: {self.matched} boxes matched (min IoU {self.min_iou:.4f}, "
                f"max probability difference {self.max_prob_diff:.4g}), {len(self.unmatched)} unmatched, "
                f"{self.excused} near-ties excused")


def _boxes(dets: list) -> np.ndarray:
    return np.array([[d.x0, d.y0, d.x1, d.y1] for d in dets], np.float64).reshape(-1, 4)


def compare(reference: list, candidate: list, report: VerifyReport, image: str = "", *,
            min_score: float = 0.0, min_iou: float = 0.99, prob_tol: float = 0.01,
            tie_tol: float = 1e-4, nms_iou: float = 0.5, labels: list[str] | None = None) -> VerifyReport:
    """Add one image's comparison (torch detections ``reference``, ONNX ``candidate``) to ``report``."""
    report.images += 1
    sides = {"torch": [d for d in reference if d.score >= min_score],
             "onnxruntime": [d for d in candidate if d.score >= min_score]}
    matched = {name: set() for name in sides}
    for name, dets in sides.items():
        report.boxes[name] += len(dets)
    for label in {d.label_index for ds in sides.values() for d in ds}:
        ref = [i for i, d in enumerate(sides["torch"]) if d.label_index == label]
        cand = [i for i, d in enumerate(sides["onnxruntime"]) if d.label_index == label]
        if not ref or not cand:
            continue
        iou = iou_matrix(_boxes([sides["torch"][i] for i in ref]), _boxes([sides["onnxruntime"][j] for j in cand]))
        dp = np.abs(np.array([sides["torch"][i].score for i in ref])[:, None]
                    - np.array([sides["onnxruntime"][j].score for j in cand])[None, :])
        ok = (iou >= min_iou) & (dp <= prob_tol)
        for r, c in sorted(zip(*np.nonzero(ok)), key=lambda rc: (-iou[rc], dp[rc])):
            if ref[r] in matched["torch"] or cand[c] in matched["onnxruntime"]:
                continue
            matched["torch"].add(ref[r])
            matched["onnxruntime"].add(cand[c])
            report.matched += 1
            report.max_prob_diff = max(report.max_prob_diff, float(dp[r, c]))
            report.min_iou = min(report.min_iou, float(iou[r, c]))
    for name, other in (("torch", "onnxruntime"), ("onnxruntime", "torch")):
        lowest_other = min((d.score for d in sides[other]), default=None)
        for i, d in enumerate(sides[name]):
            if i in matched[name]:
                continue
            rivals = [e for e in sides[other] if e.label_index == d.label_index and abs(e.score - d.score) <= tie_tol]
            nms_tie = bool(rivals) and bool((iou_matrix(_boxes([d]), _boxes(rivals)) > nms_iou).any())
            at_tail = lowest_other is not None and abs(d.score - lowest_other) <= tie_tol
            if d.score < min_score + tie_tol or at_tail or nms_tie:
                report.excused += 1
                continue
            report.unmatched.append({
                "image": image, "engine": name, "probability": round(d.score, 6),
                "label": labels[d.label_index] if labels else d.label_index,
                "box": [round(v, 2) for v in (d.x0, d.y0, d.x1, d.y1)]})
    return report


def _upright(image: Image.Image | bytes) -> Image.Image:
    """Decoded in full (no reduced-scale JPEG decode: both engines must see the same pixels)."""
    img = Image.open(io.BytesIO(image)) if isinstance(image, (bytes, bytearray)) else image
    img = ImageOps.exif_transpose(img)
    return to_rgb(img)


def verify(torch_predictor, onnx_predictor, images: Iterable[tuple[str, Image.Image | bytes]], *,
           min_score: float = 0.0, min_iou: float = 0.99, prob_tol: float = 0.01) -> VerifyReport:
    """Run both predictors on each (name, picture) and compare every box; ``report.ok`` says it passed."""
    meta = onnx_predictor.meta
    post = meta.get("postprocess") or meta.get("roi_heads") or {}
    # Which overlap makes two near-equal boxes a tie whose order decides what each keeps: above the
    # NMS threshold for greedy NMS; any overlap for Soft-NMS, which lowers every overlapping box.
    nms_iou = 0.0 if post.get("soft_nms_sigma") else post.get("nms_thresh", 0.5)
    report = VerifyReport()
    for name, image in images:
        img = _upright(image)
        compare(torch_predictor.predict(img, min_score), onnx_predictor.predict(img, min_score), report,
                name, min_score=min_score, min_iou=min_iou, prob_tol=prob_tol,
                nms_iou=nms_iou, labels=onnx_predictor.labels)
    return report


def set_score_threshold(torch_predictor, onnx_predictor, value: float) -> None:
    """Make both engines keep candidates scoring above ``value`` (for predictors built for a check
    only): a barely trained model keeps no box at its own threshold, and comparing no boxes
    checks nothing of the post-processing."""
    if onnx_predictor.architecture == "retinanet":
        torch_predictor.model.test_score_thresh = value
        onnx_predictor.meta["postprocess"]["score_thresh"] = value
    else:  # Faster R-CNN: the box head's threshold
        torch_predictor.model.roi_heads.box_predictor.test_score_thresh = value
        onnx_predictor.meta["roi_heads"]["score_thresh"] = value
