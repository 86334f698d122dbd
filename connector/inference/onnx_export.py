"""ONNX export of a trained version (config.yaml + model_final.pth), network only.

What goes into the graph is the part of detectron2's inference that is plain tensor maths:
pixel normalization, backbone, FPN and the heads. What stays out is the part that turns
tensors into a varying number of boxes (anchors, thresholds, top-k, NMS, rescaling): tracing
that part bakes shapes and thresholds into the graph, and the ONNX NMS and TopK operators do
not promise torchvision's tie and threshold semantics. ``onnx_postprocess`` does it in NumPy,
step for step as detectron2, so an ONNX predictor returns the torch predictor's boxes.

* RetinaNet (``fast``, ``scratch``): one graph, ``model.onnx``: image in, per level the
  sigmoid class scores and the box deltas out, already in anchor order.
* Faster R-CNN (``balanced``): two graphs. ``model.onnx``: image in; the RoI feature maps,
  the RPN objectness logits and the RPN deltas out. NumPy picks the proposals and assigns each
  to a pyramid level; ``model_roi_heads.onnx``: feature maps and per-level RoIs in, class
  probabilities and class-specific box deltas out (RoIAlign is ONNX's own ``RoiAlign``, opset
  16+ for detectron2's half-pixel alignment).

Input size is dynamic (any height and width that are multiples of the backbone's
divisibility, 32; any batch size). Everything a runtime needs to feed the graphs and decode
their outputs (input layout, resize rule, anchors, thresholds, labels) is written into each
model's ``metadata_props`` and, for people and other tools, into ``onnx.json`` beside them.

After writing, the export checks itself: the graphs run in onnxruntime at a size other than
the one traced, and their outputs must equal the torch model's.
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np

from model_store import atomic_write

from ..modeling.artifacts import ONNX, ONNX_METADATA, ONNX_ROI_HEADS, VersionFiles
from ..modeling.suppression import soft_nms_sigma

__all__ = ["OnnxExportError", "export_onnx", "METADATA_KEY", "FORMAT", "OPSET"]

METADATA_KEY = "odconnect"  # metadata_props key holding the JSON of onnx.json
FORMAT = "odconnect-onnx/1"
# RoiAlign's half-pixel mode (detectron2's ROIAlignV2) needs 16; 17 is what runtimes commonly expect.
OPSET = 17
# Largest |torch - onnxruntime| difference accepted on any output of the self-check.
SELF_CHECK_ATOL = 1e-3


class OnnxExportError(RuntimeError):
    """The version cannot be exported to ONNX; the message says why."""


# --------------------------------------------------------------------------- graph modules

def _torch_modules():
    """The wrapper modules, built on first use so that importing this module stays light."""
    import torch
    from torch import nn
    from detectron2.modeling.meta_arch.dense_detector import permute_to_N_HWA_K

    def backbone_features(m, image):
        """The model's own pixel normalization, then backbone + FPN: both exported networks start so."""
        return m.backbone((image - m.pixel_mean) / m.pixel_std)

    class RetinaNetNetwork(nn.Module):
        """Normalize, backbone + FPN, head; per level (N, H*W*A, K) scores, (N, H*W*A, 4) deltas."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, image):
            m = self.model
            features = backbone_features(m, image)
            features = [features[f] for f in m.head_in_features]
            logits, deltas = m.head(features)
            scores = [permute_to_N_HWA_K(t, m.num_classes).sigmoid() for t in logits]
            deltas = [permute_to_N_HWA_K(t, 4) for t in deltas]
            return tuple(scores + deltas)

    class RcnnNetwork(nn.Module):
        """Normalize, backbone + FPN, RPN head; RoI feature maps, objectness, RPN deltas."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, image):
            m = self.model
            features = backbone_features(m, image)
            rpn = m.proposal_generator
            logits, deltas = rpn.rpn_head([features[f] for f in rpn.in_features])
            # the layouts RPN.forward gives them: (N, H*W*A) and (N, H*W*A, 4)
            logits = [t.permute(0, 2, 3, 1).flatten(1) for t in logits]
            deltas = [t.view(t.shape[0], -1, 4, t.shape[-2], t.shape[-1]).permute(0, 3, 4, 1, 2).flatten(1, -2)
                      for t in deltas]
            roi_features = [features[f] for f in m.roi_heads.box_in_features]
            return tuple(roi_features + logits + deltas)

    class RoiHeads(nn.Module):
        """RoIAlign per level, box head, predictor: (R, K+1) probabilities, (R, K*4) deltas."""

        def __init__(self, model):
            super().__init__()
            self.heads = model.roi_heads
            self.levels = len(self.heads.box_in_features)

        def forward(self, *inputs):
            features, rois = inputs[: self.levels], inputs[self.levels:]
            poolers = self.heads.box_pooler.level_poolers
            pooled = torch.cat([pool(f, r) for pool, f, r in zip(poolers, features, rois)], dim=0)
            x = self.heads.box_head(pooled)
            logits, deltas = self.heads.box_predictor(x)
            return torch.softmax(logits, dim=-1), deltas

    return RetinaNetNetwork, RcnnNetwork, RoiHeads


