"""TorchScript export of a trained version, with detectron2's TracingAdapter.

Tracing runs the model once on a sample image and records the ops; detectron2
supports this for RetinaNet and Faster R-CNN on CPU. The traced module takes a
CHW float tensor in the model's input format (cfg.INPUT.FORMAT), resized so its
short side is cfg.INPUT.MIN_SIZE_TEST, and returns (boxes, classes, scores, image size).
"""
from __future__ import annotations

import io
from pathlib import Path

import torch

from model_store import atomic_write

from ..modeling.artifacts import VersionFiles


def _inference_func(model, inputs):
    """Raw (not rescaled) outputs: what a traced graph can return for both architectures."""
    if hasattr(model, "inference"):  # GeneralizedRCNN (Faster R-CNN)
        return [{"instances": model.inference(inputs, do_postprocess=False)[0]}]
    return model(inputs)  # dense detectors (RetinaNet) already return per-image results


def export_torchscript(folder: Path) -> Path:
    """Trace the version in `folder` into its TorchScript file, once."""
    files = VersionFiles.at(folder)
    target = files.torchscript
    if target.exists():
        return target
    from detectron2.export import TracingAdapter

    from ..modeling.predictor import Predictor
    predictor = Predictor(files.config, files.weights, device="cpu")
    size = int(predictor.cfg.INPUT.MIN_SIZE_TEST)
    sample = [{"image": torch.rand(3, size, size) * 255}]
    adapter = TracingAdapter(predictor.model, sample, _inference_func)
    with torch.no_grad():
        traced = torch.jit.trace(adapter, adapter.flattened_inputs, check_trace=False)
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    atomic_write(target, buf.getvalue())
    return target
