"""detectron2's test-time box decoding, in NumPy, for networks exported to ONNX.

The exported graphs stop where detectron2's inference turns tensors into a variable number of
boxes (see ``onnx_export``). Everything after that point is here, step for step as detectron2
0.7 does it, so that the ONNX engine returns the boxes the torch predictor returns:

* anchors: ``DefaultAnchorGenerator`` (cell anchors shifted over each level's grid,
  location-major, anchor-minor);
* deltas to boxes: ``Box2BoxTransform.apply_deltas`` (float32, ``scale_clamp``);
* RetinaNet: per level, scores above ``score_thresh``, the ``topk_candidates`` best, decoded;
  then per-class NMS over all levels and the ``detections_per_image`` best
  (``RetinaNet.inference_single_image``);
* Faster R-CNN: RPN proposals (``find_top_rpn_proposals``), their FPN level
  (``assign_boxes_to_levels``), and the box head's detections
  (``fast_rcnn_inference_single_image``);
* boxes back to the original picture: ``detector_postprocess`` (scale, clip, drop empty).

NMS is the greedy one of torchvision (suppress when IoU > threshold, highest score first). A
version with ``soft_nms_sigma`` > 0 skips it here: its candidates go back to the original picture
and through ``connector.modeling.suppression.soft_nms``, as in the torch predictor.
"""
from __future__ import annotations

import numpy as np

__all__ = ["grid_anchors", "level_grid_sizes", "apply_deltas", "nms", "batched_nms",
           "retinanet_detections", "rpn_proposals", "assign_levels", "fast_rcnn_detections",
           "to_original"]

F32 = np.float32


