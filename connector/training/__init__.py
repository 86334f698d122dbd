"""Detectron2 training library: presets, trainer, hooks, evaluation (see api.py)."""

from connector.training.api import (
    Canceled,
    ImageRecord,
    TrainRequest,
    TrainResult,
    score_version,
    split_held_out,
    train,
)
from connector.training.presets import PRESETS

__all__ = ["Canceled", "ImageRecord", "TrainRequest", "TrainResult", "score_version", "split_held_out", "train", "PRESETS"]
