"""The trainer's and the evaluator's view of one labeled image."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ImageRecord"]


@dataclass(frozen=True)
class ImageRecord:
    image_id: int
    path: str  # read with connector.imaging.load_rgb (EXIF-transposed RGB)
    width: int
    height: int
    boxes: tuple[tuple[int, float, float, float, float], ...]  # (label_index, x, y, w, h) pixels