def level_grid_sizes(height: int, width: int, strides: list[int]) -> list[tuple[int, int]]:
    """(rows, columns) of each pyramid level for a padded input of height x width.

    ceil(size / stride) for every level: exact for the backbone's levels, and what the extra
    levels made by stride-2 layers on top (RetinaNet's P6/P7 convs, the R-CNN P6 max-pool)
    give too, since each rounds up a halving and ceil(ceil(x / a) / b) == ceil(x / (a * b)).
    """
    return [(-(-height // s), -(-width // s)) for s in strides]


def grid_anchors(cell_anchors: np.ndarray, stride: int, offset: float, rows: int, cols: int) -> np.ndarray:
    """(rows * cols * A, 4) XYXY anchors: every cell anchor shifted to every grid location."""
    shift_x = np.arange(offset * stride, cols * stride, step=stride, dtype=F32)
    shift_y = np.arange(offset * stride, rows * stride, step=stride, dtype=F32)
    sy, sx = np.meshgrid(shift_y, shift_x, indexing="ij")
    shifts = np.stack((sx.ravel(), sy.ravel(), sx.ravel(), sy.ravel()), axis=1)
    return (shifts[:, None, :] + cell_anchors.astype(F32)[None, :, :]).reshape(-1, 4)


def apply_deltas(deltas: np.ndarray, boxes: np.ndarray, weights, scale_clamp: float) -> np.ndarray:
    """Boxes (R, k*4) from deltas (R, k*4) applied to boxes (R, 4), as Box2BoxTransform."""
    deltas = deltas.astype(F32, copy=False)
    boxes = boxes.astype(F32, copy=False)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    ctr_x = boxes[:, 0] + F32(0.5) * widths
    ctr_y = boxes[:, 1] + F32(0.5) * heights
    wx, wy, ww, wh = (F32(w) for w in weights)
    dx = deltas[:, 0::4] / wx
    dy = deltas[:, 1::4] / wy
    dw = np.minimum(deltas[:, 2::4] / ww, F32(scale_clamp))
    dh = np.minimum(deltas[:, 3::4] / wh, F32(scale_clamp))
    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    pred_w = np.exp(dw) * widths[:, None]
    pred_h = np.exp(dh) * heights[:, None]
    out = np.stack((pred_ctr_x - F32(0.5) * pred_w, pred_ctr_y - F32(0.5) * pred_h,
                    pred_ctr_x + F32(0.5) * pred_w, pred_ctr_y + F32(0.5) * pred_h), axis=-1)
    return out.reshape(deltas.shape)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy NMS, highest score first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(F32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(F32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(iou > F32(iou_threshold))]  # a NaN IoU (two empty boxes) suppresses nothing
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, groups: np.ndarray, iou_threshold: float) -> np.ndarray:
    """NMS within each group (class or level); kept indices sorted by score, highest first."""
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    kept = [idx[nms(boxes[idx], scores[idx], iou_threshold)]
            for idx in (np.flatnonzero(groups == g) for g in np.unique(groups))]
    keep = np.concatenate(kept)
    return keep[np.argsort(-scores[keep], kind="stable")]


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, largest first."""
    if values.size > k:
        part = np.argpartition(-values, k - 1)[:k]
        return part[np.argsort(-values[part], kind="stable")]
    return np.argsort(-values, kind="stable")


def retinanet_detections(level_scores: list[np.ndarray], level_deltas: list[np.ndarray],
                         level_anchors: list[np.ndarray], p: dict):
    """(boxes (D,4), scores (D,), classes (D,)) of one image, in the resized input's pixels.

    ``level_scores[l]``: (H*W*A, K) sigmoid scores; ``level_deltas[l]``: (H*W*A, 4).
    """
    boxes, scores, classes = [], [], []
    for s, d, a in zip(level_scores, level_deltas, level_anchors):
        num_classes = s.shape[1]
        flat = s.reshape(-1)
        cand = np.flatnonzero(flat > F32(p["score_thresh"]))
        cand = cand[_top(flat[cand], int(p["topk_candidates"]))]
        anchor_idx, class_idx = np.divmod(cand, num_classes)
        boxes.append(apply_deltas(d[anchor_idx], a[anchor_idx], p["box_weights"], p["scale_clamp"]))
        scores.append(flat[cand])
        classes.append(class_idx)
    boxes, scores, classes = np.concatenate(boxes), np.concatenate(scores), np.concatenate(classes)
    if p.get("soft_nms_sigma"):
        return boxes, scores, classes  # soft_nms, in the original picture's pixels, suppresses
    keep = batched_nms(boxes, scores, classes, p["nms_thresh"])[: int(p["detections_per_image"])]
    return boxes[keep], scores[keep], classes[keep]


def _clip(boxes: np.ndarray, height: float, width: float) -> np.ndarray:
    out = np.empty_like(boxes)
    out[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
    out[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    return out


def _nonempty(boxes: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    return ((boxes[:, 2] - boxes[:, 0]) > threshold) & ((boxes[:, 3] - boxes[:, 1]) > threshold)


def rpn_proposals(level_logits: list[np.ndarray], level_deltas: list[np.ndarray],
                  level_anchors: list[np.ndarray], image_hw: tuple[int, int], p: dict) -> np.ndarray:
    """(R, 4) proposals of one image, best objectness first (``find_top_rpn_proposals``).

    ``level_logits[l]``: (H*W*A,) objectness logits; ``level_deltas[l]``: (H*W*A, 4).
    """
    boxes, logits, levels = [], [], []
    for lvl, (o, d, a) in enumerate(zip(level_logits, level_deltas, level_anchors)):
        top = _top(o, min(o.shape[0], int(p["pre_nms_topk"])))
        boxes.append(apply_deltas(d[top], a[top], p["box_weights"], p["scale_clamp"]))
        logits.append(o[top])
        levels.append(np.full(top.shape[0], lvl, dtype=np.int64))
    boxes, logits, levels = np.concatenate(boxes), np.concatenate(logits), np.concatenate(levels)
    valid = np.isfinite(boxes).all(axis=1) & np.isfinite(logits)
    boxes, logits, levels = boxes[valid], logits[valid], levels[valid]
    boxes = _clip(boxes, *image_hw)
    keep = _nonempty(boxes, float(p["min_box_size"]))
    boxes, logits, levels = boxes[keep], logits[keep], levels[keep]
    keep = batched_nms(boxes, logits, levels, p["nms_thresh"])[: int(p["post_nms_topk"])]
    return boxes[keep]


def assign_levels(boxes: np.ndarray, p: dict) -> np.ndarray:
    """Index (0 = the pooler's first level) of the feature map each box is pooled from."""
    sizes = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    levels = np.floor(F32(p["canonical_level"]) + np.log2(sizes / F32(p["canonical_box_size"]) + F32(1e-8)))
    return (np.clip(levels, p["min_level"], p["max_level"]) - p["min_level"]).astype(np.int64)


def fast_rcnn_detections(probs: np.ndarray, deltas: np.ndarray, proposals: np.ndarray,
                         image_hw: tuple[int, int], p: dict):
    """(boxes, scores, classes) of one image from the box head's outputs for its proposals.

    ``probs``: (R, K+1) softmax (last column: background); ``deltas``: (R, K*4).
    """
    boxes = apply_deltas(deltas, proposals, p["box_weights"], p["scale_clamp"])
    valid = np.isfinite(boxes).all(axis=1) & np.isfinite(probs).all(axis=1)
    boxes, probs = boxes[valid], probs[valid]
    scores = probs[:, :-1]
    per_class = boxes.shape[1] // 4
    boxes = _clip(boxes.reshape(-1, 4), *image_hw).reshape(-1, per_class, 4)
    rows, cls = np.nonzero(scores > F32(p["score_thresh"]))
    boxes = boxes[rows, 0] if per_class == 1 else boxes[rows, cls]
    scores = scores[rows, cls]
    if p.get("soft_nms_sigma"):
        return boxes, scores, cls  # soft_nms, in the original picture's pixels, suppresses
    keep = batched_nms(boxes, scores, cls, p["nms_thresh"])[: int(p["detections_per_image"])]
    return boxes[keep], scores[keep], cls[keep]


def to_original(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray,
                resized_hw: tuple[int, int], original_hw: tuple[int, int]):
    """Boxes scaled to the original picture, clipped to it, empty ones dropped."""
    out_h, out_w = original_hw
    boxes = boxes.astype(F32, copy=True)
    boxes[:, 0::2] *= F32(out_w / resized_hw[1])
    boxes[:, 1::2] *= F32(out_h / resized_hw[0])
    boxes = _clip(boxes, out_h, out_w)
    keep = _nonempty(boxes)
    return boxes[keep], scores[keep], classes[keep]
