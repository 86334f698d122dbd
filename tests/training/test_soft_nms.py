"""Gaussian Soft-NMS (connector/modeling/suppression.py): the arithmetic on hand-made boxes, the
detector's own NMS switched off and restored, and the torch predictor using it when the version
says so."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from connector.modeling.suppression import all_candidates, floor_and_cap, soft_nms, soft_nms_sigma


def test_overlapping_boxes_lose_probability_by_their_overlap():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 2, 10, 12], [50, 50, 60, 60], [0, 0, 10, 10]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.85])
    classes = np.array([0, 0, 0, 0, 1])  # the last one: the same place, another label
    keep, new = soft_nms(boxes, scores, classes, sigma=0.5, min_score=0.05, max_detections=100)
    got = dict(zip(keep.tolist(), new.tolist()))
    assert got[0] == pytest.approx(0.9) and got[3] == pytest.approx(0.6) and got[4] == pytest.approx(0.85)
    iou_02 = 80 / 120  # box 2 is box 0 moved down by 2
    assert got[2] == pytest.approx(0.7 * math.exp(-iou_02 ** 2 / 0.5))  # lowered by box 0 only
    # the duplicate of box 0 is lowered by box 0 (IoU 1) to 0.108, under box 2, which is then
    # taken first and lowers it again, to 0.044: under the floor, so it goes
    assert got[2] > 0.8 * math.exp(-1 / 0.5) > 0.05 > 0.8 * math.exp(-2) * math.exp(-iou_02 ** 2 / 0.5)
    assert 1 not in got and len(got) == 4
    assert list(new) == sorted(new, reverse=True)  # highest first


def test_boxes_that_fall_under_the_floor_go_and_the_cap_holds():
    boxes = np.array([[0, 0, 10, 10]] * 3 + [[100, 0, 110, 10], [200, 0, 210, 10]], float)
    scores = np.array([0.9, 0.5, 0.3, 0.2, 0.1])
    keep, new = soft_nms(boxes, scores, np.zeros(5, int), sigma=0.5, min_score=0.05, max_detections=100)
    # 0.5 * e^-2 = 0.068 stays; 0.3 * e^-2 * e^-2 = 0.0055 goes
    assert keep.tolist() == [0, 3, 4, 1] and new[-1] == pytest.approx(0.5 * math.exp(-2))
    keep, _ = soft_nms(boxes, scores, np.zeros(5, int), sigma=0.5, min_score=0.05, max_detections=2)
    assert keep.tolist() == [0, 3]
    keep, new = soft_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), 0.5, 0.05, 100)
    assert keep.size == 0 and new.size == 0
    with pytest.raises(ValueError):
        soft_nms(boxes, scores, np.zeros(5, int), sigma=0.0, min_score=0.05, max_detections=10)


def test_sigma_comes_from_the_version_and_old_versions_keep_greedy_nms():
    from connector.training.presets import build_cfg
    from detectron2.config import get_cfg
    assert soft_nms_sigma(get_cfg()) == 0.0  # a config without our keys (trained before them)
    cfg = build_cfg("scratch", 2, "cpu")
    assert soft_nms_sigma(cfg) == 0.0
    cfg.ODCONNECT.SOFT_NMS_SIGMA = 0.5
    assert soft_nms_sigma(cfg) == 0.5


@pytest.mark.parametrize("preset", ["scratch", "balanced"])
def test_all_candidates_lifts_nms_and_cap_and_puts_them_back(preset):
    from detectron2.modeling import build_model

    from connector.training.presets import build_cfg
    cfg = build_cfg(preset, 2, "cpu")
    if "EFFNET" in cfg.MODEL:
        cfg.MODEL.EFFNET.PRETRAINED = False
    model = build_model(cfg)
    owner = model.roi_heads.box_predictor if preset == "balanced" else model
    before = (owner.test_nms_thresh, floor_and_cap(model))
    with all_candidates(model):
        assert owner.test_nms_thresh == 1.0 and floor_and_cap(model)[1] >= 10**6
        assert floor_and_cap(model)[0] == before[1][0]  # the score threshold stays
    assert (owner.test_nms_thresh, floor_and_cap(model)) == before
    with pytest.raises(RuntimeError), all_candidates(model):
        raise RuntimeError("a failed forward pass")
    assert (owner.test_nms_thresh, floor_and_cap(model)) == before


def test_predictor_applies_soft_nms_to_the_detectors_candidates(tmp_path, make_request, draw):
    """The torch predictor of a Soft-NMS version answers soft_nms of what the detector finds with
    its own NMS off; the same weights without the setting answer greedy NMS."""
    from connector.modeling.predictor import Predictor
    from connector.training import train
    records = draw(tmp_path / "img", n=6)
    result = train(make_request(tmp_path / "v", train=records, max_iter=3,
                                overrides={"MODEL.RETINANET.SCORE_THRESH_TEST": 0.0}))
    config = result.config_path.read_text()
    assert "SOFT_NMS_SIGMA: 0.0" in config
    soft_config = tmp_path / "soft.yaml"
    soft_config.write_text(config.replace("SOFT_NMS_SIGMA: 0.0", "SOFT_NMS_SIGMA: 0.5"))
    greedy, soft = Predictor(result.config_path, result.weights_path), Predictor(soft_config, result.weights_path)
    rgb = np.asarray(Image.open(records[0].path).convert("RGB"))
    with all_candidates(greedy.model):  # the detector's own NMS off: every candidate
        candidates = greedy.predict_array(rgb, min_score=0.0)
    floor, cap = floor_and_cap(greedy.model)
    keep, scores = soft_nms(np.array([[d.x0, d.y0, d.x1, d.y1] for d in candidates]),
                            np.array([d.score for d in candidates]), np.array([d.label_index for d in candidates]),
                            0.5, floor, cap)
    got = soft.predict_array(rgb, min_score=0.0)
    assert len(candidates) > len(got) == len(keep) == cap  # threshold 0: the cap (100) ends the list
    assert np.allclose([d.score for d in got], scores, atol=1e-6)
    assert [d.label_index for d in got] == [candidates[i].label_index for i in keep]
    plain = greedy.predict_array(rgb, min_score=0.0)
    assert len(plain) == cap and [d.score for d in plain] != [d.score for d in got]
    assert greedy.model.test_nms_thresh == 0.5  # predicting left the detector's settings alone
