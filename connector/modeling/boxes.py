"""Box conversions between the wire's shape and pixels, in one place.

The wire (Custom Vision's shape) says `left, top, width, height` as fractions of the image
(0..1); training, evaluation, drawing and COCO files use pixels. Every conversion goes through
these functions so that clipping and rounding agree everywhere.
"""
from __future__ import annotations

import numpy as np

__all__ = ["fraction_to_pixels", "pixels_to_fraction", "clip_xyxy", "iou_xyxy", "iou_ltwh", "iou_matrix"]

EPS = 1e-6


def fraction_to_pixels(left: float, top: float, width: float, height: float,
                       image_width: int, image_height: int) -> tuple[float, float, float, float]:
    """(x, y, w, h) in pixels of a box given as fractions of the image."""
    return left * image_width, top * image_height, width * image_width, height * image_height


def clip_xyxy(x0: float, y0: float, x1: float, y1: float, image_width: int,
              image_height: int) -> tuple[float, float, float, float]:
    """The part of the box inside the image."""
    return max(x0, 0.0), max(y0, 0.0), min(x1, float(image_width)), min(y1, float(image_height))


def pixels_to_fraction(x0: float, y0: float, x1: float, y1: float, image_width: int, image_height: int,
                       digits: int | None = None) -> dict[str, float]:
    """{left, top, width, height} in 0..1 of a corner-form pixel box, clipped to the image.

    `digits` rounds for the wire; the sum left + width never exceeds 1 by more than rounding.
    """
    x0, y0, x1, y1 = clip_xyxy(x0, y0, x1, y1, image_width, image_height)
    left, top = x0 / image_width, y0 / image_height
    box = {"left": left, "top": top,
           "width": min(max(x1 - x0, 0.0) / image_width, 1 - left + EPS),
           "height": min(max(y1 - y0, 0.0) / image_height, 1 - top + EPS)}
    return {k: round(v, digits) for k, v in box.items()} if digits is not None else box


def iou_xyxy(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def iou_ltwh(a, b) -> float:
    """IoU of two (left, top, width, height) boxes; the same in fractions as in pixels, since
    scaling each axis scales every area alike."""
    return iou_xyxy((a[0], a[1], a[0] + a[2], a[1] + a[3]), (b[0], b[1], b[0] + b[2], b[1] + b[3]))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every (x0, y0, x1, y1) box of a (n, 4) with every one of b (m, 4): (n, m)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(inter / (area_a[:, None] + area_b[None, :] - inter))
