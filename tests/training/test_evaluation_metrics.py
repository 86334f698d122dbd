"""evaluate(): pycocotools AP plus greedy micro precision/recall, on hand-made predictions."""
from __future__ import annotations

import pytest

from connector.modeling.predictor import Detection
from connector.training import ImageRecord
from connector.training.evaluation import evaluate

LABELS = ["square", "circle"]
RECORDS = [
    ImageRecord(1, "unused-1.png", 200, 100, ((0, 10, 10, 30, 20), (1, 100, 40, 50, 50))),
    ImageRecord(2, "unused-2.png", 200, 100, ((0, 50, 20, 40, 40),)),
    ImageRecord(3, "unused-3.png", 200, 100, ()),  # a negative image
]


def perfect(record):
    return [Detection(label, 0.9, x, y, x + w, y + h) for label, x, y, w, h in record.boxes]


def test_perfect_predictions():
    m = evaluate(perfect, RECORDS, LABELS)
    assert m["ap50"] == pytest.approx(1.0) and m["ap"] == pytest.approx(1.0)
    assert m["ap75"] == pytest.approx(1.0)
    assert m["precision"] == 1.0 and m["recall"] == 1.0
    assert m["score"] == 100.0 and m["eval_images"] == 3
    curve = m["per_label"]["square"].pop("curve")
    assert curve[-2] == {"threshold": 0.9, "precision": 1.0, "recall": 1.0, "count_error": 0.0,
                         "relative_count_error": 0.0}  # every box scored 0.9: all found there
    assert curve[-1] == {"threshold": 0.95, "precision": None, "recall": 0.0, "count_error": pytest.approx(2 / 3),
                         "relative_count_error": 1.0}  # and none above it
    assert m["per_label"]["square"] == {"ap50": pytest.approx(1.0), "threshold": 0.5, "precision": 1.0,
                                        "recall": 1.0, "count_error": 0.0, "relative_count_error": 0.0,
                                        "images": 2, "boxes": 2}
    assert m["per_label"]["circle"]["images"] == 1 and m["per_label"]["circle"]["boxes"] == 1


def test_no_predictions():
    m = evaluate(lambda r: [], RECORDS, LABELS)
    assert m["recall"] == 0.0 and m["precision"] == 0.0
    assert m["ap50"] == 0.0 and m["score"] == 0.0
    assert m["per_label"]["square"]["recall"] == 0.0
    assert m["per_label"]["square"]["precision"] is None  # nothing predicted: undefined


def test_false_positive_wrong_label_and_low_score():
    def predict(record):
        dets = perfect(record)
        if record.image_id == 1:  # the circle predicted as a square, plus a low-score duplicate
            dets = [dets[0], Detection(0, 0.8, 100, 40, 150, 90), Detection(0, 0.2, 10, 10, 40, 30)]
        if record.image_id == 3:
            dets = [Detection(1, 0.7, 0, 0, 20, 20)]
        return dets

    m = evaluate(predict, RECORDS, LABELS)
    # score >= 0.5: square 2 TP + 1 FP, circle 0 TP + 1 FP (image 3), circle GT missed
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["per_label"]["square"]["precision"] == pytest.approx(2 / 3)
    assert m["per_label"]["circle"]["recall"] == 0.0
    assert m["per_label"]["circle"]["ap50"] == 0.0
    assert 0.0 < m["ap50"] < 1.0


def test_greedy_matching_counts_duplicates_as_false_positives():
    def predict(record):
        return perfect(record) * 2  # every box twice

    m = evaluate(predict, RECORDS, LABELS)
    assert m["recall"] == 1.0 and m["precision"] == pytest.approx(0.5)


def test_iou_threshold():
    rec = [ImageRecord(1, "x.png", 100, 100, ((0, 0, 0, 40, 40),))]
    shifted = evaluate(lambda r: [Detection(0, 0.9, 20, 0, 60, 40)], rec, ["a"])  # IoU 1/3
    assert shifted["recall"] == 0.0 and shifted["ap50"] == 0.0
    close = evaluate(lambda r: [Detection(0, 0.9, 5, 0, 45, 40)], rec, ["a"])  # IoU 0.78
    assert close["recall"] == 1.0 and close["ap50"] == pytest.approx(1.0) and close["ap75"] == pytest.approx(1.0)


def test_empty_and_label_without_ground_truth():
    m = evaluate(lambda r: [], [], LABELS)
    assert m["ap50"] is None and m["score"] == 0.0 and m["eval_images"] == 0
    m = evaluate(perfect, RECORDS[1:], LABELS)
    assert len(m["per_label"]["circle"].pop("curve")) == 19
    assert m["per_label"]["circle"] == {"ap50": None, "threshold": 0.5, "precision": None, "recall": None,
                                        "count_error": 0.0, "relative_count_error": None,
                                        "images": 0, "boxes": 0}
