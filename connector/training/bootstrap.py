"""How far to trust the performance score: a percentile bootstrap over the evaluation images.

The score is COCO's AP at IoU 0.5 averaged over labels (x 100). Resampling the evaluation
images with replacement and recomputing it shows how much it owes to which images happened to
be held out: a 90% interval "78 to 89" means 90% of the resampled scores fell in that range. It
narrows as evaluation images grow, which is what AI Builder's "more reliable above 50 images per
label" says in words.

A resample is a weight per image (how many times it was drawn), applied to the detections
matched once (:class:`connector.training.evaluation.Matches`); AP follows COCOeval's
``accumulate`` (precision envelope read at 101 recall points), so with every weight 1 it equals
COCOeval's AP50.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from connector.training.evaluation import Matches

__all__ = ["weighted_ap50", "score_interval"]

_RECALL_POINTS = np.linspace(0.0, 1.0, 101)
_EPS = np.spacing(1)


def _ap_rows(tp: np.ndarray, weights: np.ndarray, n_true: np.ndarray) -> np.ndarray:
    """AP of one label per row of ``weights`` (rows x detections, in descending score order)."""
    tps = np.cumsum(weights * tp, axis=1)
    fps = np.cumsum(weights * ~tp, axis=1)
    out = np.full(weights.shape[0], np.nan)
    for b in range(weights.shape[0]):
        if n_true[b] <= 0:
            continue  # the label is absent from this resample: COCO leaves it out of the mean
        if tps.shape[1] == 0:
            out[b] = 0.0
            continue
        rc = tps[b] / n_true[b]
        pr = tps[b] / (tps[b] + fps[b] + _EPS)
        pr = np.maximum.accumulate(pr[::-1])[::-1]  # precision envelope
        idx = np.searchsorted(rc, _RECALL_POINTS, side="left")
        q = np.where(idx < pr.size, pr[np.minimum(idx, pr.size - 1)], 0.0)
        out[b] = q.mean()
    return out


def weighted_ap50(m: "Matches", image_weights: np.ndarray) -> np.ndarray:
    """Mean AP50 over labels (0..1) for each row of ``image_weights`` (rows x images); NaN where
    no label has a true box."""
    image_weights = np.atleast_2d(np.asarray(image_weights, dtype=np.float64))
    per_label = []
    for k in range(m.gt.shape[1]):
        keep = m.ranked[k]
        tp, image = m.tp[k][keep], m.image[k][keep]
        n_true = image_weights @ m.gt[:, k].astype(np.float64)
        per_label.append(_ap_rows(tp, image_weights[:, image], n_true))
    stacked = np.vstack(per_label) if per_label else np.full((1, image_weights.shape[0]), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: no label present
        return np.nanmean(stacked, axis=0)


def score_interval(m: "Matches", level: float = 0.9, resamples: int = 1000, seed: int = 0,
                   chunk: int = 100) -> dict | None:
    """{"low", "high", "level"}: the central ``level`` range of the score over ``resamples``
    bootstrap resamples of the images (fixed seed: the same data gives the same interval)."""
    n = m.n_images
    if n == 0 or not m.gt.any():
        return None
    rng = np.random.default_rng(seed)
    scores = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=size)
        scores.append(weighted_ap50(m, weights))
    values = np.concatenate(scores)
    values = values[~np.isnan(values)] * 100
    if values.size == 0:
        return None
    low, high = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return {"low": round(float(low), 1), "high": round(float(high), 1), "level": level}