@contextlib.contextmanager
def _fixed_same_padding(model):
    """While tracing, EfficientNet's "SAME"-padded convs use fixed pads, so the graph takes any size.

    Their forward computes the pads from the input size in Python (``math.ceil``), which the
    tracer records as ``constant - input size``: the graph would crop or pad every input back to
    the traced size. Inputs are padded to multiples of the backbone's total stride, so every such
    conv sees a size its stride divides, and then its pad is a constant: (k - 1) * d + 1 - s.
    The self-check compares the graph with the unpatched model at another size.
    """
    import torch.nn.functional as F
    try:
        from efficientnet_lite_pytorch.utils import Conv2dDynamicSamePadding
    except ImportError:  # the backbone package is absent: no such convs in this model
        yield
        return

    def fixed(conv, pads):
        def forward(x):
            return F.conv2d(F.pad(x, pads) if any(pads) else x, conv.weight, conv.bias, conv.stride,
                            conv.padding, conv.dilation, conv.groups)
        return forward

    from ..modeling.backbones.efficientnet_lite import same_pads

    patched = [m for m in model.modules() if isinstance(m, Conv2dDynamicSamePadding)]
    for m in patched:
        (kh, kw), (sh, sw), (dh, dw) = m.weight.shape[-2:], m.stride, m.dilation
        # the pads of any size the stride divides (the stride itself is one)
        (top, bottom), (left, right) = same_pads(sh, kh, sh, dh), same_pads(sw, kw, sw, dw)
        m.forward = fixed(m, [left, right, top, bottom])
    try:
        yield
    finally:
        for m in patched:
            del m.forward  # back to the class's own forward


# --------------------------------------------------------------------------- loading

def _load_model(folder: Path):
    """(cfg, model in eval mode) with every weight loaded strictly from model_final.pth."""
    import torch
    from detectron2.modeling import build_model

    from ..modeling.predictor import _disable_pretrained_loading, _register_custom_backbones, load_cfg

    files = VersionFiles.at(folder)
    config_path, weights_path = files.config, files.weights
    for path in (config_path, weights_path):
        if not path.is_file():
            raise OnnxExportError(f"{path.name} is missing from the version's folder")
    try:
        cfg = load_cfg(config_path)
    except Exception as exc:
        raise OnnxExportError(f"config.yaml cannot be read: {exc}") from exc
    cfg.MODEL.DEVICE = "cpu"
    _check_supported(cfg)
    _disable_pretrained_loading(cfg)
    _register_custom_backbones()
    try:
        model = build_model(cfg)
    except Exception as exc:
        raise OnnxExportError(f"the model described by config.yaml cannot be built: {exc}") from exc
    try:
        checkpoint = torch.load(str(weights_path), map_location="cpu", weights_only=True)
        state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
        if not isinstance(state, dict):
            raise ValueError(f"expected a dict of tensors, got {type(checkpoint).__name__}")
    except Exception as exc:
        raise OnnxExportError(f"model_final.pth cannot be read as weights: {exc}") from exc
    # strict: the torch predictor's checkpointer only warns about missing weights; an export
    # of a half-loaded model must not look fine
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mismatched:
        raise OnnxExportError(
            f"model_final.pth does not match config.yaml: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, wrong shape {mismatched[:5]}")
    model.load_state_dict(state, strict=True)
    return cfg, model.eval()


