"""Cutting a folder of images into upload requests.

A folder without annotations becomes multipart batches for the image upload endpoint.
With a COCO file, the images it lists become small COCO imports (a zip of the batch's
files plus the annotations of just those images) so that the server's own COCO import
reads the boxes and says what it skipped; images in the folder that the file does not
list still go up, without boxes. Every batch is one request and one transaction on the
server: batches can run in parallel and an interrupted import can simply be run again
(files already stored come back as duplicates).
"""
from __future__ import annotations

import io
import json
import posixpath
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LocalError
from .files import is_image_name, walk


@dataclass
class Batch:
    files: list[Path]
    names: list[str]                  # each file's name in the request (its path in the folder)
    coco: dict | None = None          # the annotations of these files only, for a COCO batch
    nbytes: int = 0

    def zip_bytes(self) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # pictures are compressed already
            for path, name in zip(self.files, self.names):
                zf.write(path, name)
        return buf.getvalue()

    def coco_bytes(self) -> bytes:
        return json.dumps(self.coco).encode()


@dataclass
class Plan:
    batches: list[Batch] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)   # {"item", "reason"}, decided here
    categories: list[str] = field(default_factory=list)

    @property
    def files(self) -> int:
        return sum(len(b.files) for b in self.batches)


def looks_like_coco(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and all(isinstance(data.get(k), list) for k in ("images", "annotations"))


def find_annotations(folder: Path, given: Path | None) -> Path | None:
    """The COCO file: the one named, else the one .json at the top of the folder that is COCO
    (a split.json or a label map beside it is left alone)."""
    if given is not None:
        if not given.is_file():
            raise LocalError(f"{given}: no such annotations file")
        return given
    found = [p for p in sorted(folder.glob("*.json")) if p.is_file() and looks_like_coco(p)]
    if len(found) > 1:
        raise LocalError(f"{folder} holds {len(found)} COCO files "
                         f"({', '.join(p.name for p in found)}): name one with --annotations")
    return found[0] if found else None


def read_coco(path: Path) -> dict:
    """Just enough checking to cut the file into batches; the server validates the rest."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LocalError(f"{path}: not a readable JSON file ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        raise LocalError(f"{path}: not COCO annotations (needs 'images', 'annotations' and 'categories' lists)")
    for img in data["images"]:
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            raise LocalError(f"{path}: every image needs an 'id' and a 'file_name'")
    return data


def _norm(name: str) -> str:
    return posixpath.normpath(name.replace("\\", "/")).lstrip("/")


class _Batcher:
    def __init__(self, max_files: int, max_bytes: int):
        self.max_files, self.max_bytes = max_files, max_bytes
        self.done: list[Batch] = []
        self.open: dict[str, Batch] = {}

    def add(self, kind: str, path: Path, name: str, size: int, entry: dict | None = None):
        batch = self.open.get(kind)
        if batch and (len(batch.files) >= self.max_files or batch.nbytes + size > self.max_bytes):
            self.done.append(batch)
            batch = None
        if batch is None:
            batch = self.open[kind] = Batch([], [], {"images": []} if entry is not None else None)
        batch.files.append(path)
        batch.names.append(name)
        batch.nbytes += size
        if entry is not None:
            batch.coco["images"].append(entry)

    def finish(self) -> list[Batch]:
        return self.done + [b for b in self.open.values() if b.files]


def plan_folder(folder: Path, annotations: Path | None, max_files: int, max_bytes: int) -> Plan:
    plan = Plan()
    coco = read_coco(annotations) if annotations else None
    files = [p for p in walk(folder) if annotations is None or p.resolve() != annotations.resolve()]
    by_name = {p.relative_to(folder).as_posix(): p for p in files}
    base_count = Counter(p.name for p in files)
    by_base = {p.name: p for p in files if base_count[p.name] == 1}
    batcher = _Batcher(max_files, max_bytes)

    listed: set[Path] = set()
    if coco is not None:
        plan.categories = sorted({str(c.get("name", "")).strip() for c in coco["categories"]
                                  if isinstance(c, dict)} - {""})
        for entry in coco["images"]:
            name = _norm(entry["file_name"])
            path = by_name.get(name) or by_base.get(posixpath.basename(name))
            if path is None or path in listed:
                why = "but not in the folder" if path is None else "twice"
                plan.skipped.append({"item": entry["file_name"], "reason": f"listed in {annotations.name} {why}"})
                continue
            listed.add(path)
            batcher.add("coco", path, name, path.stat().st_size, entry)

    for name, path in by_name.items():
        if path in listed:
            continue
        if not is_image_name(path):
            plan.skipped.append({"item": name, "reason": "not an image file name"})
            continue
        batcher.add("files", path, name, path.stat().st_size)
    plan.batches = batcher.finish()

    if coco is not None:  # each COCO batch carries the boxes of its own images only
        boxes: dict = {}
        for ann in coco["annotations"]:
            if isinstance(ann, dict):
                boxes.setdefault(ann.get("image_id"), []).append(ann)
        for batch in plan.batches:
            if batch.coco is not None:
                batch.coco["categories"] = coco["categories"]
                batch.coco["annotations"] = [a for e in batch.coco["images"] for a in boxes.get(e["id"], [])]
    return plan
