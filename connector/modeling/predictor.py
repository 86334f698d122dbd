"""Load a trained version (config.yaml + weights) and predict boxes on PIL images."""

from __future__ import annotations

import logging
import threading
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import detectron2.data.transforms as T
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode, get_cfg
from detectron2.modeling import build_model

from ..imaging import to_rgb
from .detection import Detection
from .memory_format import to_fast_layout
from .suppression import all_candidates, floor_and_cap, soft_nms, soft_nms_sigma

__all__ = ["Detection", "Predictor", "load_cfg"]

logger = logging.getLogger("odconnect.modeling")


def _register_custom_backbones() -> None:
    """Import modules that register backbones with detectron2 (absent ones are fine)."""
    try:
        import connector.modeling.backbones.efficientnet_lite  # noqa: F401
    except ImportError:
        pass


def load_cfg(config_path: str | Path) -> CfgNode:
    """The cfg dumped by training (full tree, incl. custom keys such as ODCONNECT)."""
    cfg = get_cfg()
    cfg.set_new_allowed(True)
    cfg.merge_from_file(str(config_path))
    return cfg


class Predictor:
    """Thread-safe predictor of one trained version.

    ``num_threads`` calls ``torch.set_num_threads`` (a process-wide setting). Detections scoring
    below the model's own test threshold (``*.SCORE_THRESH_TEST``, 0.05 by default) never reach
    ``predict``'s ``min_score`` filter.
    """

    def __init__(self, config_path: str | Path, weights_path: str | Path, device: str | None = None,
                 num_threads: int | None = None) -> None:
        if num_threads:
            torch.set_num_threads(int(num_threads))
        cfg = load_cfg(config_path)
        if device is not None:
            cfg.MODEL.DEVICE = device
        elif cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
            cfg.MODEL.DEVICE = "cpu"
        _disable_pretrained_loading(cfg)
        _register_custom_backbones()
        model = build_model(cfg)
        DetectionCheckpointer(model).load(str(weights_path), checkpointables=[])
        self._setup(cfg, to_fast_layout(model, cfg.MODEL.DEVICE))

    @classmethod
    def from_model(cls, cfg: CfgNode, model: torch.nn.Module) -> "Predictor":
        """Wrap an in-memory model (used for the evaluation right after training)."""
        self = cls.__new__(cls)
        self._setup(cfg, model)
        return self

    def _setup(self, cfg: CfgNode, model: torch.nn.Module) -> None:
        self.cfg = cfg
        self.model = model.eval()
        self.device = torch.device(cfg.MODEL.DEVICE)
        self.input_format = cfg.INPUT.FORMAT
        self._resize = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
        self._labels = list(cfg.ODCONNECT.LABELS) if "ODCONNECT" in cfg else []
        self._lock = threading.Lock()
        self._soft_sigma = soft_nms_sigma(cfg)

    @property
    def labels(self) -> list[str]:
        return list(self._labels)

    @property
    def size_divisibility(self) -> int:
        """What the model pads its input's height and width to a multiple of."""
        return int(self.model.backbone.size_divisibility) or 1

    def predict_array(self, rgb: np.ndarray, min_score: float = 0.05) -> list[Detection]:
        """Detections on an HxWx3 uint8 RGB array, highest score first."""
        h, w = rgb.shape[:2]
        return self.predict_resized([(self._resize.get_transform(rgb).apply_image(rgb), h, w)], min_score)[0]

    def predict_resized(self, images: list[tuple[np.ndarray, int, int]],
                        min_score: float = 0.05) -> list[list[Detection]]:
        """Detections per picture, in one forward pass, of pictures already resized to the test
        size: (HxWx3 uint8 RGB, original height, original width) each; boxes in the original's pixels."""
        inputs = []
        for rgb, h, w in images:
            chw = (rgb[:, :, ::-1] if self.input_format == "BGR" else rgb).transpose(2, 0, 1)
            tensor = torch.from_numpy(chw.astype(np.float32, order="C"))  # the one converting copy
            inputs.append({"image": tensor.to(self.device), "height": h, "width": w})
        with self._lock, torch.inference_mode():
            floor, cap = floor_and_cap(self.model)  # before all_candidates lifts the cap
            with all_candidates(self.model) if self._soft_sigma else nullcontext():
                outputs = self.model(inputs)
        return [self._detections(out["instances"].to("cpu"), min_score, floor, cap) for out in outputs]

    def _detections(self, inst, min_score: float, floor: float, cap: int) -> list[Detection]:
        boxes, scores, classes = inst.pred_boxes.tensor.numpy(), inst.scores.numpy(), inst.pred_classes.numpy()
        if self._soft_sigma:
            keep, scores = soft_nms(boxes, scores, classes, self._soft_sigma, floor, cap)
            boxes, classes = boxes[keep], classes[keep]
        boxes, scores, classes = boxes.tolist(), scores.tolist(), classes.tolist()
        dets = [Detection(int(c), float(s), *map(float, b))
                for b, s, c in zip(boxes, scores, classes) if s >= min_score]
        dets.sort(key=lambda d: -d.score)
        return dets

    def predict(self, image: Image.Image, min_score: float = 0.05) -> list[Detection]:
        """Detections on a PIL image (converted to RGB if needed), absolute pixel boxes."""
        return self.predict_array(np.asarray(to_rgb(image)), min_score)

    def warm_up(self) -> None:
        size = int(self.cfg.INPUT.MIN_SIZE_TEST)
        self.predict_array(np.zeros((size, size, 3), dtype=np.uint8))


def _disable_pretrained_loading(cfg: CfgNode) -> None:
    """The weights file holds every parameter: don't let a backbone builder load ImageNet
    weights again (EfficientNet-Lite reads MODEL.EFFNET.PRETRAINED)."""
    cfg.MODEL.WEIGHTS = ""
    if "EFFNET" in cfg.MODEL:
        cfg.MODEL.EFFNET.PRETRAINED = False
