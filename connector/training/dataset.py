"""Image records -> detectron2 dataset dicts, and the training mapper (augmentation).

Images are read with Pillow, EXIF-transposed and converted to RGB (the same path the predictor
uses for uploaded images), augmented in RGB and only then converted to the model's
``cfg.INPUT.FORMAT``.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Iterable

import numpy as np
import torch

import detectron2.data.transforms as T
from detectron2.config import CfgNode
from detectron2.data import detection_utils as utils
from detectron2.structures import BoxMode

from connector.imaging import load_rgb
from connector.modeling.records import ImageRecord

__all__ = ["load_rgb_array", "train_decode_side", "to_model_format", "records_to_dicts", "build_train_augmentation", "TrainMapper"]

logger = logging.getLogger("odconnect.training")


def load_rgb_array(path: str, min_side: int | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB array of the image at ``path``, decoded as everywhere else; a large JPEG
    at reduced scale, its short side still at least ``min_side`` (see imaging.load_rgb)."""
    return np.asarray(load_rgb(path, min_side))


def train_decode_side(cfg: CfgNode) -> int | None:
    """The shortest side the training augmentation can use from a picture: its largest training
    size, over the smallest share a random crop keeps (a crop is a zoom-in); None (full size)
    for crops measured in pixels. A phone photo decoded at this size instead of in full is
    several times cheaper, which a time budget turns into more iterations."""
    side = float(max(cfg.INPUT.MIN_SIZE_TRAIN))
    if cfg.INPUT.CROP.ENABLED:
        if cfg.INPUT.CROP.TYPE not in ("relative", "relative_range"):
            return None
        side /= min(float(v) for v in cfg.INPUT.CROP.SIZE)
    return math.ceil(side)


def to_model_format(rgb: np.ndarray, input_format: str) -> np.ndarray:
    """Convert an RGB uint8 array to ``cfg.INPUT.FORMAT`` ("RGB" or "BGR")."""
    if input_format == "BGR":
        return np.ascontiguousarray(rgb[:, :, ::-1])
    if input_format == "RGB":
        return rgb
    raise ValueError(f"unsupported INPUT.FORMAT {input_format!r}")


def records_to_dicts(records: Iterable[ImageRecord]) -> list[dict]:
    """detectron2 dataset dicts (XYWH_ABS boxes, clipped to the image; degenerate ones dropped)."""
    dicts = []
    for r in records:
        anns = []
        for label, x, y, w, h in r.boxes:
            x0, y0 = max(0.0, float(x)), max(0.0, float(y))
            x1, y1 = min(float(r.width), float(x) + float(w)), min(float(r.height), float(y) + float(h))
            if x1 - x0 < 1.0 or y1 - y0 < 1.0:
                continue
            anns.append(
                {
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "bbox_mode": BoxMode.XYWH_ABS,
                    "category_id": int(label),
                    "iscrowd": 0,
                }
            )
        dicts.append(
            {
                "file_name": r.path,
                "image_id": r.image_id,
                "width": int(r.width),
                "height": int(r.height),
                "annotations": anns,
            }
        )
    return dicts


def build_train_augmentation(cfg: CfgNode) -> list[T.Augmentation]:
    """Few-image augmentation: random crop (zoom-in), scale jitter, horizontal flip, colour jitter."""
    augs: list[T.Augmentation] = [
        T.ResizeShortestEdge(
            cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING
        )
    ]
    if cfg.INPUT.CROP.ENABLED:  # before the resize: a crop is a zoom-in
        crop = T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE)
        p = float(cfg.ODCONNECT.AUG.CROP_PROBABILITY)
        augs.insert(0, crop if p >= 1 else T.RandomApply(crop, p))
    if cfg.INPUT.RANDOM_FLIP == "horizontal":
        augs.append(T.RandomFlip(horizontal=True, vertical=False))
    elif cfg.INPUT.RANDOM_FLIP == "vertical":
        augs.append(T.RandomFlip(horizontal=False, vertical=True))
    aug = cfg.ODCONNECT.AUG
    for rng, cls in ((aug.BRIGHTNESS, T.RandomBrightness), (aug.CONTRAST, T.RandomContrast),
                     (aug.SATURATION, T.RandomSaturation)):  # RandomSaturation expects RGB
        if rng and tuple(rng) != (1.0, 1.0):
            augs.append(cls(float(rng[0]), float(rng[1])))
    return augs


class TrainMapper:
    """Dataset dict -> model input ({"image": CHW tensor, "instances": Instances, ...})."""

    def __init__(self, cfg: CfgNode):
        self.augmentations = T.AugmentationList(build_train_augmentation(cfg))
        self.input_format = cfg.INPUT.FORMAT
        self.decode_side = train_decode_side(cfg)
        self._warned: set[int] = set()

    def __call__(self, dataset_dict: dict) -> dict:
        d = copy.deepcopy(dataset_dict)
        rgb = load_rgb_array(d["file_name"], self.decode_side)
        h, w = rgb.shape[:2]
        annos = d.pop("annotations")
        if (h, w) != (d["height"], d["width"]):
            # Decoded at reduced scale, or the stored size disagrees with the decoded
            # (EXIF-transposed) image: rescale the boxes; only the second is worth a warning.
            if abs(w * d["height"] - h * d["width"]) >= max(d["height"], d["width"]) \
                    and d["image_id"] not in self._warned:
                self._warned.add(d["image_id"])
                logger.warning("image %s: recorded size %sx%s, decoded %sx%s; rescaling boxes",
                               d["image_id"], d["width"], d["height"], w, h)
            sx, sy = w / d["width"], h / d["height"]
            for a in annos:
                x, y, bw, bh = a["bbox"]
                a["bbox"] = [x * sx, y * sy, bw * sx, bh * sy]
            d["height"], d["width"] = h, w

        aug_input = T.AugInput(rgb)
        transforms = self.augmentations(aug_input)
        image = to_model_format(aug_input.image, self.input_format)
        image_shape = image.shape[:2]
        d["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        annos = [utils.transform_instance_annotations(a, transforms, image_shape) for a in annos]
        instances = utils.annotations_to_instances(annos, image_shape)
        d["instances"] = utils.filter_empty_instances(instances)
        return d
