"""The files of a trained version, by name, in the version's folder.

One place for these names: training writes them, the predictor and the exports read them, and
the export zip lists them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["VersionFiles", "WEIGHTS", "CONFIG", "TORCHSCRIPT", "ONNX", "ONNX_INT8", "ONNX_ROI_HEADS", "ONNX_METADATA",
           "version_folder", "run_folder"]

WEIGHTS = "model_final.pth"   # {"model": state_dict} of the kept weights
CONFIG = "config.yaml"        # the full detectron2 config tree, ODCONNECT keys included
TORCHSCRIPT = "model.ts"      # traced on demand by the TorchScript export
ONNX = "model.onnx"           # the network as ONNX (export?format=onnx, the onnxruntime engine)
ONNX_INT8 = "model.int8.onnx"   # the network quantized to int8 (onnx_quantize), when its check passed
ONNX_ROI_HEADS = "model_roi_heads.onnx"  # Faster R-CNN's second graph (box head on RoIs)
ONNX_METADATA = "onnx.json"   # pre/post-processing of the ONNX graphs; written last, marks the export complete


@dataclass(frozen=True)
class VersionFiles:
    folder: Path

    @classmethod
    def at(cls, folder: str | Path) -> "VersionFiles":
        return cls(Path(folder))

    @property
    def weights(self) -> Path:
        return self.folder / WEIGHTS

    @property
    def config(self) -> Path:
        return self.folder / CONFIG

    @property
    def torchscript(self) -> Path:
        return self.folder / TORCHSCRIPT

    @property
    def int8(self) -> Path:
        return self.folder / ONNX_INT8

    @property
    def onnx_metadata(self) -> Path:
        return self.folder / ONNX_METADATA


def version_folder(artifacts_root: Path, model_id: int, number: int) -> Path:
    """Where version `number` of a model lives once its run succeeded."""
    return Path(artifacts_root) / f"model-{model_id}" / f"v{number}"


def run_folder(artifacts_root: Path, run_id: int) -> Path:
    """Where a run trains; renamed to its version folder when it succeeds, removed otherwise."""
    return Path(artifacts_root) / f".run-{run_id}"

