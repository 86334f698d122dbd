"""Training and its evaluation decode a large JPEG at reduced scale (libjpeg's 1/2, 1/4, 1/8),
never below the size the augmentation or the test resize needs, with the boxes scaled to match:
the same model input as a full decode, for a fraction of the work on a phone photo."""
from __future__ import annotations

import logging

import numpy as np
import torch
from PIL import Image

from connector.imaging import load_rgb
from connector.training import dataset
from connector.training.dataset import TrainMapper, train_decode_side
from connector.training.presets import build_cfg


def _photo(path, size=(2400, 1800), orientation=1):
    """A smooth picture with a dark square at (600, 450)-(1200, 900), as the user sees it."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 128)], -1).astype(np.uint8)
    rgb[450:900, 600:1200] = 20
    img = Image.fromarray(rgb)
    exif = Image.Exif()
    if orientation == 6:  # stored turned left: EXIF says turn it right to show it
        img = img.transpose(Image.Transpose.ROTATE_90)
        exif[0x0112] = 6
    img.save(path, quality=95, exif=exif)
    return str(path)


def test_a_large_jpeg_is_decoded_at_reduced_scale_but_never_below_the_size_asked(tmp_path):
    path = _photo(tmp_path / "big.jpg")
    assert load_rgb(path).size == (2400, 1800)
    assert load_rgb(path, min_side=400).size == (600, 450)  # 1/4: 1/8 would give 225 < 400
    assert load_rgb(path, min_side=1000).size == (2400, 1800)  # 1/2 would give 900
    turned = _photo(tmp_path / "turned.jpg", orientation=6)
    assert load_rgb(turned, min_side=400).size == (600, 450)  # asked in the stored orientation
    png = tmp_path / "big.png"
    Image.open(path).save(png)
    assert load_rgb(str(png), min_side=400).size == (2400, 1800)  # only JPEG decodes at scale


def test_the_decode_side_covers_the_largest_training_size_and_zoom_in_crops():
    cfg = build_cfg("fast", 1, "cpu")
    assert train_decode_side(cfg) == max(cfg.INPUT.MIN_SIZE_TRAIN)
    cfg.INPUT.CROP.ENABLED = True
    cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE = "relative_range", (0.5, 0.8)
    assert train_decode_side(cfg) == 2 * max(cfg.INPUT.MIN_SIZE_TRAIN)  # a half-size crop is a 2x zoom
    cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE = "absolute", (300, 300)
    assert train_decode_side(cfg) is None  # a crop in pixels needs every pixel


def _mapped(mapper, path):
    w, h = 2400, 1800
    record = {"file_name": path, "image_id": 1, "width": w, "height": h,
              "annotations": [{"bbox": [600.0, 450.0, 600.0, 450.0], "bbox_mode": 1, "category_id": 0,
                               "iscrowd": 0}]}
    return mapper(record)


def test_the_mapper_gives_the_model_the_same_input_and_boxes_as_a_full_decode(tmp_path, caplog, monkeypatch):
    decoded = []
    real = dataset.load_rgb_array
    monkeypatch.setattr(dataset, "load_rgb_array", lambda *a: decoded.append(real(*a).shape[:2]) or real(*a))
    cfg = build_cfg("fast", 1, "cpu")
    cfg.INPUT.RANDOM_FLIP = "none"
    cfg.INPUT.MIN_SIZE_TRAIN = (352,)
    cfg.ODCONNECT.AUG.BRIGHTNESS = cfg.ODCONNECT.AUG.CONTRAST = cfg.ODCONNECT.AUG.SATURATION = (1.0, 1.0)
    reduced = TrainMapper(cfg)
    full = TrainMapper(cfg)
    full.decode_side = None
    for orientation in (1, 6):
        path = _photo(tmp_path / f"photo{orientation}.jpg", orientation=orientation)
        with caplog.at_level(logging.WARNING, logger="odconnect.training"):
            a, b = _mapped(reduced, path), _mapped(full, path)
        assert decoded[-2:] == [(450, 600), (1800, 2400)]  # 1/4 scale: its short side 450 >= 352
        assert a["image"].shape == b["image"].shape == (3, 352, 469)
        diff = (a["image"].float() - b["image"].float()).abs()
        assert diff.mean() < 2.0  # the same picture, resized from a different start
        box = a["instances"].gt_boxes.tensor[0]
        assert torch.allclose(box, b["instances"].gt_boxes.tensor[0], atol=1.0)
        assert torch.allclose(box, torch.tensor([600.0, 450.0, 1200.0, 900.0]) * 352 / 1800, atol=1.0)
        inside = a["image"][:, int(box[1]) + 3:int(box[3]) - 3, int(box[0]) + 3:int(box[2]) - 3]
        assert inside.float().mean() < 40  # the dark square is where its box says
    ours = [r for r in caplog.records if r.name == "odconnect.training"]
    assert not ours  # a reduced decode is expected, not a size mismatch
    with caplog.at_level(logging.WARNING, logger="odconnect.training"):
        reduced({"file_name": path, "image_id": 2, "width": 1800, "height": 2400, "annotations": []})
    assert [r for r in caplog.records if r.name == "odconnect.training"]  # a turned record still warns
