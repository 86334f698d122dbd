"""Each lever of the training recipe is applied where it lives: anchors and input sizes fitted to
the data, detections per image, GIoU box loss, crop and colour jitter in the mapper, EMA weights.
ATSS labelling and Soft-NMS have their own files (test_atss.py, test_soft_nms.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import detectron2.data.transforms as T
from detectron2.engine.train_loop import HookBase

from connector.training import ImageRecord, train
from connector.training.dataset import build_train_augmentation
from connector.training.fitting import (_anchor_shapes, _boxes, _resize_scale, anchor_match_quality, fit_anchors,
                                        fit_detections_per_image, fit_input_size)
from connector.training.hooks import ema_decay
from connector.training.presets import build_cfg


def boxes_dataset(w, h, n=20, image=(640, 480), label_of=lambda i: 0, per_image=1):
    """Records (files never read) whose boxes all measure about w x h pixels."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        boxes = tuple((label_of(i), 10.0, 10.0, float(w * rng.uniform(0.9, 1.1)), float(h * rng.uniform(0.9, 1.1)))
                      for _ in range(per_image))
        out.append(ImageRecord(i + 1, "unused.png", image[0], image[1], boxes))
    return out


def test_anchors_fitted_to_tall_boxes_come_out_tall():
    cfg = build_cfg("fast", 1, "cpu")
    assert list(cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS[0]) == [0.5, 1.0, 2.0]
    fit_anchors(cfg, boxes_dataset(40, 160))  # h / w = 4
    ratios = cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS[0]
    assert len(ratios) == 3 and min(ratios) > 2.5 and max(ratios) < 6  # detectron2's ratio is h / w
    assert ratios[0] < ratios[1] < ratios[2]
    # wide boxes: wide anchors
    cfg = build_cfg("fast", 1, "cpu")
    fit_anchors(cfg, boxes_dataset(160, 40))
    assert max(cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS[0]) < 0.4


def _quality(cfg, records):
    """How well the cfg's anchors fit the boxes, as the model sees them (at the test scale)."""
    rows = _boxes(records)
    scale = _resize_scale(cfg, rows[:, 3], rows[:, 4])
    wh = np.stack([rows[:, 1] * scale, rows[:, 2] * scale], axis=1)
    ag = cfg.MODEL.ANCHOR_GENERATOR
    return anchor_match_quality(wh, _anchor_shapes(ag.SIZES, ag.ASPECT_RATIOS[0]))


def test_anchor_sizes_follow_the_boxes_and_never_fit_worse():
    cfg = build_cfg("fast", 1, "cpu")
    default = [list(level) for level in cfg.MODEL.ANCHOR_GENERATOR.SIZES]
    small = boxes_dataset(22, 22)  # 22 px at 480 -> 16 px at the 352 test size
    before = _quality(cfg, small)
    fit_anchors(cfg, small)
    assert cfg.MODEL.ANCHOR_GENERATOR.SIZES[0][0] == default[0][0] / 2  # the smallest step: half size
    assert _quality(cfg, small) > before and len(cfg.MODEL.ANCHOR_GENERATOR.SIZES) == len(default)
    for side in (60, 150, 300):  # whatever the size, the fitted anchors match at least as well
        cfg = build_cfg("fast", 1, "cpu")
        boxes = boxes_dataset(side, side)
        before = _quality(cfg, boxes)
        fit_anchors(cfg, boxes)
        assert _quality(cfg, boxes) >= before, side


