"""COCO import (a JSON plus a zip of images, or a folder on the server) and export.

Import is all-or-nothing: the structure is validated first (pycocotools builds
its index; ids must resolve), and every accepted image and box is written in
one transaction. Items that cannot be used (missing or corrupt image file, box
outside its image, crowd boxes, duplicates) are skipped and listed, with why.
"""
from __future__ import annotations

import io
import json
import posixpath
import zipfile
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from pycocotools.coco import COCO
from sqlalchemy import select

from model_store import Store
from model_store.schema import Image, Label, Region

from ..errors import Invalid, NotFound, OdError, TooLarge
from ..imaging import check_image
from .catalog import check_name, get_dataset, get_model
from ..modeling.boxes import fraction_to_pixels, pixels_to_fraction
from .images import display_name


@dataclass
class ImportReport:
    images: int = 0
    duplicates: int = 0
    boxes_per_label: Counter = field(default_factory=Counter)
    labels_added: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def skip(self, item: str, reason: str) -> None:
        self.skipped.append({"item": item, "reason": reason})

    def view(self) -> dict:
        return {"images": self.images, "duplicates": self.duplicates,
                "boxes": sum(self.boxes_per_label.values()),
                "boxesPerLabel": dict(self.boxes_per_label), "labelsAdded": self.labels_added,
                "skipped": self.skipped}


# --- reading the input --------------------------------------------------------------------

def parse_coco(raw: bytes | str | dict) -> COCO:
    """Parse and validate COCO structure; raise Invalid naming the first problem found."""
    if isinstance(raw, dict):
        data = raw
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Invalid(f"the COCO annotations are not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise Invalid("the COCO annotations must be a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise Invalid(f"the COCO annotations have no {key!r} list")
    image_ids = _unique_ids(data["images"], "images")
    cat_ids = _unique_ids(data["categories"], "categories")
    _unique_ids(data["annotations"], "annotations")
    for cat in data["categories"]:
        if not isinstance(cat.get("name"), str) or not cat["name"].strip():
            raise Invalid(f"category {cat['id']} has no name")
    for img in data["images"]:
        if not isinstance(img.get("file_name"), str) or not img["file_name"]:
            raise Invalid(f"image {img['id']} has no file_name")
    for ann in data["annotations"]:
        if ann.get("image_id") not in image_ids:
            raise Invalid(f"annotation {ann['id']} refers to image {ann.get('image_id')!r}, which is not in 'images'")
        if ann.get("category_id") not in cat_ids:
            raise Invalid(f"annotation {ann['id']} refers to category {ann.get('category_id')!r}, "
                          "which is not in 'categories'")
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            raise Invalid(f"annotation {ann['id']}: bbox must be [x, y, width, height] numbers")
    coco = COCO()
    coco.dataset = data
    coco.createIndex()
    return coco


def _unique_ids(items: list, what: str) -> set:
    ids = set()
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), int) or isinstance(item.get("id"), bool):
            raise Invalid(f"every entry of {what!r} needs an integer 'id'")
        if item["id"] in ids:
            raise Invalid(f"{what!r} has id {item['id']} twice")
        ids.add(item["id"])
    return ids


def _norm(name: str) -> str:
    return posixpath.normpath(name.replace("\\", "/")).lstrip("/")


class ZipSource:
    """Image files from a zip, read in memory by name: nothing is extracted to disk."""

    def __init__(self, data: bytes, max_bytes: int, max_file_bytes: int):
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as exc:
            raise Invalid(f"the images file is not a valid zip: {exc}") from exc
        infos = [i for i in self.zip.infolist() if not i.is_dir()]
        if sum(i.file_size for i in infos) > max_bytes:
            raise TooLarge(f"the zip unpacks to more than {max_bytes} bytes")
        self.max_file_bytes = max_file_bytes
        self.by_path = {_norm(i.filename): i for i in infos}
        names = Counter(posixpath.basename(p) for p in self.by_path)
        self.by_base = {posixpath.basename(p): i for p, i in self.by_path.items() if names[posixpath.basename(p)] == 1}

    def json_files(self) -> list[str]:
        return [p for p in self.by_path if p.lower().endswith(".json") and not p.startswith("__MACOSX")]

    def read_named(self, path: str) -> bytes:
        return self.zip.read(self.by_path[path])

    def __call__(self, file_name: str) -> bytes:
        info = self.by_path.get(_norm(file_name)) or self.by_base.get(posixpath.basename(_norm(file_name)))
        if info is None:
            raise FileNotFoundError(f"{file_name} is not in the zip")
        if info.file_size > self.max_file_bytes:
            raise TooLarge(f"{file_name} is over {self.max_file_bytes} bytes")
        return self.zip.read(info)


