"""Presets, overrides, LR schedule, the training mapper (augmentation) and image loading."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from connector.training import PRESETS, ImageRecord, TrainRequest, train
from connector.training.api import _apply_overrides
from connector.training.dataset import TrainMapper, load_rgb_array, records_to_dicts
from connector.training.hooks import Clock, lr_factor
from connector.training.presets import build_cfg


def test_scratch_and_accurate_presets():
    assert {"fast", "balanced", "scratch", "accurate"} <= set(PRESETS)
    cfg = build_cfg("scratch", 3, "cpu")
    assert cfg.MODEL.META_ARCHITECTURE == "RetinaNet" and cfg.MODEL.RESNETS.DEPTH == 18
    assert cfg.MODEL.RETINANET.NUM_CLASSES == 3 and cfg.MODEL.BACKBONE.FREEZE_AT == 0
    assert cfg.SOLVER.CLIP_GRADIENTS.ENABLED and cfg.SOLVER.WARMUP_ITERS > 0
    assert cfg.MODEL.WEIGHTS == "" and cfg.DATALOADER.NUM_WORKERS <= 1
    acc = build_cfg("accurate", 2, "cpu")
    assert acc.MODEL.META_ARCHITECTURE == "GeneralizedRCNN" and acc.MODEL.RESNETS.DEPTH == 50
    assert acc.MODEL.ROI_HEADS.NUM_CLASSES == 2 and acc.ODCONNECT.REQUIRES_INIT_WEIGHTS
    gpu = build_cfg("scratch", 3, "cuda")
    assert gpu.INPUT.MIN_SIZE_TEST > cfg.INPUT.MIN_SIZE_TEST
    assert gpu.SOLVER.IMS_PER_BATCH > cfg.SOLVER.IMS_PER_BATCH
    # the LR follows the batch (linear scaling) up to 0.02: accurate's 0.0025 at 2 -> 0.01 at 8,
    # fast's 0.01 at 2 (a CPU budget's choice) -> 0.02, not 0.04
    assert build_cfg("accurate", 2, "cuda").SOLVER.BASE_LR == pytest.approx(0.01)
    assert build_cfg("fast", 2, "cuda").SOLVER.BASE_LR == pytest.approx(0.02)
    with pytest.raises(ValueError):
        build_cfg("nope", 2, "cpu")


@pytest.mark.parametrize("preset,arch", [("fast", "RetinaNet"), ("balanced", "GeneralizedRCNN")])
def test_efficientnet_presets(preset, arch):
    pytest.importorskip("connector.modeling.backbones.efficientnet_lite")
    cfg = build_cfg(preset, 2, "cpu")
    assert cfg.MODEL.META_ARCHITECTURE == arch
    assert "efficientnet" in cfg.MODEL.BACKBONE.NAME.lower()
    # LR 0.01 diverged on these pretrained features without clipping: never one without the other
    assert cfg.SOLVER.BASE_LR <= 0.01 and cfg.SOLVER.CLIP_GRADIENTS.ENABLED and cfg.SOLVER.WARMUP_ITERS > 0


def test_overrides():
    cfg = build_cfg("scratch", 2, "cpu")
    _apply_overrides(cfg, {"SOLVER.BASE_LR": 1, "INPUT.MIN_SIZE_TRAIN": (96, 128)})
    assert cfg.SOLVER.BASE_LR == 1.0 and tuple(cfg.INPUT.MIN_SIZE_TRAIN) == (96, 128)
    with pytest.raises(ValueError):
        _apply_overrides(cfg, {"SOLVER.NOT_A_KEY": 1})


def test_accurate_needs_init_weights(tmp_path, synthetic_records):
    req = TrainRequest(labels=["square", "circle"], train=synthetic_records, output_dir=tmp_path / "o",
                       preset="accurate", device="cpu")
    with pytest.raises(ValueError, match="init_weights"):
        train(req)


def test_lr_schedule():
    assert lr_factor(0, 100, 10, 0.001, 0.05) == pytest.approx(0.001)
    assert lr_factor(10, 100, 10, 0.001, 0.05) == pytest.approx(0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * 0.1)))
    assert lr_factor(100, 100, 10, 0.001, 0.05) == pytest.approx(0.05)
    values = [lr_factor(i, 100, 10, 0.001, 0.05) for i in range(10, 101)]
    assert values == sorted(values, reverse=True)


def test_clock_pause():
    clock = Clock()
    clock.start()
    with clock.paused():
        frozen = clock.elapsed()
        torch.ones(1000, 1000).sum()
        assert clock.elapsed() == frozen


def test_mapper_augments_and_keeps_boxes(synthetic_records):
    cfg = build_cfg("scratch", 2, "cpu")
    cfg.INPUT.MIN_SIZE_TRAIN = (128,)
    cfg.INPUT.MAX_SIZE_TRAIN = 128
    mapper = TrainMapper(cfg)
    d = records_to_dicts(synthetic_records[:1])[0]
    flipped = set()
    for _ in range(12):
        out = mapper(d)
        assert out["image"].shape == (3, 128, 128) and out["image"].dtype == torch.uint8
        boxes = out["instances"].gt_boxes.tensor
        assert len(boxes) == len(synthetic_records[0].boxes)
        assert (boxes >= 0).all() and (boxes <= 128).all()
        flipped.add(round(float(boxes[0, 0]), 1))
    assert len(flipped) == 2  # horizontal flip happens (and only changes x)


def test_exif_orientation_and_modes(tmp_path):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    im.save(tmp_path / "rot.jpg", exif=exif)
    assert load_rgb_array(str(tmp_path / "rot.jpg")).shape == (40, 20, 3)
    Image.new("L", (8, 6), 128).save(tmp_path / "gray.png")
    assert load_rgb_array(str(tmp_path / "gray.png")).shape == (6, 8, 3)


def test_records_to_dicts_clips_and_drops_degenerate():
    r = ImageRecord(7, "x.png", 50, 40, ((0, -5, -5, 20, 20), (1, 10, 10, 0, 5), (0, 40, 30, 30, 30)))
    anns = records_to_dicts([r])[0]["annotations"]
    assert [a["bbox"] for a in anns] == [[0.0, 0.0, 15.0, 15.0], [40.0, 30.0, 10.0, 10.0]]


def test_evaluate_model_mid_training_keeps_train_mode(synthetic_records):
    """Benchmarks evaluate snapshots while training: the model must come back in train mode."""
    from detectron2.modeling import build_model

    from connector.training.api import evaluate_model

    cfg = build_cfg("scratch", 2, "cpu")
    cfg.INPUT.MIN_SIZE_TEST = 96
    model = build_model(cfg).train()
    m = evaluate_model(cfg, model, synthetic_records[:2], ["square", "circle"])
    assert model.training and m["eval_images"] == 2


@pytest.mark.parametrize("preset", ["fast", "balanced"])
def test_models_run_channels_last_on_cpu_with_the_same_answers(preset, synthetic_records):
    from detectron2.modeling import build_model

    from connector.modeling.memory_format import to_fast_layout
    from connector.training.trainer import DetectionTrainer

    cfg = build_cfg(preset, 2, "cpu")
    cfg.MODEL.EFFNET.PRETRAINED = False
    trainer = DetectionTrainer(cfg, records_to_dicts(synthetic_records[:2]))
    convs = [m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)

    torch.manual_seed(0)
    model = build_model(cfg).eval()
    x = torch.rand(1, 3, 160, 224) * 255
    with torch.no_grad():
        before = {k: v.clone() for k, v in model.backbone(x).items()}
        after = to_fast_layout(model, "cpu").backbone(x)
    assert set(after) == set(before)
    for level, features in after.items():
        assert features.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(features, before[level], rtol=1e-4, atol=1e-4)