def test_input_size_grows_for_small_objects_up_to_the_photos_own_size():
    cfg = build_cfg("fast", 1, "cpu")
    preset_test, preset_train = cfg.INPUT.MIN_SIZE_TEST, tuple(cfg.INPUT.MIN_SIZE_TRAIN)
    # 60 px of 480 -> 44 px at the 352 test size: between SMALL_OBJECT_PX and LARGE_OBJECT_PX
    fit_input_size(cfg, boxes_dataset(60, 60))
    assert (cfg.INPUT.MIN_SIZE_TEST, tuple(cfg.INPUT.MIN_SIZE_TRAIN)) == (preset_test, preset_train)
    # one label of small objects (30 px of 480) among large ones: 32 px needs a 512 short side,
    # but the photos have only 480
    small = boxes_dataset(300, 300, label_of=lambda i: i % 2)
    small = [ImageRecord(r.image_id, r.path, r.width, r.height,
                         ((1, 5.0, 5.0, 30.0, 30.0),) if i % 2 else r.boxes) for i, r in enumerate(small)]
    fit_input_size(cfg, small)
    assert cfg.INPUT.MIN_SIZE_TEST == 480
    assert min(cfg.INPUT.MIN_SIZE_TRAIN) > min(preset_train) and cfg.INPUT.MAX_SIZE_TEST >= 640
    # the train sizes move up only until the largest is the test size (training time is the budget's)
    assert max(cfg.INPUT.MIN_SIZE_TRAIN) == 480 and len(cfg.INPUT.MIN_SIZE_TRAIN) == len(preset_train)
    # bigger photos: the size stops at FIT.MAX_INPUT_SIZE
    cfg = build_cfg("fast", 1, "cpu")
    fit_input_size(cfg, boxes_dataset(20, 20, image=(4000, 3000)))
    assert cfg.INPUT.MIN_SIZE_TEST == cfg.ODCONNECT.FIT.MAX_INPUT_SIZE


def test_input_size_shrinks_for_large_objects_down_to_the_floor():
    cfg = build_cfg("fast", 1, "cpu")
    preset = (cfg.INPUT.MIN_SIZE_TEST, max(cfg.INPUT.MIN_SIZE_TRAIN), cfg.INPUT.MAX_SIZE_TEST, cfg.INPUT.MAX_SIZE_TRAIN)
    # 200 px of 480: 64 px at a short side of 154, so the floor decides
    fit_input_size(cfg, boxes_dataset(200, 200))
    assert cfg.INPUT.MIN_SIZE_TEST == cfg.ODCONNECT.FIT.MIN_INPUT_SIZE == 256
    assert max(cfg.INPUT.MIN_SIZE_TRAIN) < preset[1] and cfg.INPUT.MAX_SIZE_TEST < preset[2]
    assert cfg.INPUT.MAX_SIZE_TRAIN < preset[3]
    assert all(s % 32 == 0 for s in cfg.INPUT.MIN_SIZE_TRAIN)
    # 110 px of 480 -> 64 px at a short side of 280 (rounded up to 288): above the floor
    cfg = build_cfg("fast", 1, "cpu")
    fit_input_size(cfg, boxes_dataset(110, 110, n=200))
    assert cfg.INPUT.MIN_SIZE_TEST == 288
    # one label of small objects keeps the size up, whatever the other labels
    cfg = build_cfg("fast", 1, "cpu")
    mixed = [ImageRecord(r.image_id, r.path, r.width, r.height, r.boxes + ((1, 5.0, 5.0, 60.0, 60.0),))
             for r in boxes_dataset(200, 200)]
    fit_input_size(cfg, mixed)
    assert cfg.INPUT.MIN_SIZE_TEST == preset[0]


def test_detections_per_image_follow_the_fullest_image():
    cfg = build_cfg("fast", 1, "cpu")
    fit_detections_per_image(cfg, boxes_dataset(20, 20, per_image=10))
    assert cfg.TEST.DETECTIONS_PER_IMAGE == 100  # room enough already
    fit_detections_per_image(cfg, boxes_dataset(20, 20, per_image=80))
    assert cfg.TEST.DETECTIONS_PER_IMAGE == 240
    assert cfg.MODEL.RETINANET.TOPK_CANDIDATES_TEST >= 2400


def test_presets_keep_the_unmeasured_levers_off():
    """GIoU, fitted anchors and detections, and crops are there to switch on (training.overrides
    or a preset entry); the presets keep them off until the quality benchmark shows a gain on
    bccd (see the README); so does ATSS anchor labelling. Fitted input sizes showed one and are
    on, and EMA, Soft-NMS and batches of 2 in `fast` (measured on that preset only)."""
    for preset in ("fast", "balanced"):
        cfg = build_cfg(preset, 2, "cpu")
        assert cfg.MODEL.RETINANET.BBOX_REG_LOSS_TYPE == "smooth_l1" or cfg.MODEL.META_ARCHITECTURE != "RetinaNet"
        assert not (cfg.ODCONNECT.FIT.ANCHORS or cfg.ODCONNECT.FIT.DETECTIONS or cfg.INPUT.CROP.ENABLED)
        assert cfg.ODCONNECT.ASSIGNER == "iou"
        assert cfg.ODCONNECT.FIT.INPUT_SIZE  # measured: see the README's ablation table
        assert cfg.ODCONNECT.EMA.ENABLED == (preset == "fast")
        assert cfg.ODCONNECT.SOFT_NMS_SIGMA == (0.5 if preset == "fast" else 0.0)
        assert cfg.SOLVER.IMS_PER_BATCH == (2 if preset == "fast" else 4)  # measured on fast only


