"""The predictor that serves a version, built for the engine chosen for it: torch or onnxruntime.

Both engines answer the same calls, so detect, batch detect, quick test and suggestions never
ask which one they have:

* ``engine``: "torch" | "onnxruntime";
* ``labels``;
* ``prepare(picture)``: a :class:`~connector.inference.image_input.ModelInput` (decoded once,
  a large JPEG at reduced scale, resized once to the model's test size); callers prepare on
  their own thread, so decoding never waits for a forward pass;
* ``predict_inputs(inputs, min_score)``: detections per prepared picture, pictures that pad to
  the same size sharing one forward pass; ``predict(picture, min_score)`` for one.

Where the forward passes run differs, by measurement (bench/detect_bench.py):

* torch: on the model thread, one at a time (see ``model_thread``: a second OpenMP team on 2
  cores made every forward pass ~40% slower);
* onnxruntime: on the calling (request) thread. Sessions are thread-safe and each has its own
  intra-op pool (``onnx_threads``, every core by default, idle threads asleep), so a lone request
  uses every core and concurrent requests share them without OpenMP teams.

Building a torch predictor imports torch and detectron2; an onnxruntime one does not.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .image_input import ModelInput, forward_groups, prepare
from .model_thread import ModelThread

__all__ = ["TORCH", "ONNXRUNTIME", "FLOAT32", "INT8", "TorchEngine", "build_torch", "build_onnxruntime"]

TORCH, ONNXRUNTIME = "torch", "onnxruntime"  # the values of a predictor's ``engine``
FLOAT32, INT8 = "float32", "int8"  # the values of an onnxruntime predictor's ``precision``


class TorchEngine:
    """A detectron2 :class:`~connector.modeling.predictor.Predictor` whose forward passes run on
    the model thread."""

    engine = TORCH

    def __init__(self, predictor, thread: ModelThread):
        self.predictor = predictor
        self.thread = thread
        self.min_size = int(predictor.cfg.INPUT.MIN_SIZE_TEST)
        self.max_size = int(predictor.cfg.INPUT.MAX_SIZE_TEST)

    @property
    def labels(self) -> list[str]:
        return self.predictor.labels

    @property
    def cfg(self):
        return self.predictor.cfg

    def prepare(self, picture) -> ModelInput:
        return prepare(picture, self.min_size, self.max_size)

    def predict(self, picture, min_score: float = 0.05):
        return self.predict_inputs([self.prepare(picture)], min_score)[0]

    def predict_inputs(self, inputs: list[ModelInput], min_score: float = 0.05):
        results: list = [None] * len(inputs)
        for chunk in forward_groups(inputs, self.predictor.size_divisibility):
            batch = [(inputs[i].pixels, inputs[i].original_height, inputs[i].original_width) for i in chunk]
            for i, dets in zip(chunk, self.thread.call(self.predictor.predict_resized, batch, min_score)):
                results[i] = dets
        return results

    def warm_up(self) -> None:
        self.thread.call(self.predictor.warm_up)


def build_torch(folder: str | Path, thread: ModelThread, torch_threads: int | None) -> TorchEngine:
    """Load the version's weights and warm the model up, on the model thread."""
    def build():
        from ..modeling.artifacts import VersionFiles
        from ..modeling.predictor import Predictor
        files = VersionFiles.at(folder)
        predictor = Predictor(files.config, files.weights, num_threads=torch_threads)
        predictor.warm_up()
        return predictor
    return TorchEngine(thread.call(build), thread)


def build_onnxruntime(folder: str | Path, onnx_threads: int, int8: bool = False,
                      alone: Callable[[], bool] | None = None):
    """Open the version's ONNX export (already written and checked; ``int8``: its quantized
    network) and warm it up."""
    from .onnx_predictor import OnnxPredictor
    predictor = OnnxPredictor(folder, num_threads=onnx_threads, int8=int8, alone=alone)
    predictor.warm_up()
    return predictor
