"""int8 copy of an exported network (``model.onnx`` -> ``model.int8.onnx``), for onnxruntime.

Static quantization in QDQ form (onnxruntime.quantization): weights int8 per output channel,
activations uint8 with ranges calibrated on the version's own training pictures, prepared
exactly as detect prepares them. Static, not dynamic: dynamic quantization turns convolutions
into ``ConvInteger``, which ran 1.7x *slower* than float here, while the static graph ran 2x
faster (bench/detect_bench.py).

The first convolutions stay float: they see the image at full resolution through few channels,
and quantizing them cost most of the accuracy lost (measured on fork-scissors: AP 0.498 float,
0.486 all-int8, 0.505 with the first two blocks float). Whether a version is served in int8 at
all is decided on its evaluation images (connector/services/precision_choice.py).

Only the network graph is quantized; Faster R-CNN's box head on RoIs (few RoIs, small cost)
stays float. The metadata the predictor reads is copied into the int8 graph.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable

from model_store import atomic_write

from ..modeling.artifacts import ONNX, VersionFiles
from .onnx_export import METADATA_KEY

__all__ = ["quantize_network", "FLOAT_CONVOLUTIONS"]

# Convolutions kept float, in graph order (EfficientNet-Lite0: the stem and blocks 0-1; ResNet:
# the stem and the first residual block's convolutions).
FLOAT_CONVOLUTIONS = 6


def quantize_network(folder: str | Path, pictures: Iterable[bytes]) -> Path:
    """Write ``model.int8.onnx`` beside the version's float export, calibrated on ``pictures``
    (encoded images); returns its path. Raises ValueError when no picture decodes."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .image_input import batch_tensor
    from .onnx_predictor import OnnxPredictor

    folder = Path(folder)
    float_predictor = OnnxPredictor(folder, num_threads=1)
    inp = float_predictor.meta["input"]
    feeds = []
    for data in pictures:
        try:
            x = float_predictor.prepare(data)
        except Exception:  # a picture that no longer decodes calibrates nothing
            continue
        feeds.append({"image": batch_tensor([x], inp["channel_order"], inp["pixel_mean"],
                                            int(inp["size_divisibility"]))})
    if not feeds:
        raise ValueError("no calibration picture could be decoded")

    class Feeds(CalibrationDataReader):
        def __init__(self):
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    with tempfile.TemporaryDirectory(prefix="odc-int8-") as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        # shape inference and graph clean-up onnxruntime recommends before quantizing
        quant_pre_process(str(folder / ONNX), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared))
        convolutions = [n.name for n in graph.graph.node if n.op_type == "Conv"]
        quantize_static(str(prepared), str(quantized), Feeds(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        nodes_to_exclude=convolutions[:FLOAT_CONVOLUTIONS])
        model = onnx.load(str(quantized))
    source = onnx.load(str(folder / ONNX), load_external_data=False)
    del model.metadata_props[:]
    for entry in source.metadata_props:  # the predictor reads pre/post-processing from here
        if entry.key == METADATA_KEY:
            model.metadata_props.add(key=entry.key, value=entry.value)
    model.doc_string = source.doc_string + " (int8: static QDQ quantization, calibrated on training pictures)"
    out = VersionFiles.at(folder).int8
    atomic_write(out, model.SerializeToString())
    return out