def test_mapper_crops_and_jitters_colour():
    cfg = build_cfg("fast", 2, "cpu")
    cfg.INPUT.CROP.ENABLED = True
    augs = build_train_augmentation(cfg)
    kinds = [type(a) for a in augs]
    assert kinds[0] is T.RandomApply and isinstance(augs[0].aug, T.RandomCrop)  # crop, then resize
    assert T.ResizeShortestEdge in kinds and T.RandomFlip in kinds
    assert {T.RandomBrightness, T.RandomContrast, T.RandomSaturation} <= set(kinds)
    cfg.INPUT.CROP.ENABLED = False
    cfg.ODCONNECT.AUG.BRIGHTNESS = cfg.ODCONNECT.AUG.CONTRAST = cfg.ODCONNECT.AUG.SATURATION = (1.0, 1.0)
    kinds = [type(a) for a in build_train_augmentation(cfg)]
    assert T.RandomApply not in kinds and T.RandomBrightness not in kinds


def test_ema_decay_ramps_up_to_its_ceiling():
    assert ema_decay(0, 0.999) == pytest.approx(0.1)
    assert ema_decay(90, 0.999) == pytest.approx(0.91)
    assert ema_decay(10**6, 0.999) == 0.999


class RawWeights(HookBase):
    """Keeps the raw (not averaged) weights at the end of training."""

    def after_train(self):
        self.state = {k: v.detach().clone() for k, v in self.trainer.model.state_dict().items()}
        self.averaged = {k: v.detach().clone() for k, v in self.trainer.inference_model().state_dict().items()}


def test_ema_weights_differ_from_the_raw_ones_and_are_saved(tmp_path, make_request):
    raw = RawWeights()
    result = train(make_request(tmp_path / "ema", max_iter=4, overrides={"ODCONNECT.EMA.ENABLED": True}),
                   extra_hooks=[raw])
    saved = torch.load(result.weights_path, weights_only=True)["model"]
    floats = [k for k, v in saved.items() if torch.is_floating_point(v) and k in raw.state]
    assert floats and set(saved) == set(raw.state)
    assert all(torch.equal(saved[k], raw.averaged[k]) for k in floats)
    changed = [k for k in floats if not torch.allclose(saved[k], raw.state[k])]
    assert len(changed) > len(floats) // 2  # the average trails the last step's weights


def test_training_fits_the_input_size_unless_sizes_are_given(tmp_path, make_request):
    from dataclasses import replace

    from connector.modeling.predictor import load_cfg
    given = make_request(tmp_path / "given", max_iter=1)  # the tiny sizes, given by hand
    cfg = load_cfg(train(given).config_path)
    assert cfg.INPUT.MIN_SIZE_TEST == given.overrides["INPUT.MIN_SIZE_TEST"] and not cfg.ODCONNECT.FIT.INPUT_SIZE
    # no sizes given: the preset's (320 for scratch) shrink to the boxes, here to a low floor
    fitted = replace(given, output_dir=tmp_path / "fitted", overrides={
        **{k: v for k, v in given.overrides.items() if not k.startswith("INPUT.")},
        "ODCONNECT.FIT.MIN_INPUT_SIZE": 96, "ODCONNECT.FIT.LARGE_OBJECT_PX": 8})
    cfg = load_cfg(train(fitted).config_path)
    assert cfg.ODCONNECT.FIT.INPUT_SIZE and cfg.INPUT.MIN_SIZE_TEST == 96
    assert max(cfg.INPUT.MIN_SIZE_TRAIN) < 320