def _check_supported(cfg) -> None:
    arch = cfg.MODEL.META_ARCHITECTURE
    if arch == "RetinaNet":
        return
    if arch == "GeneralizedRCNN":
        why = []
        if cfg.MODEL.MASK_ON or cfg.MODEL.KEYPOINT_ON:
            why.append("mask or keypoint heads")
        if cfg.MODEL.PROPOSAL_GENERATOR.NAME != "RPN":
            why.append(f"proposal generator {cfg.MODEL.PROPOSAL_GENERATOR.NAME}")
        if cfg.MODEL.ROI_HEADS.NAME != "StandardROIHeads":
            why.append(f"RoI heads {cfg.MODEL.ROI_HEADS.NAME}")
        if cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE != "ROIAlignV2":
            why.append(f"pooler {cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE}")
        if cfg.MODEL.ROI_BOX_HEAD.get("USE_SIGMOID_CE", False) or cfg.MODEL.ROI_BOX_HEAD.get("USE_FED_LOSS", False):
            why.append("sigmoid/federated box classification")
        if not why:
            return
        raise OnnxExportError(f"ONNX export supports Faster R-CNN without {', '.join(why)}")
    raise OnnxExportError(f"ONNX export supports RetinaNet and Faster R-CNN, not {arch}")


# --------------------------------------------------------------------------- metadata

def _anchors(generator) -> dict:
    return {
        "strides": [int(s) for s in generator.strides],
        "offset": float(generator.offset),
        "cell_anchors": [b.detach().cpu().numpy().astype(float).round(6).tolist()
                         for b in generator.cell_anchors],
        "order": "per level: row-major over the grid (y, then x), then the cell anchors",
    }


def _transform(t) -> dict:
    return {"box_weights": [float(w) for w in t.weights], "scale_clamp": float(t.scale_clamp)}


