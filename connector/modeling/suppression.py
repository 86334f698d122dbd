"""Gaussian Soft-NMS (Bodla et al. 2017), the last step of both serving engines.

Greedy NMS drops every box that overlaps a higher-scoring one of its label by more than a fixed
IoU: in dense scenes (cells that touch, stacked parcels) that deletes real objects, and what it
keeps depends on one threshold. Soft-NMS keeps them and lowers their probability instead, by
exp(-IoU^2 / sigma), so a duplicate (IoU near 1) falls far below any threshold while a neighbour
that overlaps a little keeps most of its probability. A version asks for it with
``ODCONNECT.SOFT_NMS_SIGMA`` (0, and every version trained before it existed: greedy NMS).

The detector then runs with its own NMS switched off (:func:`all_candidates`), and the engines
hand its candidates, in the original picture's pixels, to :func:`soft_nms`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np

__all__ = ["soft_nms_sigma", "soft_nms", "all_candidates", "floor_and_cap"]

_EVERY_CANDIDATE = 10**6  # a detections-per-image cap that never binds


def soft_nms_sigma(cfg) -> float:
    """The version's Soft-NMS sigma; 0 means the detector's own greedy NMS."""
    return float(cfg.get("ODCONNECT", {}).get("SOFT_NMS_SIGMA", 0.0))


def soft_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, sigma: float,
             min_score: float, max_detections: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the boxes kept and their lowered scores, highest score first, at most
    ``max_detections``. Within each class: take the highest-scoring box left, lower the others'
    scores by exp(-IoU^2 / sigma) with it, drop those now under ``min_score``, repeat."""
    if sigma <= 0:
        raise ValueError("sigma must be > 0")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes).reshape(-1)
    kept, kept_scores = [], []
    for c in np.unique(classes):
        idx = np.flatnonzero((classes == c) & (scores >= min_score))
        # Equal scores (a flat region scores alike) are taken top-left first, whatever order the
        # engine listed them in: which goes first decides what the other keeps.
        b = boxes[idx]
        idx = idx[np.lexsort((b[:, 3], b[:, 2], b[:, 1], b[:, 0], -scores[idx]))]
        b, s = boxes[idx], scores[idx]
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        for _ in range(max_detections):
            if not s.size:
                break
            i = int(np.argmax(s))  # the first of equal scores
            kept.append(idx[i])
            kept_scores.append(s[i])
            lt = np.maximum(b[i, :2], b[:, :2])
            rb = np.minimum(b[i, 2:], b[:, 2:])
            inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                iou = np.nan_to_num(inter / (area[i] + area - inter))
            s = s * np.exp(-iou ** 2 / sigma)
            left = s >= min_score
            left[i] = False
            idx, b, s, area = idx[left], b[left], s[left], area[left]  # only what is left: each pass shrinks
    kept, kept_scores = np.asarray(kept, dtype=np.int64), np.asarray(kept_scores)
    order = np.argsort(-kept_scores, kind="stable")[:max_detections]
    return kept[order], kept_scores[order]


def _postprocess_settings(model) -> tuple[object, tuple[str, str, str]]:
    """Where a detectron2 RetinaNet or Faster R-CNN keeps its score threshold, NMS threshold and
    detections-per-image cap."""
    if hasattr(model, "roi_heads"):
        return model.roi_heads.box_predictor, ("test_score_thresh", "test_nms_thresh", "test_topk_per_image")
    return model, ("test_score_thresh", "test_nms_thresh", "max_detections_per_image")


def floor_and_cap(model) -> tuple[float, int]:
    """The ``model``'s score threshold and detections-per-image cap: Soft-NMS's ``min_score`` and
    ``max_detections``."""
    owner, (floor, _, cap) = _postprocess_settings(model)
    return float(getattr(owner, floor)), int(getattr(owner, cap))


@contextmanager
def all_candidates(model) -> Iterator[None]:
    """Within the block, the detectron2 ``model`` (RetinaNet or Faster R-CNN) suppresses nothing
    and caps nothing: it returns every candidate above its score threshold."""
    owner, (_, *names) = _postprocess_settings(model)
    saved = [getattr(owner, n) for n in names]
    # IoU never exceeds 1, and NMS suppresses only above its threshold
    setattr(owner, names[0], 1.0)
    setattr(owner, names[1], _EVERY_CANDIDATE)
    try:
        yield
    finally:
        for n, v in zip(names, saved):
            setattr(owner, n, v)
