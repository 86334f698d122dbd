"""ATSS anchor labelling (connector/modeling/atss.py): which anchors a box gets, on hand-made
anchor sets, and that a version trained with it loads and predicts as a plain RetinaNet."""
from __future__ import annotations

import pytest
import torch
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.matcher import Matcher
from detectron2.structures import Boxes, Instances, pairwise_iou

from connector.modeling.atss import ATSSRetinaNet, atss_assign, build_training_model
from connector.modeling.predictor import Predictor, load_cfg
from connector.training import train
from connector.training.presets import build_cfg


def _anchors(size=256):
    """RetinaNet's anchor set (3 scales x 3 ratios, P3..P7) on a size x size image."""
    sizes = [[32 * 2 ** i * 2 ** (j / 3) for j in range(3)] for i in range(5)]
    gen = DefaultAnchorGenerator(sizes=sizes, aspect_ratios=[[0.5, 1.0, 2.0]] * 5,
                                 strides=[8, 16, 32, 64, 128], offset=0.0)
    return gen([torch.zeros(1, 1, -(-size // s), -(-size // s)) for s in (8, 16, 32, 64, 128)])


def test_every_box_gets_positives_inside_it_above_its_own_threshold():
    anchors = _anchors()
    all_anchors = Boxes.cat(anchors)
    # a small square, a tall thin box and a large one: fixed IoU 0.5 starves the first two
    gt = Boxes(torch.tensor([[40.0, 40.0, 52.0, 52.0], [150.0, 20.0, 166.0, 120.0], [60.0, 120.0, 250.0, 250.0]]))
    assigned = atss_assign(anchors, gt)
    assert assigned.shape == (len(all_anchors),)
    iou = pairwise_iou(gt, all_anchors)
    fixed = Matcher([0.4, 0.5], [0, -1, 1], allow_low_quality_matches=False)
    _, fixed_labels = fixed(iou)
    for g in range(len(gt)):
        mine = (assigned == g).nonzero().flatten()
        assert 1 <= len(mine) <= 5 * 9  # at most the topk candidates of each level
        centers = all_anchors[mine].get_centers()
        x0, y0, x1, y1 = gt.tensor[g].tolist()
        assert ((centers[:, 0] > x0) & (centers[:, 0] < x1) & (centers[:, 1] > y0) & (centers[:, 1] < y1)).all()
    for g in (0, 1):  # the fixed threshold gives these no positive at all
        assert not ((iou[g] >= 0.5) & (fixed_labels == 1)).any()
    assert (assigned == -1).sum() > 0.99 * len(all_anchors)  # everything else is background


def test_an_anchor_wanted_by_two_boxes_goes_to_the_one_it_overlaps_most():
    anchors = _anchors()
    gt = Boxes(torch.tensor([[64.0, 64.0, 128.0, 128.0], [70.0, 70.0, 126.0, 126.0]]))
    assigned = atss_assign(anchors, gt)
    iou = pairwise_iou(gt, Boxes.cat(anchors))
    for a in (assigned >= 0).nonzero().flatten():
        g = int(assigned[a])
        assert iou[g, a] >= iou[1 - g, a] or iou[1 - g, a] < 0.3  # the other box's threshold may exclude it


def test_several_anchors_per_location_widen_the_candidates():
    anchors = _anchors()
    gt = Boxes(torch.tensor([[100.0, 60.0, 150.0, 180.0]]))
    one, nine = atss_assign(anchors, gt), atss_assign(anchors, gt, anchors_per_location=9)
    assert (nine == 0).sum() >= (one == 0).sum() >= 1


def test_no_boxes_means_all_background():
    anchors = _anchors(128)
    assigned = atss_assign(anchors, Boxes(torch.zeros((0, 4))))
    assert (assigned == -1).all() and len(assigned) == sum(len(a) for a in anchors)


def test_the_model_labels_background_with_num_classes_and_foreground_with_the_class():
    cfg = build_cfg("fast", 3, "cpu")
    cfg.MODEL.EFFNET.PRETRAINED = False
    cfg.ODCONNECT.ASSIGNER = "atss"
    model = build_training_model(cfg)
    assert type(model) is ATSSRetinaNet
    gt = Instances((256, 256))
    gt.gt_boxes = Boxes(torch.tensor([[40.0, 40.0, 90.0, 90.0], [150.0, 150.0, 200.0, 230.0]]))
    gt.gt_classes = torch.tensor([2, 0])
    empty = Instances((256, 256))
    empty.gt_boxes, empty.gt_classes = Boxes(torch.zeros((0, 4))), torch.zeros((0,), dtype=torch.long)
    anchors = _anchors()
    labels, boxes = model.label_anchors(anchors, [gt, empty])
    assigned = atss_assign(anchors, gt.gt_boxes, anchors_per_location=9)  # the preset's 3 scales x 3 ratios
    assert torch.equal(labels[0][assigned == 0], torch.full(((assigned == 0).sum(),), 2))
    assert torch.equal(labels[0][assigned == 1], torch.zeros(((assigned == 1).sum(),), dtype=torch.long))
    assert (labels[0][assigned < 0] == 3).all() and (labels[1] == 3).all()
    assert torch.equal(boxes[0][assigned == 1], gt.gt_boxes.tensor[1].expand((assigned == 1).sum(), 4))


def test_atss_needs_retinanet_and_a_known_name():
    cfg = build_cfg("balanced", 2, "cpu")
    cfg.ODCONNECT.ASSIGNER = "atss"
    with pytest.raises(ValueError, match="needs RetinaNet"):
        build_training_model(cfg)
    cfg = build_cfg("fast", 2, "cpu")
    cfg.ODCONNECT.ASSIGNER = "nearest"
    with pytest.raises(ValueError, match="ASSIGNER"):
        build_training_model(cfg)


def test_a_version_trained_with_atss_loads_as_a_plain_retinanet(tmp_path, make_request):
    result = train(make_request(tmp_path / "atss", max_iter=3, overrides={"ODCONNECT.ASSIGNER": "atss"}))
    cfg = load_cfg(result.config_path)
    assert cfg.ODCONNECT.ASSIGNER == "atss" and cfg.MODEL.META_ARCHITECTURE == "RetinaNet"
    predictor = Predictor(result.config_path, result.weights_path)
    assert type(predictor.model).__name__ == "RetinaNet"
    saved = torch.load(result.weights_path, weights_only=True)["model"]
    loaded = predictor.model.state_dict()
    assert set(saved) == set(loaded) and all(torch.equal(saved[k], loaded[k].contiguous()) for k in saved)
