"""Count errors, per-label thresholds chosen for counting, and the score's bootstrap interval,
on hand-made detections (no model: the numbers are worked out by hand)."""
from __future__ import annotations

import numpy as np
import pytest

from connector.modeling.predictor import Detection
from connector.training import ImageRecord
from connector.training.bootstrap import score_interval, weighted_ap50
from connector.training.evaluation import evaluate_detections, match
from connector.training.thresholds import GRID, choose_thresholds, threshold_curve

LABELS = ["cell", "dot"]


def box(label, x, score=0.9, y=0, size=10):
    return Detection(label, score, x, y, x + size, y + size)


def record(i, cells=0, dots=0):
    """Image i holding `cells` cells in row y=0 and `dots` dots in row y=50, 20 px apart."""
    boxes = tuple((0, 20.0 * j, 0.0, 10.0, 10.0) for j in range(cells))
    boxes += tuple((1, 20.0 * j, 50.0, 10.0, 10.0) for j in range(dots))
    return ImageRecord(i, f"unused-{i}.png", 400, 100, boxes)


def test_count_errors_at_each_labels_threshold():
    records = [record(1, cells=3, dots=1), record(2, cells=1), record(3, dots=2)]
    detections = [
        # image 1: cells found at 0.9, 0.6 and 0.3; one dot at 0.8 and a false dot at 0.7
        [box(0, 0, 0.9), box(0, 20, 0.6), box(0, 40, 0.3), box(1, 0, 0.8, y=50), box(1, 300, 0.7, y=50)],
        # image 2: the cell, plus a false cell at 0.55
        [box(0, 0, 0.95), box(0, 200, 0.55)],
        # image 3: both dots missed
        [],
    ]
    m = evaluate_detections(detections, records, LABELS, thresholds=[0.5, 0.75], interval_level=None)
    cell, dot = m["per_label"]["cell"], m["per_label"]["dot"]
    # cell at 0.5: counts 2, 2, 0 against 3, 1, 0 -> errors 1, 1, 0
    assert cell["count_error"] == pytest.approx(2 / 3)
    assert cell["relative_count_error"] == pytest.approx(2 / 4)  # mean error / mean true count
    assert (cell["precision"], cell["recall"], cell["threshold"]) == (pytest.approx(3 / 4), 3 / 4, 0.5)
    # dot at 0.75: counts 1, 0, 0 against 1, 0, 2 -> errors 0, 0, 2
    assert dot["count_error"] == pytest.approx(2 / 3) and dot["relative_count_error"] == pytest.approx(2 / 3)
    assert (dot["precision"], dot["recall"]) == (1.0, pytest.approx(1 / 3))
    assert (m["precision"], m["recall"]) == (pytest.approx(4 / 5), pytest.approx(4 / 7))
    # the false dot at 0.7 counts once the threshold is under it
    m = evaluate_detections(detections, records, LABELS, thresholds=[0.5, 0.5], interval_level=None)
    assert m["per_label"]["dot"]["count_error"] == pytest.approx(3 / 3)
    # each label's curve: the same figures from every probability 0.05..0.95 (the studio's slider)
    curve = {p["threshold"]: p for p in m["per_label"]["cell"]["curve"]}
    assert list(curve) == [round(0.05 * i, 2) for i in range(1, 20)]
    assert curve[0.5] == {k: cell[k] for k in ("threshold", "precision", "recall", "count_error",
                                               "relative_count_error")}
    # cell at 0.25: all 5 found, counts 3, 2, 0 against 3, 1, 0; at 0.95 only the 0.95 one
    assert (curve[0.25]["precision"], curve[0.25]["recall"], curve[0.25]["count_error"]) == (
        pytest.approx(4 / 5), 1.0, pytest.approx(1 / 3))
    assert (curve[0.95]["precision"], curve[0.95]["recall"], curve[0.95]["relative_count_error"]) == (
        1.0, 1 / 4, pytest.approx(3 / 4))
    dots = {p["threshold"]: p for p in m["per_label"]["dot"]["curve"]}
    assert dots[0.75]["count_error"] == pytest.approx(2 / 3) and dots[0.85]["precision"] is None  # none kept


def under_confident(n_images=6):
    """Every cell found but scored 0.2-0.3 (a model that ranks well and is under-confident), with a
    false cell at 0.1 on every other image; dots found at 0.9 with a false one at 0.6 on image 0."""
    records, detections = [], []
    for i in range(n_images):
        records.append(record(i + 1, cells=3, dots=1))
        dets = [box(0, 20 * j, 0.2 + 0.05 * j) for j in range(3)] + [box(1, 0, 0.9, y=50)]
        if i % 2:
            dets.append(box(0, 300, 0.1))
        if i == 0:
            dets.append(box(1, 300, 0.6, y=50))
        detections.append(dets)
    return detections, records


