"""Dataset formats: import COCO, Pascal VOC, YOLO, Label Studio and Custom Vision; export COCO,
YOLO and VOC. One parser module per format; what they share (file matching, checks, the
one-transaction write, the skip-with-reason report) is in `core`.
"""
from __future__ import annotations

from model_store import Store

from ...errors import Invalid
from . import coco, customvision, labelstudio, voc, yolo
from .core import FolderSource, ZipSource, collect, import_parsed, resolve_import_folder, zip_archive

PARSERS = {"coco": coco.parse, "voc": voc.parse, "yolo": yolo.parse, "labelstudio": labelstudio.parse,
           "customvision": customvision.parse}
WRITERS = {"coco": coco.write, "yolo": yolo.write, "voc": voc.write}


def import_archive(store: Store, limits: dict, fmt: str, model_ref, dataset_id: int, archive: bytes,
                   annotations: bytes | None, add_labels: bool = True) -> dict:
    """A zip of images in one of PARSERS' formats, its annotations inside it or sent beside it."""
    if fmt not in PARSERS:
        raise Invalid(f"unknown import format {fmt!r}; choose one of {sorted(PARSERS)}")
    source = ZipSource(archive, limits["max_import_bytes"], limits["max_image_bytes"])
    return import_parsed(store, limits, model_ref, dataset_id, PARSERS[fmt](source, annotations), source, add_labels)


def import_coco_folder(store: Store, limits: dict, import_root: str, model_ref, dataset_id: int, folder: str,
                       annotations: str = "coco.json", add_labels: bool = True) -> dict:
    """A folder of the server (under storage.import_root) with its COCO file."""
    read = FolderSource(resolve_import_folder(import_root, folder), limits["max_image_bytes"])
    try:
        raw = read(annotations)
    except FileNotFoundError as exc:
        raise Invalid(f"annotations file: {exc}") from exc
    return import_parsed(store, limits, model_ref, dataset_id, coco.to_parsed(coco.parse_json(raw)), read, add_labels)


def export_coco_json(store: Store, model_ref, dataset_id: int) -> dict:
    """The dataset's approved boxes as COCO JSON, without the images."""
    return coco.to_json(collect(store, model_ref, dataset_id))


def export_archive(store: Store, fmt: str, model_ref, dataset_id: int) -> tuple[str, bytes]:
    """(file name, zip) of the dataset's images and approved boxes in one of WRITERS' formats."""
    if fmt not in WRITERS:
        raise Invalid(f"unknown export format {fmt!r}; choose one of {sorted(WRITERS)}")
    files, images = WRITERS[fmt](collect(store, model_ref, dataset_id))
    return f"dataset-{dataset_id}-{fmt}.zip", zip_archive(store, files, images)
