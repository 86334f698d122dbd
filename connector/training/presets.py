"""Every training preset in one config tree.

Like detectron2's ``config/defaults.py``: one function, :func:`build_cfg`, builds the full
detectron2 ``CfgNode`` for a preset name; everything a run needs (model, input sizes,
augmentation, solver, our own ``ODCONNECT`` keys) lives in that tree and is dumped beside the
weights, so the predictor can rebuild the model from the YAML alone.

Base configs come from detectron2's packaged model-zoo YAMLs (they ship inside the wheel; no
download). ``MODEL.WEIGHTS`` is always cleared: initial weights are either the packaged
ImageNet backbone (``fast``/``balanced``, loaded by the backbone builder) or an explicit
``init_weights`` file given to :func:`connector.training.api.train`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # detectron2 (and torch) load only when a config is built: listing presets stays light
    from detectron2.config import CfgNode

__all__ = ["PRESETS", "Preset", "build_cfg", "add_odconnect_config"]

_RETINANET_BASE = "COCO-Detection/retinanet_R_50_FPN_1x.yaml"
_FASTER_RCNN_BASE = "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml"

# Per-channel ImageNet statistics in BGR order (detectron2's convention for INPUT.FORMAT "BGR").
_IMAGENET_MEAN_BGR = [103.530, 116.280, 123.675]
_IMAGENET_STD_BGR = [57.375, 57.120, 58.395]
_GPU_MAX_LR = 0.02  # at batch 8


def add_odconnect_config(cfg: CfgNode) -> None:
    """Add our own keys (``cfg.ODCONNECT``) with their defaults."""
    from detectron2.config import CfgNode
    cfg.ODCONNECT = CfgNode()
    cfg.ODCONNECT.PRESET = ""
    cfg.ODCONNECT.LABELS = []  # label_index -> name; filled by train(), read by the Predictor
    cfg.ODCONNECT.STARTED_FROM = ""  # filled by train(): "scratch" | "imagenet:<f>" | "weights:<f>"
    # The preset is only sensible when started from a checkpoint (train(init_weights=...)).
    cfg.ODCONNECT.REQUIRES_INIT_WEIGHTS = False
    # Photometric augmentation (detectron2.data.transforms), ranges of the random factor;
    # an empty/(1, 1) range disables it. Flip and scale jitter use the stock
    # INPUT.RANDOM_FLIP and INPUT.MIN_SIZE_TRAIN(+_SAMPLING) keys.
    cfg.ODCONNECT.AUG = CfgNode()
    cfg.ODCONNECT.AUG.BRIGHTNESS = (0.75, 1.25)
    cfg.ODCONNECT.AUG.CONTRAST = (0.75, 1.25)
    cfg.ODCONNECT.AUG.SATURATION = (0.7, 1.3)
    # Random crop (INPUT.CROP.*, before the resize: a zoom-in) applied to this share of images.
    cfg.ODCONNECT.AUG.CROP_PROBABILITY = 0.5
    # Exponential moving average of the weights (hooks.EMAHook): the averaged weights are the
    # ones evaluated and saved. DECAY is the ceiling of a ramp that follows the run's length.
    cfg.ODCONNECT.EMA = CfgNode()
    cfg.ODCONNECT.EMA.ENABLED = False
    cfg.ODCONNECT.EMA.DECAY = 0.999
    # How training labels anchors: "iou" (the detector's own fixed-IoU matcher) or "atss"
    # (connector/modeling/atss.py, RetinaNet only). Training only: a version loads as its arch.
    cfg.ODCONNECT.ASSIGNER = "iou"
    # Settings fitted to the training images (fitting.py); the results land in this cfg.
    cfg.ODCONNECT.FIT = CfgNode()
    # Input sizes from the boxes: grow until small objects are SMALL_OBJECT_PX (up to
    # MAX_INPUT_SIZE), shrink while they stay LARGE_OBJECT_PX (down to MIN_INPUT_SIZE). On by
    # default, measured with 15-minute budgets: bccd AP 0.521 -> 0.559 (448 px), and in 5 minutes
    # fork-scissors AP 0.467 -> 0.673 (256 px); see the README's quality benchmark.
    cfg.ODCONNECT.FIT.INPUT_SIZE = True
    cfg.ODCONNECT.FIT.SMALL_OBJECT_PX = 32
    cfg.ODCONNECT.FIT.LARGE_OBJECT_PX = 64
    cfg.ODCONNECT.FIT.MIN_INPUT_SIZE = 256
    cfg.ODCONNECT.FIT.MAX_INPUT_SIZE = 640
    cfg.ODCONNECT.FIT.ANCHORS = False  # anchor sizes and aspect ratios from the boxes
    cfg.ODCONNECT.FIT.DETECTIONS = False  # detections per image from the fullest image
    # Validation part carved from the training images (api.split_validation): it chooses the
    # kept snapshot and the thresholds, so the evaluation images only report. Under MIN_IMAGES
    # training images there is none: all train, the final weights and DEFAULT_THRESHOLD stay.
    cfg.ODCONNECT.VALIDATION = CfgNode()
    cfg.ODCONNECT.VALIDATION.FRACTION = 0.15
    cfg.ODCONNECT.VALIDATION.MIN_IMAGES = 50
    cfg.ODCONNECT.VALIDATION.MAX_IMAGES = 100
    # An earlier snapshot replaces the final weights only when its validation AP50 (or, within
    # this, its AP) is higher by more than this (hooks.clearly_better); closer is a tie.
    cfg.ODCONNECT.VALIDATION.SNAPSHOT_MARGIN = 0.01  # one point of the performance score
    # A label's threshold moves only with at least this many validation images holding it.
    cfg.ODCONNECT.VALIDATION.MIN_LABEL_IMAGES = 3
    # Gaussian Soft-NMS instead of the detector's greedy NMS (connector/modeling/suppression.py):
    # overlapping boxes of a label lose probability (exp(-IoU^2 / sigma)) instead of going. 0: greedy.
    cfg.ODCONNECT.SOFT_NMS_SIGMA = 0.0
    # Probability threshold per label (label order), filled by train(); detect's default.
    cfg.ODCONNECT.THRESHOLDS = []
    # LR schedule: warm-up then cosine to BASE_LR * FINAL_LR_FACTOR. With a time budget the
    # cosine is planned over the iterations the budget is predicted to allow (see hooks.py).
    cfg.ODCONNECT.FINAL_LR_FACTOR = 0.05


def _from_zoo(path: str) -> CfgNode:
    from detectron2 import model_zoo
    from detectron2.config import get_cfg
    cfg = get_cfg()
    add_odconnect_config(cfg)
    cfg.merge_from_file(model_zoo.get_config_file(path))
    cfg.MODEL.WEIGHTS = ""  # never download; see module docstring
    cfg.DATASETS.TRAIN = ()
    cfg.DATASETS.TEST = ()
    return cfg


def _common(cfg: CfgNode, preset: str, num_classes: int, device: str) -> None:
    cfg.ODCONNECT.PRESET = preset
    cfg.MODEL.DEVICE = device
    cfg.MODEL.RETINANET.NUM_CLASSES = num_classes
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_classes
    cfg.MODEL.MASK_ON = False
    cfg.MODEL.KEYPOINT_ON = False
    # Images with no boxes are kept as negatives: the service only sends images the maker put
    # in the training set, and an untagged one there says "nothing to find here", which is
    # exactly what cuts false positives on backgrounds. Both RetinaNet and Faster R-CNN handle
    # images without instances (all anchors/proposals become background).
    cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS = False
    # 2 CPU cores: decode in the main process (deterministic too); few images, cheap to decode.
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.ASPECT_RATIO_GROUPING = True
    cfg.INPUT.RANDOM_FLIP = "horizontal"
    cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING = "choice"
    cfg.INPUT.CROP.ENABLED = False
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupCosineLR"  # implemented budget-aware in hooks.py
    cfg.SOLVER.MOMENTUM = 0.9
    cfg.SOLVER.WEIGHT_DECAY = 1e-4
    cfg.SOLVER.WARMUP_METHOD = "linear"
    cfg.SOLVER.WARMUP_FACTOR = 0.001
    cfg.SOLVER.CHECKPOINT_PERIOD = 10**9  # we write only the final weights
    cfg.SOLVER.REFERENCE_WORLD_SIZE = 0
    cfg.SOLVER.STEPS = ()
    # Small batches of few images give spiky gradients: clip the global norm.
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "full_model"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 5.0
    cfg.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 2.0
    cfg.TEST.DETECTIONS_PER_IMAGE = 100
    cfg.TEST.EVAL_PERIOD = 0
    cfg.VIS_PERIOD = 0


def _sizes(cfg: CfgNode, train: tuple[int, ...], test: int, max_size: int) -> None:
    cfg.INPUT.MIN_SIZE_TRAIN = train
    cfg.INPUT.MAX_SIZE_TRAIN = max_size
    cfg.INPUT.MIN_SIZE_TEST = test
    cfg.INPUT.MAX_SIZE_TEST = max_size


def _light_roi_heads(cfg: CfgNode) -> None:
    """Faster R-CNN settings sized for CPU and a handful of objects per image."""
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = 1000
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 500
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 500
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 300
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 128
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 128


def _efficientnet(cfg: CfgNode, arch: str) -> None:
    """Backbone name, FPN levels/width, anchors, pixel mean/std, INPUT.FORMAT ("RGB") and the
    MODEL.EFFNET keys (ImageNet weights are loaded when the model is built)."""
    from connector.modeling.backbones.efficientnet_lite import efficientnet_lite_preset
    efficientnet_lite_preset(cfg, arch, "lite0")


def _scratch(cfg: CfgNode) -> None:
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64  # required by detectron2 for R18/R34
    cfg.MODEL.RESNETS.NORM = "BN"  # trainable BN (no pretrained statistics to freeze)
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.FPN.OUT_CHANNELS = 128  # halves head cost vs 256 on CPU
    cfg.MODEL.PIXEL_MEAN = list(_IMAGENET_MEAN_BGR)
    cfg.MODEL.PIXEL_STD = list(_IMAGENET_STD_BGR)  # unit variance helps random init
    cfg.INPUT.FORMAT = "BGR"
    _sizes(cfg, (256, 288, 320, 352, 384), 320, 640)
    cfg.SOLVER.IMS_PER_BATCH = 4
    cfg.SOLVER.BASE_LR = 0.01
    cfg.SOLVER.WARMUP_ITERS = 100
    cfg.SOLVER.MAX_ITER = 3000


def _accurate(cfg: CfgNode) -> None:
    _light_roi_heads(cfg)
    _sizes(cfg, (480, 512, 544, 576, 608, 640), 576, 1000)
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.SOLVER.BASE_LR = 0.0025
    cfg.SOLVER.WARMUP_ITERS = 100
    cfg.SOLVER.MAX_ITER = 1500


def _effnet_common(cfg: CfgNode) -> None:
    _sizes(cfg, (288, 320, 352, 384, 416), 352, 640)
    cfg.SOLVER.WARMUP_ITERS = 50


def _fast(cfg: CfgNode) -> None:
    _efficientnet(cfg, "retinanet")
    _effnet_common(cfg)
    # Pretrained features: the zoo's LR 0.01, which diverged without clipping (see the backbone
    # notes), trains well with it and a short warm-up. bccd, 186 iterations (5 minutes' worth):
    # AP 0.456 at LR 0.005 with 50 warm-up iterations, 0.521 at 0.01 with 20.
    cfg.SOLVER.BASE_LR = 0.01
    cfg.SOLVER.WARMUP_ITERS = 20
    # Batches of 2 at the same LR: twice the steps in a budget, each at twice the rate per image.
    # bccd, the compute of 720 batches of 4: AP 0.591 -> 0.613 (batches of 2 at LR 0.005: 0.585).
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.SOLVER.MAX_ITER = 4000
    # The averaged weights are the ones kept (hooks.EMAHook). At a fixed 650 batches of 4 (15
    # minutes' worth then) bccd AP 0.549 -> 0.576, AP75 0.586 -> 0.661; fork-scissors at 400
    # iterations AP 0.704 -> 0.720; bccd at 186 (5 minutes' worth) 0.521 -> 0.515, even.
    cfg.ODCONNECT.EMA.ENABLED = True
    # Soft-NMS (connector/modeling/suppression.py) instead of greedy NMS at IoU 0.5. On one trained
    # version each: bccd (720 iterations) AP 0.581 -> 0.591, AP75 0.639 -> 0.652, counts no
    # worse; fork-scissors (400) AP 0.634 -> 0.652, counts unchanged.
    cfg.ODCONNECT.SOFT_NMS_SIGMA = 0.5


def _balanced(cfg: CfgNode) -> None:
    _light_roi_heads(cfg)
    _efficientnet(cfg, "faster_rcnn")
    _effnet_common(cfg)
    cfg.SOLVER.IMS_PER_BATCH = 4
    cfg.SOLVER.BASE_LR = 0.004
    cfg.SOLVER.MAX_ITER = 1500


def _gpu(cfg: CfgNode) -> None:
    """A GPU affords bigger images, bigger batches and parallel decoding."""
    _sizes(cfg, (480, 512, 544, 576, 608, 640), 608, 1024)
    # linear scaling with the batch, up to the most any preset had on a GPU (fast's batches of 2
    # at 0.01 are a CPU budget's choice, measured there only: linear, they would ask for 0.04)
    cfg.SOLVER.BASE_LR = min(cfg.SOLVER.BASE_LR * 8 / cfg.SOLVER.IMS_PER_BATCH, _GPU_MAX_LR)
    cfg.SOLVER.IMS_PER_BATCH = 8
    cfg.DATALOADER.NUM_WORKERS = 4


@dataclass(frozen=True)
class Preset:
    """A named recipe: a model-zoo base config, then `apply` on top of the common settings."""
    name: str
    description: str  # one line, shown to makers by GET /presets
    base: str  # detectron2 model-zoo YAML (packaged in the wheel)
    apply: Callable[[CfgNode], None]
    requires_init_weights: bool = False  # only sensible when started from a checkpoint file


#: The presets, by name, in the order makers see them.
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("fast", "RetinaNet on an ImageNet-pretrained EfficientNet-Lite0 FPN; quickest useful model on CPU",
           _RETINANET_BASE, _fast),
    Preset("balanced", "Faster R-CNN on an ImageNet-pretrained EfficientNet-Lite0 FPN; slower, often more precise",
           _FASTER_RCNN_BASE, _balanced),
    Preset("scratch", "RetinaNet ResNet-18 FPN trained from random init (no pretrained weights); needs long budgets",
           _RETINANET_BASE, _scratch),
    Preset("accurate", "Faster R-CNN ResNet-50 FPN (model zoo); needs init_weights (a model-zoo file); slow on CPU",
           _FASTER_RCNN_BASE, _accurate, requires_init_weights=True),
)}


def build_cfg(preset: str, num_classes: int, device: str) -> CfgNode:
    """The full (unfrozen) config for ``preset``; ``device`` is "cpu" or "cuda[:n]"."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    if num_classes < 1:
        raise ValueError("num_classes must be >= 1")
    recipe = PRESETS[preset]
    cfg = _from_zoo(recipe.base)
    _common(cfg, preset, num_classes, device)
    cfg.ODCONNECT.REQUIRES_INIT_WEIGHTS = recipe.requires_init_weights
    recipe.apply(cfg)
    if device.startswith("cuda"):
        _gpu(cfg)
    return cfg