def _metadata(cfg, model, levels: list[str]) -> dict:
    """Everything a runtime needs beside the graphs, as one JSON-able dict."""
    arch = "retinanet" if cfg.MODEL.META_ARCHITECTURE == "RetinaNet" else "faster_rcnn"
    divisibility = int(model.backbone.size_divisibility) or 1
    meta = {
        "format": FORMAT,
        "architecture": arch,
        "preset": str(cfg.get("ODCONNECT", {}).get("PRESET", "")),
        "labels": list(cfg.ODCONNECT.LABELS) if "ODCONNECT" in cfg else [],
        "opset": OPSET,
        "graphs": {"network": ONNX, **({"roi_heads": ONNX_ROI_HEADS} if arch == "faster_rcnn" else {})},
        "input": {
            "name": "image",
            "layout": "NCHW float32",
            "channel_order": cfg.INPUT.FORMAT,
            "pixel_values": "0..255 as decoded (not scaled); the graph normalizes them",
            "pixel_mean": [float(v) for v in cfg.MODEL.PIXEL_MEAN],
            "pixel_std": [float(v) for v in cfg.MODEL.PIXEL_STD],
            "normalization": "(x - pixel_mean) / pixel_std, inside the graph",
            "resize": {
                "rule": "scale the short side to min_size; if the long side then exceeds max_size, "
                        "scale it down to max_size; round each side to the nearest integer",
                "min_size": int(cfg.INPUT.MIN_SIZE_TEST),
                "max_size": int(cfg.INPUT.MAX_SIZE_TEST),
                "interpolation": "bilinear (Pillow)",
                "orientation": "EXIF orientation applied before resizing",
            },
            "size_divisibility": divisibility,
            "padding": "bottom and right, to multiples of size_divisibility, with pixel_mean "
                       "(zero after normalization, as detectron2 pads); several images of a batch "
                       "are padded to the largest",
        },
        "boxes": "XYXY in the resized (unpadded) image's pixels; divide by the resize scale for the "
                 "original picture, clip to it and drop empty boxes",
    }
    if arch == "retinanet":
        meta["outputs"] = {
            **{f"scores_{f}": "(N, H*W*A, K) sigmoid class scores per anchor" for f in levels},
            **{f"deltas_{f}": "(N, H*W*A, 4) box deltas (dx, dy, dw, dh) per anchor" for f in levels},
        }
        meta["levels"] = levels
        meta["anchors"] = _anchors(model.anchor_generator)
        meta["postprocess"] = {
            **_transform(model.box2box_transform),
            "score_thresh": float(model.test_score_thresh),
            "topk_candidates": int(model.test_topk_candidates),
            "nms_thresh": float(model.test_nms_thresh),
            "detections_per_image": int(model.max_detections_per_image),
            "soft_nms_sigma": soft_nms_sigma(cfg),
            "steps": "per level: scores > score_thresh, keep the topk_candidates best, decode their "
                     "anchors; then per-class NMS (IoU > nms_thresh suppresses) over all levels and "
                     "keep the detections_per_image best. When soft_nms_sigma > 0, instead: every "
                     "decoded candidate back to the original picture, then per-class Gaussian "
                     "Soft-NMS (score *= exp(-IoU^2 / soft_nms_sigma), drop under score_thresh) and "
                     "the detections_per_image best",
        }
    else:
        rpn, heads = model.proposal_generator, model.roi_heads
        pooler = heads.box_pooler
        predictor = heads.box_predictor
        roi_levels = list(heads.box_in_features)
        meta["outputs"] = {
            **{f"features_{f}": "(N, C, H, W) feature map for RoIAlign" for f in roi_levels},
            **{f"objectness_{f}": "(N, H*W*A) RPN objectness logits per anchor" for f in levels},
            **{f"rpn_deltas_{f}": "(N, H*W*A, 4) RPN box deltas per anchor" for f in levels},
        }
        meta["levels"] = levels
        meta["anchors"] = _anchors(rpn.anchor_generator)
        meta["rpn"] = {
            **_transform(rpn.box2box_transform),
            "pre_nms_topk": int(rpn.pre_nms_topk[False]),
            "post_nms_topk": int(rpn.post_nms_topk[False]),
            "nms_thresh": float(rpn.nms_thresh),
            "min_box_size": float(rpn.min_box_size),
        }
        meta["roi_heads"] = {
            "inputs": [f"features_{f}" for f in roi_levels] + [f"rois_{f}" for f in roi_levels],
            "rois": "(R, 5) rows of (image index in the batch, x0, y0, x1, y1), resized-image pixels",
            "outputs": {"probs": "(R, K+1) softmax class probabilities, background last",
                        "deltas": "(R, K*4) class-specific box deltas"},
            "levels": roi_levels,
            "pooler": {"min_level": int(pooler.min_level), "max_level": int(pooler.max_level),
                       "canonical_box_size": float(pooler.canonical_box_size),
                       "canonical_level": int(pooler.canonical_level)},
            **_transform(predictor.box2box_transform),
            "score_thresh": float(predictor.test_score_thresh),
            "nms_thresh": float(predictor.test_nms_thresh),
            "detections_per_image": int(predictor.test_topk_per_image),
            "soft_nms_sigma": soft_nms_sigma(cfg),  # > 0: as for RetinaNet, Soft-NMS replaces the NMS
        }
    return meta


