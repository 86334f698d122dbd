"""Synthetic detection data drawn with Pillow: red squares ("square") and blue circles ("circle")
on a noise background. Real files, real boxes; nothing from ../shared."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from connector.training import ImageRecord, TrainRequest

LABELS = ["square", "circle"]
# Tiny and fast: 128-px images, batch 2, a handful of iterations.
TINY = {
    "INPUT.MIN_SIZE_TRAIN": (128,),
    "INPUT.MAX_SIZE_TRAIN": 128,
    "INPUT.MIN_SIZE_TEST": 128,
    "INPUT.MAX_SIZE_TEST": 128,
    "SOLVER.IMS_PER_BATCH": 2,
    "SOLVER.WARMUP_ITERS": 2,
}


def draw_dataset(root: Path, n: int = 10, size: int = 256, seed: int = 0) -> list[ImageRecord]:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        im = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        d = ImageDraw.Draw(im)
        boxes = []
        x, y, s = (int(v) for v in rng.integers(8, size // 2 - 8, 3))
        s = max(s, 24)
        d.rectangle([x, y, x + s - 1, y + s - 1], fill=(230, 20, 20))
        boxes.append((0, float(x), float(y), float(s), float(s)))
        if i % 2 == 0:
            cx, cy, r = (int(v) for v in rng.integers(size // 2 + 16, size - 40, 3))
            r = max(12, min(r // 4, 30))
            d.ellipse([cx - r, cy - r, cx + r - 1, cy + r - 1], fill=(20, 20, 230))
            boxes.append((1, float(cx - r), float(cy - r), float(2 * r), float(2 * r)))
        path = root / f"img_{i:02d}.png"
        im.save(path)
        records.append(ImageRecord(i + 1, str(path), size, size, tuple(boxes)))
    return records


@pytest.fixture(scope="session")
def synthetic_records(tmp_path_factory) -> list[ImageRecord]:
    return draw_dataset(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="session")
def make_request(synthetic_records):
    """make_request(output_dir, **TrainRequest fields) -> a tiny "scratch" TrainRequest."""

    def make(output_dir: Path, **kw) -> TrainRequest:
        overrides = {**TINY, **kw.pop("overrides", {})}
        kw.setdefault("preset", "scratch")
        kw.setdefault("max_iter", 4)
        kw.setdefault("device", "cpu")
        kw.setdefault("labels", list(LABELS))
        kw.setdefault("train", list(synthetic_records))
        return TrainRequest(output_dir=output_dir, overrides=overrides, **kw)

    return make


@pytest.fixture(scope="session")
def draw():
    return draw_dataset