class FolderSource:
    """Image files under one folder of the server; no name may leave it."""

    def __init__(self, folder: Path, max_file_bytes: int):
        self.folder = folder
        self.max_file_bytes = max_file_bytes

    def __call__(self, file_name: str) -> bytes:
        path = (self.folder / _norm(file_name)).resolve()
        if not path.is_relative_to(self.folder):
            raise FileNotFoundError(f"{file_name} points outside the import folder")
        if not path.is_file():
            raise FileNotFoundError(f"{file_name} is not in the import folder")
        if path.stat().st_size > self.max_file_bytes:
            raise TooLarge(f"{file_name} is over {self.max_file_bytes} bytes")
        return path.read_bytes()


def resolve_import_folder(import_root: str, folder: str) -> Path:
    if not import_root:
        raise Invalid("server-side folder import is disabled; set storage.import_root")
    root = Path(import_root).resolve()
    path = (root / folder).resolve()
    if not path.is_relative_to(root):
        raise Invalid(f"folder {folder!r} is outside the import root")
    if not path.is_dir():
        raise NotFound(f"folder {folder!r} does not exist under the import root")
    return path


# --- the import -----------------------------------------------------------------------------

def import_zip(store: Store, limits: dict, model_ref, dataset_id: int, archive: bytes,
               annotations: bytes | None, add_labels: bool = True) -> dict:
    """A zip of images, with the COCO file sent beside it or as the zip's one .json file."""
    source = ZipSource(archive, limits["max_import_bytes"], limits["max_image_bytes"])
    if annotations is None:
        found = source.json_files()
        if len(found) != 1:
            raise Invalid("send the COCO annotations in the 'annotations' form field, "
                          f"or put exactly one .json file in the zip (found {len(found)})")
        annotations = source.read_named(found[0])
    return import_coco(store, limits, model_ref, dataset_id, parse_coco(annotations), source, add_labels)


def import_folder(store: Store, limits: dict, import_root: str, model_ref, dataset_id: int, folder: str,
                  annotations: str = "coco.json", add_labels: bool = True) -> dict:
    """A folder of the server (under storage.import_root) with its COCO file."""
    read = FolderSource(resolve_import_folder(import_root, folder), limits["max_image_bytes"])
    try:
        raw = read(annotations)
    except FileNotFoundError as exc:
        raise Invalid(f"annotations file: {exc}") from exc
    return import_coco(store, limits, model_ref, dataset_id, parse_coco(raw), read, add_labels)


