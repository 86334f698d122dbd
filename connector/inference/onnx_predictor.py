"""Predict with a version exported by ``onnx_export``: onnxruntime runs the graphs, NumPy decodes.

Same interface as :class:`connector.modeling.predictor.Predictor` (``labels``, ``predict``,
``warm_up``) and the same boxes, plus ``predict_batch``, which runs one forward pass for all
images that pad to the same size (photos from one camera do). Everything it needs to know about
the model is the metadata stored in the ONNX file itself; no detectron2 config is read.

onnxruntime sessions are safe to call from several threads at once; ``num_threads`` is the
session's intra-op thread count (its own pool, not torch's OpenMP teams).

``alone`` (serving passes one) opens the network twice. A pool whose idle threads sleep pays a
wake-up at each of the graph's ~100 parallel steps; one whose threads spin does not, but a
spinning thread holds a core that another request needs. So a forward pass takes the spinning
session only when ``alone()`` says no other request is being answered and no other pass runs;
otherwise the sleeping one. It stops spinning when the pass ends: the answer still needs a core.
Measured on 2 cores, int8, over HTTP: a lone detect 26.0 -> 22.6 ms p50; with 4 clients,
spinning whenever no other *pass* ran lost 15% of the requests/s (the other requests decode and
answer between passes), hence the request count.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from . import onnx_postprocess as post
from .engines import FLOAT32, INT8, ONNXRUNTIME
from .image_input import ModelInput, batch_tensor, forward_groups, prepare
from .onnx_export import FORMAT, METADATA_KEY
from ..modeling.artifacts import ONNX, ONNX_INT8
from ..modeling.detection import Detection
from ..modeling.suppression import soft_nms

__all__ = ["OnnxPredictor", "read_metadata"]


def read_metadata(path: str | Path) -> dict:
    """The odconnect metadata of an exported ONNX file (without loading its weights)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    raise ValueError(f"{Path(path).name} has no '{METADATA_KEY}' metadata: not an odconnect export")


