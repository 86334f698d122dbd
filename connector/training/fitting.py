"""Settings fitted to the training images before a run: input size, anchors, detections per image.

Each is one function of (cfg, records), switched by its own ``cfg.ODCONNECT.FIT.*`` key, and
writes only into the cfg, so the choice is dumped with the version's ``config.yaml`` and the
predictor rebuilds exactly the model that was trained. :func:`fit_to_data` runs the switched-on
ones in order (input size first: anchors are fitted to the boxes as the model sees them).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from detectron2.config import CfgNode

from connector.modeling.records import ImageRecord

__all__ = ["fit_to_data", "fit_input_size", "fit_anchors", "fit_detections_per_image", "anchor_match_quality"]

_STEP = 32  # input sizes are multiples of the coarsest FPN stride the presets use


def _round_up(v: float, step: int = _STEP) -> int:
    return int(math.ceil(v / step) * step)


def _boxes(records: Sequence[ImageRecord]) -> np.ndarray:
    """One row per box: label, w, h, its image's short side, its image's long side."""
    rows = [(b[0], float(b[3]), float(b[4]), min(r.width, r.height), max(r.width, r.height))
            for r in records for b in r.boxes if b[3] > 0 and b[4] > 0]
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


def _resize_scale(cfg: CfgNode, short: np.ndarray, long: np.ndarray) -> np.ndarray:
    """The scale ResizeShortestEdge applies at test size to images of these sides."""
    return np.minimum(cfg.INPUT.MIN_SIZE_TEST / short, cfg.INPUT.MAX_SIZE_TEST / long)


def fit_input_size(cfg: CfgNode, records: Sequence[ImageRecord]) -> None:
    """Scale the preset's input sizes to the data's small objects.

    Small objects of a label: the 25th percentile of its boxes' side (square root of the area),
    as a fraction of the image's short side; the smallest over the labels counts.

    * Grow until they reach FIT.SMALL_OBJECT_PX: small objects need pixels. The test size stops
      at the photos' own short side (upscaling adds no detail) and FIT.MAX_INPUT_SIZE.
    * Shrink while they keep FIT.LARGE_OBJECT_PX, down to FIT.MIN_INPUT_SIZE: large objects
      lose little at a smaller input, and training and detect cost grows with the square of
      the side (more iterations in a budget, faster answers).
    * Between the two, the preset's sizes stay.

    Shrinking scales the train sizes (scale jitter) and max sizes by the test size's factor.
    Growing moves the train sizes only until the largest reaches the test size: training cost
    is the budget's, and on bccd scaling them by the full factor cost more iterations than it
    gained in 5 minutes (AP 0.342 against 0.398), while testing above the train sizes gained
    (0.432 at 416 with training at 288-416; README, ablation).
    """
    rows = _boxes(records)
    if rows.size == 0:
        return
    rel = np.sqrt(rows[:, 1] * rows[:, 2]) / rows[:, 3]
    small = max(min(float(np.percentile(rel[rows[:, 0] == k], 25)) for k in np.unique(rows[:, 0])), 1e-6)
    fit = cfg.ODCONNECT.FIT
    old = int(cfg.INPUT.MIN_SIZE_TEST)
    if fit.SMALL_OBJECT_PX / small > old:  # grow
        native = float(np.median([min(r.width, r.height) for r in records]))
        cap = min(native, float(fit.MAX_INPUT_SIZE))
        test = min(_round_up(fit.SMALL_OBJECT_PX / small), int(cap // _STEP * _STEP) or _STEP)
        if test <= old:  # the photos are no bigger than the preset's size already
            return
    else:  # shrink
        test = max(_round_up(fit.LARGE_OBJECT_PX / small), int(fit.MIN_INPUT_SIZE))
        if test >= old:
            return
    cfg.INPUT.MAX_SIZE_TEST = _round_up(cfg.INPUT.MAX_SIZE_TEST * test / old)
    cfg.INPUT.MIN_SIZE_TEST = test
    train = test / old if test < old else max(1.0, test / max(cfg.INPUT.MIN_SIZE_TRAIN))
    if train != 1.0:
        cfg.INPUT.MIN_SIZE_TRAIN = tuple(sorted({_round_up(s * train) for s in cfg.INPUT.MIN_SIZE_TRAIN}))
        cfg.INPUT.MAX_SIZE_TRAIN = _round_up(cfg.INPUT.MAX_SIZE_TRAIN * train)


def _anchor_shapes(sizes: Sequence[Sequence[float]], ratios: Sequence[float]) -> np.ndarray:
    """(w, h) of every anchor, as detectron2's DefaultAnchorGenerator makes them (ratio = h / w)."""
    out = []
    for level in sizes:
        for s in level:
            for r in ratios:
                w = math.sqrt(s * s / r)
                out.append((w, r * w))
    return np.array(out)