def test_thresholds_make_counts_right():
    detections, records = under_confident()
    cell, dot = choose_thresholds(detections, records, 2)
    # cells: any threshold in (0.1, 0.2] counts every cell and no false one; the middle of that range
    assert 0.1 < cell <= 0.2 and cell == pytest.approx(0.15)
    # dots: the plateau between the false dot (0.6) and the true ones (0.9); its middle
    assert 0.6 < dot <= 0.9 and dot == pytest.approx(0.75)
    errors, f1 = threshold_curve(match(detections, records, 2), 0)
    assert errors[GRID.tolist().index(0.5)] == 3.0 and errors[GRID.tolist().index(0.15)] == 0.0
    # at the default 0.5 the counts would be all wrong; at the chosen ones they are exact
    at_default = evaluate_detections(detections, records, LABELS, interval_level=None)
    chosen = evaluate_detections(detections, records, LABELS, [cell, dot], interval_level=None)
    assert at_default["per_label"]["cell"]["relative_count_error"] == 1.0
    assert chosen["per_label"]["cell"]["count_error"] == 0.0 and chosen["per_label"]["dot"]["count_error"] == 0.0


def test_right_counts_first_then_f1_then_the_middle_of_the_range():
    # One true cell per image; image 1's is found at 0.4 under a false cell at 0.8, image 2's at 0.85.
    # Count error: t <= 0.4 -> 1/2, 0.4 < t <= 0.8 -> 0 (the false box stands in for the missed
    # one), 0.8 < t <= 0.85 -> 1/2. Counts win: right counts even when right by luck.
    records = [record(1, cells=1), record(2, cells=1)]
    detections = [[box(0, 300, 0.8), box(0, 0, 0.4)], [box(0, 0, 0.85)]]
    cell, _ = choose_thresholds(detections, records, 2)
    assert cell == pytest.approx(0.6)  # the middle of 0.41..0.80
    # Equal count errors, different F1: two true cells scored 0.8 and 0.3, a false one at 0.5 on
    # an empty image. t <= 0.3: errors 0 + 1 (F1 0.8); 0.5 < t <= 0.8: errors 1 + 0 (F1 0.67).
    records = [record(1, cells=2), record(2)]
    detections = [[box(0, 0, 0.8), box(0, 20, 0.3)], [box(0, 300, 0.5)]]
    errors, f1 = threshold_curve(match(detections, records, 1), 0)
    grid = GRID.tolist()
    assert errors[grid.index(0.3)] == errors[grid.index(0.6)] == 0.5 == errors.min()
    assert f1[grid.index(0.3)] > f1[grid.index(0.6)]
    (cell,) = choose_thresholds(detections, records, 1)
    assert cell == pytest.approx(0.17)  # the middle of 0.05..0.30


def test_labels_with_too_few_validation_images_keep_none():
    detections, records = under_confident(n_images=2)
    assert choose_thresholds(detections, records, 2, min_images=3) == [None, None]
    assert None not in choose_thresholds(detections, records, 2, min_images=2)


def test_weighted_ap_with_unit_weights_is_cocos_ap50():
    detections, records = under_confident()
    detections[2].append(box(0, 100, 0.95))  # a confident false cell: AP below 1
    detections[3] = detections[3][1:]  # a missed cell
    m = evaluate_detections(detections, records, LABELS, interval_level=None)
    mine = weighted_ap50(match(detections, records, 2), np.ones((1, len(records))))[0]
    assert 0.5 < m["ap50"] < 1.0 and mine == pytest.approx(m["ap50"], abs=1e-9)
    # an image drawn twice weighs twice: the same as evaluating the list with it repeated
    twice = [records[i] for i in (0, 1, 2, 2, 3, 4, 5)]
    dup = [ImageRecord(100 + i, r.path, r.width, r.height, r.boxes) for i, r in enumerate(twice)]
    ap_dup = evaluate_detections([detections[i] for i in (0, 1, 2, 2, 3, 4, 5)], dup, LABELS,
                                 interval_level=None)["ap50"]
    w = np.array([[1, 1, 2, 1, 1, 1]])
    assert weighted_ap50(match(detections, records, 2), w)[0] == pytest.approx(ap_dup, abs=1e-9)


def noisy_set(n_images):
    """A repeating pattern: 3 of every 4 images perfect, the 4th with a confident false cell and a
    missed dot, so the score depends on which images a resample draws."""
    records, detections = [], []
    for i in range(n_images):
        records.append(record(i + 1, cells=2, dots=1))
        dets = [box(0, 0, 0.9), box(0, 20, 0.8), box(1, 0, 0.85, y=50)]
        if i % 4 == 3:
            dets = [box(0, 0, 0.9), box(0, 20, 0.8), box(0, 300, 0.95)]
        detections.append(dets)
    return detections, records


def test_score_interval_narrows_as_evaluation_images_grow():
    widths = []
    for n in (8, 32, 128):
        detections, records = noisy_set(n)
        m = evaluate_detections(detections, records, LABELS)
        low, high = m["score_interval"]["low"], m["score_interval"]["high"]
        assert low <= m["score"] <= high and m["score_interval"]["level"] == 0.9
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] > 0
    assert widths[2] < widths[0] / 2.5  # about 1 / sqrt(n): 4x the images, about half the width
    # the same data gives the same interval (fixed seed); a perfect set leaves no doubt
    detections, records = noisy_set(32)
    m = match(detections, records, 2)
    assert score_interval(m) == score_interval(m)
    perfect = [[box(0, 0, 0.9), box(0, 20, 0.8), box(1, 0, 0.85, y=50)] for _ in records]
    assert score_interval(match(perfect, records, 2)) == {"low": 100.0, "high": 100.0, "level": 0.9}
