"""Detection metrics: COCO AP (pycocotools COCOeval), and per label precision, recall and count
error at the version's probability thresholds, plus a bootstrap interval of the score.

Predictions are gathered once (:func:`predict_all`) and matched once (:func:`match`): greedy
matching in descending score order means the matches of the detections above any threshold are
a prefix of the matches of all of them, so every threshold, count and resample reads the same
:class:`Matches`.

``evaluate(predict_fn, records, labels, thresholds=None)``: ``predict_fn(record)`` returns the
detections for one :class:`~connector.modeling.records.ImageRecord` as an iterable of objects
with ``label_index``, ``score``, ``x0``, ``y0``, ``x1``, ``y1`` (absolute pixels), e.g.
:class:`connector.modeling.predictor.Detection`. ``thresholds`` (one per label) default to
:data:`SCORE_THRESHOLD`.

Returned dict::

    {"ap", "ap50", "ap75": COCO AP@[.5:.95], AP@.5, AP@.75 in 0..1 (None when undefined),
     "precision", "recall": micro over all labels at each label's threshold, IoU >= 0.5
                            (0.0 when undefined),
     "per_label": {name: {"ap50", "threshold", "precision", "recall" (at the threshold),
                          "count_error": mean |predicted - true count| per image,
                          "relative_count_error": that error / the mean true count per image,
                          "images": images with >= 1 box of the label, "boxes": its boxes,
                          "curve": [{"threshold", "precision", "recall", "count_error",
                                     "relative_count_error"}] at each of CURVE_THRESHOLDS}},
     "score": AP50 * 100 rounded to 1 decimal (0.0 when AP50 is undefined),
     "score_interval": {"low", "high", "level"}: bootstrap interval of the score over the
                       evaluation images (None when there is nothing to resample),
     "eval_images": number of images evaluated}
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from connector.modeling.boxes import iou_xyxy
from connector.modeling.records import ImageRecord
from connector.training.bootstrap import score_interval

__all__ = ["evaluate", "evaluate_detections", "predict_all", "match", "Matches", "prediction_profile",
           "SCORE_THRESHOLD", "IOU_THRESHOLD", "CURVE_THRESHOLDS", "operating_point"]

SCORE_THRESHOLD = 0.5  # a label's threshold when none could be chosen on validation images
IOU_THRESHOLD = 0.5
# Where each label's operating curve is read: what a maker sees move with the Performance view's
# probability slider (as in Custom Vision), and can then give a flow as its threshold.
CURVE_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
MAX_DETS = 100  # COCOeval's maxDets for AP: the score interval resamples the same detections


def _greedy_tp(gts: list[tuple], boxes: list[tuple]) -> list[bool]:
    """Per box (already in descending score order): does it take an unmatched GT box at IoU >= 0.5?

    Each takes the best unmatched GT box, as COCOeval does, so the flags of any score prefix
    are what matching that prefix alone would give.
    """
    used = [False] * len(gts)
    flags = []
    for p in boxes:
        best, best_iou = -1, IOU_THRESHOLD
        for i, g in enumerate(gts):
            if not used[i]:
                iou = iou_xyxy(p, g)
                if iou >= best_iou:
                    best, best_iou = i, iou
        if best >= 0:
            used[best] = True
        flags.append(best >= 0)
    return flags


@dataclass
class Matches:
    """Detections of every label on a list of images, matched to the true boxes once.

    Per label k: ``scores[k]``, ``tp[k]`` (bool) and ``image[k]`` (index into the images) of its
    detections, in descending score order (stable); ``gt[:, k]``: true boxes of k per image.
    ``ranked[k]``: whether a detection is among the top ``MAX_DETS`` of its image and label
    (the ones COCO's AP reads).
    """
    scores: list[np.ndarray]
    tp: list[np.ndarray]
    image: list[np.ndarray]
    ranked: list[np.ndarray]
    gt: np.ndarray  # (images, labels) int

    @property
    def n_images(self) -> int:
        return int(self.gt.shape[0])

    def counts(self, k: int, threshold: float) -> np.ndarray:
        """Predicted count of label k per image at ``threshold``."""
        keep = self.scores[k] >= threshold
        return np.bincount(self.image[k][keep], minlength=self.n_images)

    def tp_pred(self, k: int, threshold: float) -> tuple[int, int]:
        """(true positives, predictions) of label k at ``threshold``."""
        keep = self.scores[k] >= threshold
        return int(self.tp[k][keep].sum()), int(keep.sum())


def predict_all(predict_fn: Callable[[ImageRecord], Iterable[Any]], records: Sequence[ImageRecord]) -> list[list]:
    return [list(predict_fn(r)) for r in records]


def match(detections: Sequence[Sequence[Any]], records: Sequence[ImageRecord], n_labels: int) -> Matches:
    per: list[list[tuple[float, bool, int, int]]] = [[] for _ in range(n_labels)]
    gt = np.zeros((len(records), n_labels), dtype=np.int64)
    for i, (r, dets) in enumerate(zip(records, detections)):
        gts_by_label: dict[int, list[tuple]] = {}
        for label, x, y, w, h in r.boxes:
            if not 0 <= label < n_labels:
                raise ValueError(f"image {r.image_id}: label index {label} out of range")
            gts_by_label.setdefault(int(label), []).append((x, y, x + w, y + h))
            gt[i, label] += 1
        by_label: dict[int, list] = {}
        for d in dets:
            if 0 <= int(d.label_index) < n_labels:
                by_label.setdefault(int(d.label_index), []).append(d)
        for k, ds in by_label.items():
            ds = sorted(ds, key=lambda d: -float(d.score))  # stable, like COCOeval's mergesort
            flags = _greedy_tp(gts_by_label.get(k, []),
                               [(float(d.x0), float(d.y0), float(d.x1), float(d.y1)) for d in ds])
            per[k] += [(float(d.score), f, i, rank) for rank, (d, f) in enumerate(zip(ds, flags))]
    scores, tp, image, ranked = [], [], [], []
    for rows in per:
        rows.sort(key=lambda t: -t[0])
        scores.append(np.array([t[0] for t in rows], dtype=np.float64))
        tp.append(np.array([t[1] for t in rows], dtype=bool))
        image.append(np.array([t[2] for t in rows], dtype=np.int64))
        ranked.append(np.array([t[3] < MAX_DETS for t in rows], dtype=bool))
    return Matches(scores, tp, image, ranked, gt)


def _ratio(num: float, den: float) -> float | None:
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


def _coco_inputs(detections, records, n_labels) -> tuple[dict, list[dict]]:
    gt: dict = {"images": [], "annotations": [],
                "categories": [{"id": k + 1, "name": str(k)} for k in range(n_labels)]}
    dets: list[dict] = []
    for r, ds in zip(records, detections):
        gt["images"].append({"id": r.image_id, "width": r.width, "height": r.height})
        for label, x, y, w, h in r.boxes:
            gt["annotations"].append({
                "id": len(gt["annotations"]) + 1, "image_id": r.image_id, "category_id": int(label) + 1,
                "bbox": [float(x), float(y), float(w), float(h)], "area": float(w) * float(h), "iscrowd": 0})
        for d in ds:
            if 0 <= int(d.label_index) < n_labels:
                x0, y0, x1, y1 = float(d.x0), float(d.y0), float(d.x1), float(d.y1)
                dets.append({"image_id": r.image_id, "category_id": int(d.label_index) + 1,
                             "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(d.score)})
    return gt, dets


def count_errors(m: Matches, k: int, threshold: float) -> tuple[float | None, float | None]:
    """(mean absolute count error per image, that error / the mean true count per image) of label k.

    The relative error divides by the mean true count rather than averaging per-image ratios, so
    images without the label (where a ratio is undefined) still count their false objects.
    """
    if m.n_images == 0:
        return None, None
    err = np.abs(m.counts(k, threshold) - m.gt[:, k])
    return float(err.mean()), _ratio(float(err.sum()), float(m.gt[:, k].sum()))


def operating_point(m: Matches, k: int, threshold: float) -> dict:
    """Label k counted from ``threshold``: its precision, recall and count errors there."""
    tp, pred = m.tp_pred(k, threshold)
    mae, rel = count_errors(m, k, threshold)
    return {"threshold": threshold, "precision": _ratio(tp, pred), "recall": _ratio(tp, int(m.gt[:, k].sum())),
            "count_error": mae, "relative_count_error": rel}


def evaluate_detections(detections: Sequence[Sequence[Any]], records: Sequence[ImageRecord],
                        labels: Sequence[str], thresholds: Sequence[float] | None = None,
                        interval_level: float | None = 0.9) -> dict:
    """Metrics of ``detections`` (one list per record); ``interval_level`` None skips the interval."""
    n = len(labels)
    thresholds = [SCORE_THRESHOLD] * n if thresholds is None else [float(t) for t in thresholds]
    if len(thresholds) != n:
        raise ValueError(f"{len(thresholds)} thresholds for {n} labels")
    m = match(detections, records, n)
    (ap, ap50, ap75), per_ap50 = _coco_ap(*_coco_inputs(detections, records, n), n)
    per_label, tp_all, pred_all = {}, 0, 0
    for k, name in enumerate(labels):
        tp, pred = m.tp_pred(k, thresholds[k])
        boxes = int(m.gt[:, k].sum())
        tp_all, pred_all = tp_all + tp, pred_all + pred
        per_label[name] = {"ap50": per_ap50[k], **operating_point(m, k, thresholds[k]),
                           "images": int((m.gt[:, k] > 0).sum()), "boxes": boxes,
                           "curve": [operating_point(m, k, t) for t in CURVE_THRESHOLDS]}
    interval = score_interval(m, interval_level) if ap50 is not None and interval_level else None
    return {
        "ap": ap, "ap50": ap50, "ap75": ap75,
        "precision": _ratio(tp_all, pred_all) or 0.0,
        "recall": _ratio(tp_all, int(m.gt.sum())) or 0.0,
        "per_label": per_label,
        "score": round(ap50 * 100, 1) if ap50 is not None else 0.0,
        "score_interval": interval,
        "eval_images": len(records),
    }


def evaluate(predict_fn: Callable[[ImageRecord], Iterable[Any]], records: Sequence[ImageRecord],
             labels: Sequence[str], thresholds: Sequence[float] | None = None) -> dict:
    return evaluate_detections(predict_all(predict_fn, records), records, labels, thresholds)


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