def anchor_match_quality(wh: np.ndarray, anchors: np.ndarray) -> tuple[float, float]:
    """(share of boxes whose best anchor has shape IoU >= 0.5, mean best shape IoU).

    Shape IoU: box and anchor centred on the same point, the usual proxy for how well an anchor
    set can match boxes (RetinaNet calls an anchor positive from IoU 0.5).
    """
    inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(wh[:, None, 1], anchors[None, :, 1])
    union = (wh[:, 0] * wh[:, 1])[:, None] + (anchors[:, 0] * anchors[:, 1])[None, :] - inter
    best = (inter / union).max(axis=1)
    return float((best >= 0.5).mean()), float(best.mean())


def fit_anchors(cfg: CfgNode, records: Sequence[ImageRecord], min_spread: float = 1.2) -> None:
    """Aspect ratios from the boxes' own shapes and sizes shifted to the boxes' scale.

    Ratios: the 1/6, 1/2 and 5/6 quantiles of h / w, at least ``min_spread`` apart and always
    three (the head keeps its shape across retrains), so every anchor has a shape the data has.
    Sizes: the preset's per-level sizes times one factor 2**(-k/3), k = 0..3 (smaller anchors for
    small objects; the top levels still cover large ones): the factor that matches most boxes at
    shape IoU >= 0.5, then with the highest mean IoU; the preset's own sizes on ties. Boxes are
    measured at the test input scale, as the model sees them.
    """
    rows = _boxes(records)
    if rows.size == 0:
        return
    scale = _resize_scale(cfg, rows[:, 3], rows[:, 4])
    wh = np.stack([rows[:, 1] * scale, rows[:, 2] * scale], axis=1)
    lo, mid, hi = np.quantile(np.log(wh[:, 1] / wh[:, 0]), [1 / 6, 1 / 2, 5 / 6])
    gap = math.log(min_spread)
    ratios = [round(math.exp(v), 3) for v in (min(lo, mid - gap), mid, max(hi, mid + gap))]
    ag = cfg.MODEL.ANCHOR_GENERATOR
    best_key, best_sizes = None, None
    for k in range(4):
        f = 2 ** (-k / 3)
        sizes = [[round(s * f, 2) if k else s for s in level] for level in ag.SIZES]
        key = anchor_match_quality(wh, _anchor_shapes(sizes, ratios))
        if best_key is None or key > best_key:
            best_key, best_sizes = key, sizes
    ag.SIZES, ag.ASPECT_RATIOS = best_sizes, [ratios]


def fit_detections_per_image(cfg: CfgNode, records: Sequence[ImageRecord], per_box: int = 3) -> None:
    """Room for dense scenes: at least ``per_box`` detections per box of the fullest image."""
    most = max((len(r.boxes) for r in records), default=0)
    need = per_box * most
    if need > cfg.TEST.DETECTIONS_PER_IMAGE:
        cfg.TEST.DETECTIONS_PER_IMAGE = int(need)
        cfg.MODEL.RETINANET.TOPK_CANDIDATES_TEST = max(int(cfg.MODEL.RETINANET.TOPK_CANDIDATES_TEST), 10 * need)


def fit_to_data(cfg: CfgNode, records: Sequence[ImageRecord]) -> None:
    fit = cfg.ODCONNECT.FIT
    if fit.INPUT_SIZE:
        fit_input_size(cfg, records)
    if fit.ANCHORS:
        fit_anchors(cfg, records)
    if fit.DETECTIONS:
        fit_detections_per_image(cfg, records)
