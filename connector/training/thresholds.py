"""Per-label probability thresholds chosen on validation images, so that counts come out right.

Flows mostly ask "how many of each object are in this photo", and a detector's scores are not
calibrated: a model that ranks well can still put most true objects below 0.5 (under-confident)
or many false ones above it. The criterion, per label, over a grid of thresholds 0.05..0.95:

1. the lowest mean absolute count error per image (|predicted - true count|), the number a flow
   reads from ``counts``;
2. among equals, the highest F1 at IoU 0.5, so counts that are right by luck (a false box making
   up for a missed one) lose to counts that are right box by box;
3. among equals still, the middle of the tied thresholds: the widest margin on either side, so a
   small shift of the scores on new photos changes the counts least.

A label with fewer than ``min_images`` validation images holding it gets None: too few examples
to choose on (the caller keeps its default, evaluation.SCORE_THRESHOLD).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from connector.modeling.records import ImageRecord
from connector.training.evaluation import Matches, match

__all__ = ["GRID", "choose_thresholds", "thresholds_from_matches", "threshold_curve"]

#: candidate thresholds; the predictor drops detections under 0.05 (SCORE_THRESH_TEST) anyway
GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)


def threshold_curve(m: Matches, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean absolute count error per image, F1) of label k at each threshold of :data:`GRID`."""
    errors, f1 = np.empty(GRID.size), np.empty(GRID.size)
    n_true = int(m.gt[:, k].sum())
    for i, t in enumerate(GRID):
        errors[i] = np.abs(m.counts(k, t) - m.gt[:, k]).mean()
        tp, pred = m.tp_pred(k, t)
        f1[i] = 2 * tp / (pred + n_true) if pred + n_true else 0.0
    return errors, f1


def choose_thresholds(detections: Sequence[Sequence[Any]], records: Sequence[ImageRecord], n_labels: int,
                      min_images: int = 1) -> list[float | None]:
    """One threshold per label (None: too few images) from every detection on the validation
    ``records`` (see the module docstring for the criterion)."""
    return thresholds_from_matches(match(detections, records, n_labels), min_images)


def thresholds_from_matches(m: Matches, min_images: int = 1) -> list[float | None]:
    chosen: list[float | None] = []
    for k in range(m.gt.shape[1]):
        if int((m.gt[:, k] > 0).sum()) < max(1, min_images):
            chosen.append(None)
            continue
        errors, f1 = threshold_curve(m, k)
        best = np.isclose(errors, errors.min(), rtol=0, atol=1e-9)
        best &= np.isclose(f1, f1[best].max(), rtol=0, atol=1e-9)
        tied = GRID[best]
        chosen.append(float(tied[(tied.size - 1) // 2]))
    return chosen