class OnnxPredictor:
    engine = ONNXRUNTIME

    def __init__(self, folder: str | Path, num_threads: int | None = None, int8: bool = False,
                 alone: Callable[[], bool] | None = None) -> None:
        import onnxruntime as ort

        folder = Path(folder)

        def session(name: str, spinning: bool = False):
            options = ort.SessionOptions()
            options.intra_op_num_threads = int(num_threads or 0)  # 0: onnxruntime's default (cores)
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # by default idle pool threads sleep: requests overlap, and training shares the cores
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
            if spinning:  # spin between the steps of a pass, not after it: the answer still needs a core
                options.add_session_config_entry("session.force_spinning_stop", "1")
            return ort.InferenceSession(str(folder / name), options, providers=["CPUExecutionProvider"])

        network = ONNX_INT8 if int8 else ONNX
        self.precision = INT8 if int8 else FLOAT32
        self.network = session(network)
        # a pool of one thread (the caller) has nothing to wake up: no second session
        self._alone = alone
        self._alone_network = session(network, spinning=True) if alone is not None and num_threads != 1 else None
        self._running = 0  # forward passes in progress
        self._running_lock = threading.Lock()
        meta = self.network.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if meta is None:
            raise ValueError(f"{network} has no '{METADATA_KEY}' metadata: not an odconnect export")
        self.meta = json.loads(meta)
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{network} is in format {self.meta.get('format')!r}, expected {FORMAT!r}")
        self.architecture = self.meta["architecture"]
        self._decoding = self.meta.get("postprocess") or self.meta["roi_heads"]  # the final step's settings
        self.roi_heads = session(self.meta["graphs"]["roi_heads"]) if self.architecture == "faster_rcnn" else None
        inp = self.meta["input"]
        self.min_size, self.max_size = inp["resize"]["min_size"], inp["resize"]["max_size"]
        self.levels = list(self.meta["levels"])
        anchors = self.meta["anchors"]
        self._cell_anchors = [np.asarray(a, dtype=np.float32) for a in anchors["cell_anchors"]]
        self._anchor_cache: dict[tuple[int, int], list[np.ndarray]] = {}

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    # ------------------------------------------------------------------ public

    def prepare(self, image: Image.Image | bytes | ModelInput) -> ModelInput:
        """The picture decoded (at reduced scale when it is a large, not yet loaded JPEG) and resized."""
        return prepare(image, self.min_size, self.max_size)

    def predict(self, image: Image.Image | bytes | ModelInput, min_score: float = 0.05) -> list[Detection]:
        """Detections on one picture, absolute pixels of the original, highest score first.

        Unlike the torch predictor, EXIF orientation is applied here (pictures that are already
        upright, as detect hands them over, are unchanged), so encoded bytes can come straight in.
        """
        return self.predict_inputs([self.prepare(image)], min_score)[0]

    def predict_batch(self, images: Iterable[Image.Image | bytes], min_score: float = 0.05) -> list[list[Detection]]:
        """Detections per picture; pictures that pad to the same size share a forward pass."""
        return self.predict_inputs([self.prepare(im) for im in images], min_score)

    def predict_inputs(self, inputs: list[ModelInput], min_score: float = 0.05) -> list[list[Detection]]:
        """Detections per prepared picture; pictures that pad to the same size share a forward pass."""
        results: list[list[Detection] | None] = [None] * len(inputs)
        for chunk in forward_groups(inputs, int(self.meta["input"]["size_divisibility"])):
            for i, dets in zip(chunk, self._forward([inputs[i] for i in chunk], min_score)):
                results[i] = dets
        return results  # type: ignore[return-value]

    def warm_up(self) -> None:
        """One pass at the model's test size, and one through each network session, so the first
        request does not pay for set-up."""
        size = self.min_size
        blank = [ModelInput(np.zeros((size, size, 3), np.uint8), size, size)]
        self.predict_inputs(blank)
        inp = self.meta["input"]
        tensor = batch_tensor(blank, inp["channel_order"], inp["pixel_mean"], int(inp["size_divisibility"]))
        for network in (self.network, self._alone_network):
            if network is not None:
                network.run(None, {"image": tensor})

    # ------------------------------------------------------------------ internals

    def _anchors(self, height: int, width: int) -> list[np.ndarray]:
        key = (height, width)
        if key not in self._anchor_cache:
            a = self.meta["anchors"]
            grids = post.level_grid_sizes(height, width, a["strides"])
            self._anchor_cache[key] = [post.grid_anchors(c, s, a["offset"], rows, cols)
                                       for c, s, (rows, cols) in zip(self._cell_anchors, a["strides"], grids)]
        return self._anchor_cache[key]

    def _forward(self, inputs: list[ModelInput], min_score: float) -> list[list[Detection]]:
        inp = self.meta["input"]
        tensor = batch_tensor(inputs, inp["channel_order"], inp["pixel_mean"], int(inp["size_divisibility"]))
        anchors = self._anchors(*tensor.shape[2:])
        outputs = self._run_network({"image": tensor})
        n_levels = len(self.levels)
        for a, o in zip(anchors, outputs[-n_levels:]):  # the last outputs are per-anchor deltas
            if o.shape[1] != a.shape[0]:
                raise RuntimeError(f"the graph gave {o.shape[1]} anchors on a level where the metadata "
                                   f"makes {a.shape[0]}: the export does not fit this input size")
        if self.architecture == "retinanet":
            scores, deltas = outputs[:n_levels], outputs[n_levels:]
            p = self.meta["postprocess"]
            raw = [post.retinanet_detections([s[i] for s in scores], [d[i] for d in deltas], anchors, p)
                   for i in range(len(inputs))]
        else:
            raw = self._rcnn(inputs, outputs, anchors)
        return [self._detections(x, r, min_score) for x, r in zip(inputs, raw)]

    def _run_network(self, feed: dict) -> list[np.ndarray]:
        with self._running_lock:
            alone = self._running == 0
            self._running += 1
        try:
            if alone and self._alone_network is not None and self._alone():
                network = self._alone_network
            else:
                network = self.network
            return network.run(None, feed)
        finally:
            with self._running_lock:
                self._running -= 1

    def _rcnn(self, inputs: list[ModelInput], outputs: list[np.ndarray], anchors: list[np.ndarray]):
        heads = self.meta["roi_heads"]
        n_roi, n_levels = len(heads["levels"]), len(self.levels)
        features = outputs[:n_roi]
        logits, deltas = outputs[n_roi:n_roi + n_levels], outputs[n_roi + n_levels:]
        proposals = [post.rpn_proposals([o[i] for o in logits], [d[i] for d in deltas], anchors,
                                        (x.height, x.width), self.meta["rpn"])
                     for i, x in enumerate(inputs)]
        boxes = np.concatenate(proposals)
        image_index = np.concatenate([np.full(len(p), i, np.float32) for i, p in enumerate(proposals)])
        level = post.assign_levels(boxes, heads["pooler"])
        rois = np.concatenate([image_index[:, None], boxes], axis=1).astype(np.float32)
        order = np.argsort(level, kind="stable")  # the graph pools level by level
        feed = {f"features_{f}": t for f, t in zip(heads["levels"], features)}
        feed.update({f"rois_{f}": rois[order[level[order] == k]] for k, f in enumerate(heads["levels"])})
        probs, box_deltas = self.roi_heads.run(None, feed)
        unsort = np.empty_like(order)
        unsort[order] = np.arange(order.size)
        probs, box_deltas = probs[unsort], box_deltas[unsort]
        raw, start = [], 0
        for x, p in zip(inputs, proposals):
            end = start + len(p)
            raw.append(post.fast_rcnn_detections(probs[start:end], box_deltas[start:end], p,
                                                 (x.height, x.width), heads))
            start = end
        return raw

    def _detections(self, x: ModelInput, raw, min_score: float) -> list[Detection]:
        boxes, scores, classes = post.to_original(*raw, (x.height, x.width), (x.original_height, x.original_width))
        sigma = self._decoding.get("soft_nms_sigma")
        if sigma:
            keep, scores = soft_nms(boxes, scores, classes, float(sigma), float(self._decoding["score_thresh"]),
                                    int(self._decoding["detections_per_image"]))
            boxes, classes = boxes[keep], classes[keep]
        dets = [Detection(int(c), float(s), *map(float, b))
                for b, s, c in zip(boxes.tolist(), scores.tolist(), classes.tolist()) if s >= min_score]
        dets.sort(key=lambda d: -d.score)
        return dets