def import_coco(store: Store, limits: dict, model_ref, dataset_id: int, coco: COCO,
                read_file: Callable[[str], bytes], add_labels: bool = True) -> dict:
    report = ImportReport()
    cats = {c["id"]: c["name"].strip() for c in coco.dataset["categories"]}
    # Read and check every image before opening the transaction: slow work outside, writes inside.
    accepted: dict[int, tuple[dict, object]] = {}
    for img in coco.dataset["images"]:
        item = f"image {img['id']} ({img['file_name']})"
        try:
            checked = check_image(read_file(img["file_name"]), limits, display_name(img["file_name"]))
        except FileNotFoundError as exc:
            report.skip(item, str(exc))
            continue
        except OdError as exc:
            report.skip(item, exc.detail)
            continue
        declared = (img.get("width"), img.get("height"))
        if None not in declared and declared != (checked.width, checked.height):
            report.skip(item, f"declared {declared[0]}x{declared[1]} but the file is {checked.width}x{checked.height}")
            continue
        accepted[img["id"]] = (img, replace(checked, decoded=None))  # keep bytes, not pixels, of many images

    with store.transaction() as s:
        model = get_model(s, model_ref)
        ds = get_dataset(s, model, dataset_id)
        labels = {t.name: t for t in model.labels}
        unknown = sorted({n for n in cats.values() if n not in labels})
        if unknown and not add_labels:
            raise Invalid(f"categories {unknown} are not labels of model {model.name!r}; "
                          "add them or import with addLabels=true")
        for name in unknown:
            label = Label(name=check_name(name, "category name"))
            model.labels.append(label)
            labels[name] = label
            report.labels_added.append(name)
        s.flush()

        for coco_id, (img, checked) in accepted.items():
            sha = store.blobs.put(checked.data)
            existing = s.scalar(select(Image).where(Image.dataset_id == ds.id, Image.sha256 == sha,
                                                    Image.deleted_at.is_(None)))
            if existing is not None:
                report.duplicates += 1
                report.skip(f"image {coco_id} ({img['file_name']})",
                            f"already in the dataset as image {existing.id}")
                continue
            image = Image(dataset_id=ds.id, sha256=sha, name=display_name(img["file_name"]),
                          format=checked.format, width=checked.width, height=checked.height,
                          size_bytes=len(checked.data))
            s.add(image)
            for ann in coco.imgToAnns.get(coco_id, []):
                region = _region_from_annotation(ann, checked.width, checked.height, report)
                if region is None:
                    continue
                label = labels[cats[ann["category_id"]]]
                image.regions.append(Region(label_id=label.id, label=label, source="import", approved=True, **region))
                report.boxes_per_label[label.name] += 1
            report.images += 1
        s.flush()
    return report.view()


def _region_from_annotation(ann: dict, width: int, height: int, report: ImportReport) -> dict | None:
    x, y, w, h = (float(v) for v in ann["bbox"])
    item = f"annotation {ann['id']}"
    if ann.get("iscrowd"):
        report.skip(item, "crowd boxes are not used for detection training")
        return None
    if w <= 0 or h <= 0:
        report.skip(item, f"box has no area (width {w}, height {h})")
        return None
    # Allow a pixel of rounding at the border, then clip.
    if x < -1 or y < -1 or x + w > width + 1 or y + h > height + 1:
        report.skip(item, f"box [{x}, {y}, {w}, {h}] is outside its {width}x{height} image")
        return None
    return pixels_to_fraction(x, y, x + w, y + h, width, height)


# --- export ---------------------------------------------------------------------------------

def export_coco(store: Store, model_ref, dataset_id: int, with_images: bool = False) -> tuple[dict, bytes | None]:
    """The dataset as COCO (pixel boxes, approved only); optionally a zip with the images."""
    with store.transaction() as s:
        model = get_model(s, model_ref)
        ds = get_dataset(s, model, dataset_id)
        images = s.scalars(select(Image).where(Image.dataset_id == ds.id, Image.deleted_at.is_(None))
                           .order_by(Image.id)).all()
        out = {"info": {"description": f"odconnect model {model.name!r}, dataset {ds.name!r}"},
               "categories": [{"id": t.id, "name": t.name} for t in model.labels],
               "images": [], "annotations": []}
        files = []
        for img in images:
            file_name = f"images/{img.id}.{img.format.lower().replace('jpeg', 'jpg')}"
            out["images"].append({"id": img.id, "file_name": file_name, "width": img.width,
                                  "height": img.height})
            files.append((file_name, img.sha256))
            for r in img.regions:
                if not r.approved:
                    continue
                box = fraction_to_pixels(r.left, r.top, r.width, r.height, img.width, img.height)
                out["annotations"].append({"id": r.id, "image_id": img.id, "category_id": r.label_id,
                                           "bbox": [round(v, 2) for v in box],
                                           "area": round(box[2] * box[3], 2), "iscrowd": 0})
    if not with_images:
        return out, None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # images are compressed already
        zf.writestr("annotations.json", json.dumps(out, indent=1))
        for file_name, sha in files:
            zf.writestr(file_name, store.blobs.get(sha))
    return out, buf.getvalue()
