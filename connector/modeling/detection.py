"""One detected object, as every predictor (torch or onnxruntime) returns it: no torch needed."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Detection"]


@dataclass(frozen=True)
class Detection:
    label_index: int
    score: float
    x0: float  # absolute pixels of the original image, corner form
    y0: float
    x1: float
    y1: float
