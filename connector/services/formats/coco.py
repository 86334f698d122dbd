"""COCO: one JSON (images, annotations with pixel [x, y, width, height], categories).

The structure is validated first (pycocotools builds its index; every id must resolve), so a file
that is not COCO changes nothing. Crowd boxes are skipped: they mark regions, not objects.
"""
from __future__ import annotations

import json

from pycocotools.coco import COCO

from ...errors import Invalid
from .core import Box, ExportSet, Parsed, Picture, ZipSource, load_json, one_file


def parse_json(raw: bytes | str | dict) -> COCO:
    """Parse and validate COCO structure; raise Invalid naming the first problem found."""
    data = raw if isinstance(raw, dict) else load_json(raw, "the COCO annotations")
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
        if not _is_id(ann.get("image_id")) or ann["image_id"] not in image_ids:
            raise Invalid(f"annotation {ann['id']} refers to image {ann.get('image_id')!r}, which is not in 'images'")
        if not _is_id(ann.get("category_id")) or ann["category_id"] not in cat_ids:
            raise Invalid(f"annotation {ann['id']} refers to category {ann.get('category_id')!r}, "
                          "which is not in 'categories'")
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            raise Invalid(f"annotation {ann['id']}: bbox must be [x, y, width, height] numbers")
    coco = COCO()
    coco.dataset = data
    coco.createIndex()
    return coco


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _unique_ids(items: list, what: str) -> set:
    ids = set()
    for item in items:
        if not isinstance(item, dict) or not _is_id(item.get("id")):
            raise Invalid(f"every entry of {what!r} needs an integer 'id'")
        if item["id"] in ids:
            raise Invalid(f"{what!r} has id {item['id']} twice")
        ids.add(item["id"])
    return ids


def to_parsed(coco: COCO) -> Parsed:
    cats = {c["id"]: c["name"].strip() for c in coco.dataset["categories"]}
    parsed = Parsed(labels=list(cats.values()), pictures=[])
    for img in coco.dataset["images"]:
        boxes = []
        for ann in coco.imgToAnns.get(img["id"], []):
            if ann.get("iscrowd"):
                parsed.skip(f"annotation {ann['id']}", "crowd boxes are not used for detection training")
                continue
            try:
                xywh = [float(v) for v in ann["bbox"]]
            except OverflowError:
                parsed.skip(f"annotation {ann['id']}", "a bbox number is too large")
                continue
            boxes.append(Box(f"annotation {ann['id']}", cats[ann["category_id"]], *xywh))
        parsed.pictures.append(Picture(f"image {img['id']} ({img['file_name']})", (img["file_name"],), boxes,
                                       img.get("width"), img.get("height")))
    return parsed


def parse(source: ZipSource, annotations: bytes | None) -> Parsed:
    """A zip of images, with the COCO file sent beside it or as the zip's one .json file."""
    return to_parsed(parse_json(one_file(source, annotations, (".json",), "COCO annotations")))


def to_json(export: ExportSet) -> dict:
    """The dataset as COCO: pixel boxes, approved only, file names as the zip export writes them."""
    out = {"info": {"description": f"odconnect model {export.model_name!r}, dataset {export.dataset_name!r}"},
           "categories": [{"id": label_id, "name": name} for label_id, name in export.labels],
           "images": [], "annotations": []}
    next_id = 1
    for img in export.images:
        out["images"].append({"id": img.id, "file_name": f"images/{img.file_name}", "width": img.width,
                              "height": img.height})
        for b in img.boxes:
            out["annotations"].append({"id": next_id, "image_id": img.id, "category_id": b.label_id,
                                       "bbox": [round(v, 2) for v in (b.x, b.y, b.w, b.h)],
                                       "area": round(b.w * b.h, 2), "iscrowd": 0})
            next_id += 1
    return out


def write(export: ExportSet) -> tuple[dict, dict]:
    """(text files, images) of the zip export."""
    return ({"annotations.json": json.dumps(to_json(export), indent=1)},
            {f"images/{img.file_name}": img.sha256 for img in export.images})
