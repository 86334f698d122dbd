"""Detection metrics: COCO AP (pycocotools COCOeval) plus micro precision/recall.

``evaluate(predict_fn, records, labels)``: ``predict_fn(record)`` returns the detections for one
:class:`~connector.modeling.records.ImageRecord` as an iterable of objects with ``label_index``,
``score``, ``x0``, ``y0``, ``x1``, ``y1`` (absolute pixels), e.g.
:class:`connector.modeling.predictor.Detection`.

Returned dict::

    {"ap", "ap50", "ap75": COCO AP@[.5:.95], AP@.5, AP@.75 in 0..1 (None when undefined),
     "precision", "recall": micro over all labels at score >= 0.5 and IoU >= 0.5, greedy matching
                            (0.0 when undefined),
     "per_label": {name: {"ap50", "precision", "recall" (None when undefined),
                          "images": images with >= 1 box of the label, "boxes": its boxes}},
     "score": AP50 * 100 rounded to 1 decimal (0.0 when AP50 is undefined),
     "eval_images": number of images evaluated}
"""

from __future__ import annotations

import contextlib
import io
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from connector.modeling.records import ImageRecord

__all__ = ["evaluate", "prediction_profile", "SCORE_THRESHOLD", "IOU_THRESHOLD"]

SCORE_THRESHOLD = 0.5
IOU_THRESHOLD = 0.5


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x0, y0, x1, y1) boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _greedy_match(gts: list[tuple], preds: list[tuple]) -> int:
    """True positives: predictions by descending score each take the best unmatched GT box."""
    used = [False] * len(gts)
    tp = 0
    for p in sorted(preds, key=lambda d: -d[0]):
        best, best_iou = -1, IOU_THRESHOLD
        for i, g in enumerate(gts):
            if not used[i]:
                iou = _iou(p[1:], g)
                if iou >= best_iou:
                    best, best_iou = i, iou
        if best >= 0:
            used[best] = True
            tp += 1
    return tp


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _coco_ap(gt: dict, dets: list[dict], n_labels: int) -> tuple[list[float | None], list[float | None]]:
    """([AP, AP50, AP75], per-label AP50) from COCOeval; None where undefined (-1)."""
    if not gt["annotations"]:
        return [None, None, None], [None] * n_labels
    if not dets:
        # loadRes() rejects an empty list; with ground truth and no detections AP is 0.
        per = [0.0 if any(a["category_id"] == k + 1 for a in gt["annotations"]) else None
               for k in range(n_labels)]
        return [0.0, 0.0, 0.0], per
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [None if s < 0 else float(s) for s in ev.stats[:3]]
    # precision: [T iou thresholds, R recall points, K categories, A areas, M maxDets]
    prec = ev.eval["precision"]
    t50 = int(np.argmin(np.abs(ev.params.iouThrs - 0.5)))
    per: list[float | None] = []
    for k in range(n_labels):
        p = prec[t50, :, k, 0, -1]
        p = p[p > -1]
        per.append(float(p.mean()) if p.size else None)
    return stats, per


def evaluate(predict_fn: Callable[[ImageRecord], Iterable[Any]], records: Sequence[ImageRecord],
             labels: Sequence[str]) -> dict:
    n = len(labels)
    gt: dict = {
        "images": [],
        "annotations": [],
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(labels)],
    }
    dets: list[dict] = []
    tp = [0] * n
    n_pred = [0] * n
    n_gt = [0] * n
    img_count = [0] * n
    for r in records:
        gt["images"].append({"id": r.image_id, "width": r.width, "height": r.height})
        gts_by_label: dict[int, list[tuple]] = {}
        for label, x, y, w, h in r.boxes:
            if not 0 <= label < n:
                raise ValueError(f"image {r.image_id}: label index {label} out of range")
            gt["annotations"].append({
                "id": len(gt["annotations"]) + 1, "image_id": r.image_id, "category_id": label + 1,
                "bbox": [float(x), float(y), float(w), float(h)], "area": float(w) * float(h),
                "iscrowd": 0,
            })
            gts_by_label.setdefault(label, []).append((x, y, x + w, y + h))
        for label, boxes in gts_by_label.items():
            n_gt[label] += len(boxes)
            img_count[label] += 1
        preds_by_label: dict[int, list[tuple]] = {}
        for d in predict_fn(r):
            label = int(d.label_index)
            if not 0 <= label < n:
                continue
            x0, y0, x1, y1 = float(d.x0), float(d.y0), float(d.x1), float(d.y1)
            dets.append({"image_id": r.image_id, "category_id": label + 1,
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(d.score)})
            if d.score >= SCORE_THRESHOLD:
                preds_by_label.setdefault(label, []).append((float(d.score), x0, y0, x1, y1))
        for label, preds in preds_by_label.items():
            n_pred[label] += len(preds)
            tp[label] += _greedy_match(gts_by_label.get(label, []), preds)

    (ap, ap50, ap75), per_ap50 = _coco_ap(gt, dets, n)
    per_label = {
        name: {"ap50": per_ap50[k], "precision": _ratio(tp[k], n_pred[k]),
               "recall": _ratio(tp[k], n_gt[k]), "images": img_count[k], "boxes": n_gt[k]}
        for k, name in enumerate(labels)
    }
    return {
        "ap": ap, "ap50": ap50, "ap75": ap75,
        "precision": _ratio(sum(tp), sum(n_pred)) or 0.0,
        "recall": _ratio(sum(tp), sum(n_gt)) or 0.0,
        "per_label": per_label,
        "score": round(ap50 * 100, 1) if ap50 is not None else 0.0,
        "eval_images": len(records),
    }


PROFILE_MAX_SCORES = 1000  # order statistics kept of the top probabilities (enough for a KS test)


def prediction_profile(per_image: Sequence[Iterable[Any]], labels: Sequence[str],
                       threshold: float = SCORE_THRESHOLD) -> dict:
    """What a model's answers look like on a set of images: production monitoring's baseline.

    ``per_image``: for each image, every detection the model scored (``label_index``, ``score``),
    as ``evaluate``'s ``predict_fn`` returns them. The top probability of an image is its highest
    score (0.0 when the model scored no box), whatever threshold a caller later asks for, so that
    a drift test on it does not depend on the threshold of each request::

        {"images": n, "threshold": threshold,
         "topScores": the images' top probabilities, ascending (at most PROFILE_MAX_SCORES
                      evenly spaced order statistics when there are more images),
         "meanTopProbability", "noDetectionRate": images with no box >= threshold / n,
         "boxesPerImage": {label: boxes >= threshold per image}}
    """
    tops, empty = [], 0
    boxes = [0] * len(labels)
    for dets in per_image:
        scores = [(int(d.label_index), float(d.score)) for d in dets]
        tops.append(max((s for _, s in scores), default=0.0))
        answered = [k for k, s in scores if s >= threshold and 0 <= k < len(labels)]
        empty += not answered
        for k in answered:
            boxes[k] += 1
    n = len(tops)
    tops.sort()
    if n > PROFILE_MAX_SCORES:
        tops = [tops[round(i * (n - 1) / (PROFILE_MAX_SCORES - 1))] for i in range(PROFILE_MAX_SCORES)]
    return {
        "images": n, "threshold": threshold, "topScores": [round(t, 4) for t in tops],
        "meanTopProbability": round(sum(tops) / len(tops), 4) if tops else None,
        "noDetectionRate": round(empty / n, 4) if n else None,
        "boxesPerImage": {name: round(boxes[k] / n, 4) if n else None for k, name in enumerate(labels)},
    }
