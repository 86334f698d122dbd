"""Detectron2 training library: presets, trainer, hooks, evaluation (see api.py).

The names below load on first use (PEP 562), so that reading the preset table does not import
torch and detectron2: `GET /presets` and the settings checks of a train request stay fast.
"""
from __future__ import annotations

import importlib

_EXPORTS = {"Canceled": "api", "ImageRecord": "api", "TrainRequest": "api", "TrainResult": "api",
            "split_held_out": "api", "train": "api", "score_version": "api", "PRESETS": "presets"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