def _with_metadata(onnx_bytes: bytes, meta: dict, doc: str) -> bytes:
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    _drop_empty_trailing_inputs(model.graph)
    model.doc_string = doc
    model.producer_name = "odconnect"
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta, sort_keys=True)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _drop_empty_trailing_inputs(graph) -> None:
    """Remove optional inputs left empty at the end of a node's inputs (the same graph for ONNX).

    The tracer writes EfficientNet's "SAME" pads as ``Pad(x, pads, "")``; onnxruntime folds a
    Pad into the next Conv only when every input it has is a constant, and an empty name is
    not. Folded, the backbone runs without 17 Pad copies and the layout changes around them:
    the float network took 21 ms instead of 31 ms at 256x352 on 2 cores.
    """
    for node in graph.node:
        while node.input and node.input[-1] == "":
            node.input.pop()


# --------------------------------------------------------------------------- export

def _to_onnx(module, args: tuple, input_names, output_names, dynamic_axes) -> bytes:
    import torch

    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module, args, buf, opset_version=OPSET, dynamo=False,
                          input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    return buf.getvalue()


def _sample_image(divisibility: int, height: int, width: int, batch: int = 1):
    import torch

    g = torch.Generator().manual_seed(0)
    h = -(-height // divisibility) * divisibility
    w = -(-width // divisibility) * divisibility
    return torch.rand(batch, 3, h, w, generator=g) * 255


def _sample_rois(levels: list[str], count: int, image_hw: tuple[int, int]):
    """Per level, RoIs (image 0, x0, y0, x1, y1) of varied sizes over the sample image."""
    import torch

    g = torch.Generator().manual_seed(1)
    h, w = image_hw
    xy = torch.rand(count, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
    wh = torch.rand(count, 2, generator=g) * torch.tensor([w * 0.3, h * 0.3]) + 4
    boxes = torch.cat([torch.zeros(count, 1), xy, xy + wh], dim=1)
    return [boxes[i::len(levels)].contiguous() for i in range(len(levels))]


def _trace(model, traced_at, checked_at):
    """(levels, {file name: ONNX bytes}, self-checks) of the model's graphs."""
    import torch

    RetinaNetNetwork, RcnnNetwork, RoiHeads = _torch_modules()
    dyn_image = {"image": {0: "batch", 2: "height", 3: "width"}}
    graphs: dict[str, bytes] = {}
    checks = []  # (graph name, torch module, inputs) to run through both engines
    if not hasattr(model, "roi_heads"):  # RetinaNet
        levels = list(model.head_in_features)
        network = RetinaNetNetwork(model).eval()
        outputs = [f"scores_{f}" for f in levels] + [f"deltas_{f}" for f in levels]
        dyn = {**dyn_image, **{o: {0: "batch", 1: f"anchors_{o.split('_')[1]}"} for o in outputs}}
        graphs[ONNX] = _to_onnx(network, (traced_at,), ["image"], outputs, dyn)
        checks.append((ONNX, network, {"image": checked_at}))
    else:
        levels = list(model.proposal_generator.in_features)
        roi_levels = list(model.roi_heads.box_in_features)
        network = RcnnNetwork(model).eval()
        outputs = ([f"features_{f}" for f in roi_levels] + [f"objectness_{f}" for f in levels]
                   + [f"rpn_deltas_{f}" for f in levels])
        dyn = {**dyn_image,
               **{f"features_{f}": {0: "batch", 2: f"height_{f}", 3: f"width_{f}"} for f in roi_levels},
               **{f"objectness_{f}": {0: "batch", 1: f"anchors_{f}"} for f in levels},
               **{f"rpn_deltas_{f}": {0: "batch", 1: f"anchors_{f}"} for f in levels}}
        graphs[ONNX] = _to_onnx(network, (traced_at,), ["image"], outputs, dyn)
        checks.append((ONNX, network, {"image": checked_at}))

        heads = RoiHeads(model).eval()
        with torch.no_grad():
            traced_features = list(network(traced_at)[: len(roi_levels)])
            checked_features = list(network(checked_at)[: len(roi_levels)])
        names = [f"features_{f}" for f in roi_levels] + [f"rois_{f}" for f in roi_levels]
        dyn = {**{f"features_{f}": {0: "batch", 2: f"height_{f}", 3: f"width_{f}"} for f in roi_levels},
               **{f"rois_{f}": {0: f"rois_{f}"} for f in roi_levels},
               "probs": {0: "rois"}, "deltas": {0: "rois"}}
        traced_rois = _sample_rois(roi_levels, 24, tuple(traced_at.shape[-2:]))
        graphs[ONNX_ROI_HEADS] = _to_onnx(heads, (*traced_features, *traced_rois), names,
                                          ["probs", "deltas"], dyn)
        checked_rois = _sample_rois(roi_levels, 31, tuple(checked_at.shape[-2:]))
        checked_rois[-1][:, 0] = 1  # RoIs on the second image of the batch too
        checks.append((ONNX_ROI_HEADS, heads, dict(zip(names, [*checked_features, *checked_rois]))))
    return levels, graphs, checks


def export_onnx(folder: str | Path, force: bool = False) -> Path:
    """Export the version in ``folder`` to ONNX beside its weights; returns the onnx.json path.

    Done once: an existing complete export is kept unless ``force``. Raises
    :class:`OnnxExportError` with the reason when the version cannot be exported or the
    exported graphs do not compute what the torch model computes.
    """
    folder = Path(folder)
    meta_path = folder / ONNX_METADATA
    if meta_path.is_file() and not force:
        meta = json.loads(meta_path.read_text())
        if all((folder / name).is_file() for name in meta.get("graphs", {}).values()):
            return meta_path

    cfg, model = _load_model(folder)
    divisibility = int(model.backbone.size_divisibility) or 1
    size = int(cfg.INPUT.MIN_SIZE_TEST)
    traced_at = _sample_image(divisibility, size, size * 4 // 3)
    checked_at = _sample_image(divisibility, size * 5 // 4, size * 3 // 4, batch=2)
    try:
        with _fixed_same_padding(model):
            levels, graphs, checks = _trace(model, traced_at, checked_at)
    except OnnxExportError:
        raise
    except Exception as exc:
        raise OnnxExportError(f"tracing the network to ONNX failed: {type(exc).__name__}: {exc}") from exc

    meta = _metadata(cfg, model, levels)
    for name, graph_bytes in graphs.items():
        graphs[name] = _with_metadata(graph_bytes, meta, doc=f"odconnect {meta['architecture']} network; "
                                      f"see metadata_props['{METADATA_KEY}'] for pre/post-processing")
    _self_check(graphs, checks)
    for name, graph_bytes in graphs.items():
        atomic_write(folder / name, graph_bytes)
    atomic_write(meta_path, json.dumps(meta, indent=1, sort_keys=True).encode())  # last: marks it complete
    return meta_path


def _self_check(graphs: dict[str, bytes], checks) -> None:
    """Each graph, run by onnxruntime on inputs of another size than traced, equals torch."""
    import onnxruntime as ort
    import torch

    for name, module, inputs in checks:
        session = ort.InferenceSession(graphs[name], providers=["CPUExecutionProvider"])
        with torch.no_grad():
            expected = module(*inputs.values())
        got = session.run(None, {k: v.numpy() for k, v in inputs.items()})
        for out, (e, g) in zip(session.get_outputs(), zip(expected, got)):
            e = e.numpy()
            if e.shape != g.shape:
                raise OnnxExportError(f"{name}: output {out.name} has shape {g.shape} in onnxruntime, "
                                      f"{e.shape} in torch")
            diff = float(np.abs(e - g).max()) if e.size else 0.0
            scale = max(1.0, float(np.abs(e).max()) if e.size else 1.0)
            if not diff <= SELF_CHECK_ATOL * scale:
                raise OnnxExportError(f"{name}: output {out.name} differs from torch by {diff:.3g} "
                                      f"in onnxruntime")
