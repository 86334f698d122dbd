"""What every dataset format shares: reading the input, the checks, the one-transaction write,
the skip-with-reason report, and the approved boxes an export writes.

A format's parser turns its files into `Parsed` (pictures with their boxes, in the format's own
units) without touching the store; `import_parsed` then finds each picture's file by name, checks
it like an upload, validates each box against the real image size, and writes every accepted
image and box in one transaction. Structural errors (a file that is not the format at all) are
`Invalid` and change nothing; items that cannot be used are skipped and listed, with why.
"""
from __future__ import annotations

import io
import json
import math
import posixpath
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import SplitResult, urlsplit

from sqlalchemy import select

from model_store import Store
from model_store.schema import Image, Label, Region

from ...errors import Invalid, NotFound, OdError, TooLarge
from ...imaging import check_image
from ...modeling.boxes import fraction_to_pixels, pixels_to_fraction
from ..catalog import check_name, get_dataset, get_model, label_key, labels_by_key
from ..images import MAX_BOXES_PER_IMAGE, display_name, too_many_boxes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


# --- what a parser produces ---------------------------------------------------------------------

@dataclass
class Box:
    """One box as the file gives it: top-left corner and size, in pixels or in fractions (0..1)."""
    item: str  # how the report names it, e.g. "annotation 7" or "labels/a.txt line 3"
    label: str
    x: float
    y: float
    w: float
    h: float
    fraction: bool = False


@dataclass
class Picture:
    item: str                      # how the report names the image, e.g. "image 3 (a.jpg)"
    names: tuple[str, ...]         # file names to look for, in order (the first is reported)
    boxes: list[Box] = field(default_factory=list)
    # The size the file declares. Checked only by pixel formats, where a different file would
    # put every box in the wrong place; fraction formats stay right on a resized copy.
    width: int | None = None
    height: int | None = None


@dataclass
class Parsed:
    labels: list[str]              # every label the boxes use, in the file's order
    pictures: list[Picture]
    skipped: list[dict] = field(default_factory=list)  # found unusable while parsing

    def skip(self, item: str, reason: str) -> None:
        self.skipped.append({"item": item, "reason": reason})


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


# --- where the files come from ------------------------------------------------------------------

def norm_path(name: str) -> str:
    return posixpath.normpath(name.replace("\\", "/")).lstrip("/")


def stem(path: str) -> str:
    return posixpath.splitext(posixpath.basename(path))[0]


def is_image_name(path: str) -> bool:
    return path.lower().endswith(IMAGE_SUFFIXES)


def url_parts(ref: str) -> SplitResult | None:
    """A URL's parts, or None when it does not split as one (e.g. "http://[::1/a.jpg"): the
    caller then looks the text up as a file name."""
    try:
        return urlsplit(ref)
    except ValueError:
        return None


# What zipfile raises for an entry it lists but cannot give back: a bad CRC, corrupt deflate data,
# a password, a compression method it lacks (Deflate64, which Windows writes for large files).
UNREADABLE_ENTRY = (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, EOFError)


def load_json(raw: bytes | str, what: str):
    """JSON text as Python values; Invalid naming `what` when it is not JSON (or nests too deep)."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid(f"{what} is not valid JSON: {exc}") from exc
    except RecursionError:
        raise Invalid(f"{what} nests too deeply to read") from None


class ZipSource:
    """Files from a zip, read in memory by name: nothing is extracted to disk.

    A name is found by its full path in the zip, else by its file name alone when exactly one
    file in the zip has it (exports name images by path, people zip folders as they like).
    """

    def __init__(self, data: bytes, max_bytes: int, max_file_bytes: int, what: str = "the images file"):
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as exc:
            raise Invalid(f"{what} is not a valid zip: {exc}") from exc
        infos = [i for i in self.zip.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX")]
        if sum(i.file_size for i in infos) > max_bytes:
            raise TooLarge(f"{what} unpacks to more than {max_bytes} bytes")
        self.max_bytes = max_bytes
        self.max_file_bytes = max_file_bytes
        self.by_path = {norm_path(i.filename): i for i in infos}
        self.base_counts = Counter(posixpath.basename(p) for p in self.by_path)
        self.by_base = {posixpath.basename(p): i for p, i in self.by_path.items()
                        if self.base_counts[posixpath.basename(p)] == 1}

    @property
    def paths(self) -> list[str]:
        return sorted(self.by_path)

    def with_suffix(self, *suffixes: str) -> list[str]:
        return [p for p in self.paths if p.lower().endswith(suffixes)]

    def read_named(self, path: str, max_bytes: int | None = None) -> bytes:
        """The file's bytes; Invalid (naming it) when the zip cannot give them."""
        info = self.by_path[path]
        limit = self.max_file_bytes if max_bytes is None else max_bytes
        if info.file_size > limit:
            raise TooLarge(f"{path} is over {limit} bytes")
        try:
            return self.zip.read(info)
        except UNREADABLE_ENTRY as exc:
            raise Invalid(f"{path} cannot be read from the zip ({exc.__class__.__name__}: {exc}); "
                          "zip it again without a password, with Deflate or no compression") from exc

    def find(self, file_name: str) -> str | None:
        """The zip path a name refers to, or None."""
        info = self.by_path.get(norm_path(file_name)) or self.by_base.get(posixpath.basename(norm_path(file_name)))
        return norm_path(info.filename) if info is not None else None

    def __call__(self, file_name: str) -> bytes:
        path = self.find(file_name)
        if path is None:
            base = posixpath.basename(norm_path(file_name))
            if self.base_counts[base] > 1:
                raise FileNotFoundError(f"{file_name} is not a path in the zip, and {self.base_counts[base]} files "
                                        f"in it are named {base}: name the image by its path in the zip")
            raise FileNotFoundError(f"{file_name} is not in the zip")
        return self.read_named(path)


class FolderSource:
    """Image files under one folder of the server; no name may leave it."""

    def __init__(self, folder: Path, max_file_bytes: int):
        self.folder = folder
        self.max_file_bytes = max_file_bytes

    def __call__(self, file_name: str) -> bytes:
        if "\0" in file_name:
            raise FileNotFoundError(f"{file_name!r} has a NUL character, which no file name can")
        path = (self.folder / norm_path(file_name)).resolve()
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
    if "\0" in folder:
        raise Invalid(f"folder {folder!r} has a NUL character, which no folder name can")
    root = Path(import_root).resolve()
    path = (root / folder).resolve()
    if not path.is_relative_to(root):
        raise Invalid(f"folder {folder!r} is outside the import root")
    if not path.is_dir():
        raise NotFound(f"folder {folder!r} does not exist under the import root")
    return path


def one_file(source: ZipSource, annotations: bytes | None, suffixes: tuple[str, ...], what: str) -> bytes:
    """The annotations sent beside the zip, else the zip's one file with one of `suffixes`."""
    if annotations is not None:
        return annotations
    found = source.with_suffix(*suffixes)
    if len(found) != 1:
        raise Invalid(f"send the {what} in the 'annotations' form field, or put exactly one "
                      f"{'/'.join(suffixes)} file in the zip (found {len(found)})")
    return source.read_named(found[0], max_bytes=source.max_bytes)  # annotations outgrow any image


# --- the import -------------------------------------------------------------------------------

def _read_first(read_file: Callable[[str], bytes], names: Iterable[str]) -> bytes:
    first_error = None
    for name in names:
        try:
            return read_file(name)
        except FileNotFoundError as exc:
            first_error = first_error or exc
    raise first_error or FileNotFoundError("the image has no file name")


def import_parsed(store: Store, limits: dict, model_ref, dataset_id: int, parsed: Parsed,
                  read_file: Callable[[str], bytes], add_labels: bool = True) -> dict:
    """Check every picture, then write what is usable in one transaction; report the rest."""
    report = ImportReport(skipped=list(parsed.skipped))
    # Read and check every image before opening the transaction: slow work outside, writes inside.
    accepted = []
    for pic in parsed.pictures:
        if len(pic.boxes) > MAX_BOXES_PER_IMAGE:  # said before the picture is read and decoded
            report.skip(pic.item, too_many_boxes(len(pic.boxes)))
            continue
        try:
            checked = check_image(_read_first(read_file, pic.names), limits, display_name(pic.names[0]),
                                  keep_pixels=False)
        except FileNotFoundError as exc:
            report.skip(pic.item, str(exc))
            continue
        except OdError as exc:
            report.skip(pic.item, exc.detail)
            continue
        if pic.width and pic.height and (pic.width, pic.height) != (checked.width, checked.height):
            turned = (pic.width, pic.height) == (checked.height, checked.width)
            report.skip(pic.item, f"declared {pic.width}x{pic.height} but the file is {checked.width}x{checked.height}"
                        + (" as shown: its EXIF orientation turns the stored pixels, and boxes drawn on them would "
                           "land turned; export the pictures upright (EXIF applied) with their boxes" if turned else ""))
            continue
        accepted.append((pic, checked))  # bytes, not pixels (keep_pixels=False), of many images

    with store.transaction() as s:
        model = get_model(s, model_ref)
        ds = get_dataset(s, model, dataset_id)
        labels = labels_by_key(model.labels)  # a category "Fork" boxes the label "fork"
        spelled: dict[str, str] = {}  # a new label's key -> its first spelling in the file
        for name in parsed.labels:
            if label_key(name) not in labels:
                spelled.setdefault(label_key(name), name)
        unknown = list(spelled.values())
        if unknown and not add_labels:
            raise Invalid(f"categories {sorted(unknown)} are not labels of model {model.name!r}; "
                          "add them or import with addLabels=true")
        for name in unknown:
            label = Label(name=check_name(name, "category name"))
            model.labels.append(label)
            labels[label_key(name)] = label
            report.labels_added.append(name)
        s.flush()

        for pic, checked in accepted:
            sha = store.blobs.put(checked.data)
            image = s.scalar(select(Image).where(Image.dataset_id == ds.id, Image.sha256 == sha))
            if image is not None and image.deleted_at is None:
                report.duplicates += 1
                report.skip(pic.item, f"already in the dataset as image {image.id}")
                continue
            if image is not None:  # deleted before: it comes back, with the file's boxes only
                image.deleted_at = None
                image.regions.clear()
            else:
                image = Image(dataset_id=ds.id, sha256=sha, name=display_name(pic.names[0]),
                              format=checked.format, width=checked.width, height=checked.height,
                              size_bytes=len(checked.data))
                s.add(image)
            for box in pic.boxes:
                region = _region(box, checked.width, checked.height, report)
                if region is None:
                    continue
                label = labels[label_key(box.label)]
                image.regions.append(Region(label_id=label.id, label=label, source="import", approved=True, **region))
                report.boxes_per_label[label.name] += 1
            report.images += 1
        s.flush()
    return report.view()


def _region(box: Box, width: int, height: int, report: ImportReport) -> dict | None:
    """The box as stored fractions, or None (skipped, with why) when it cannot be used."""
    x, y, w, h = box.x, box.y, box.w, box.h
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        report.skip(box.item, "box coordinates must be finite numbers")
        return None
    if box.fraction:
        x, y, w, h = fraction_to_pixels(x, y, w, h, width, height)
    if w <= 0 or h <= 0:
        report.skip(box.item, f"box has no area (width {w:g}, height {h:g} px)")
        return None
    # Allow a pixel of rounding at the border, then clip.
    if x < -1 or y < -1 or x + w > width + 1 or y + h > height + 1:
        report.skip(box.item, f"box [{x:g}, {y:g}, {w:g}, {h:g}] px is outside its {width}x{height} image")
        return None
    return pixels_to_fraction(x, y, x + w, y + h, width, height)


# --- export -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportBox:
    label_id: int
    label: str
    x: float  # pixels, top-left corner and size
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class ExportImage:
    id: int
    file_name: str  # "<id>.<ext>": unique in the export whatever the users named their files
    width: int
    height: int
    sha256: str
    boxes: tuple[ExportBox, ...]


@dataclass(frozen=True)
class ExportSet:
    model_name: str
    dataset_name: str
    labels: tuple[tuple[int, str], ...]  # (id, name) in the model's order
    images: tuple[ExportImage, ...]


def collect(store: Store, model_ref, dataset_id: int) -> ExportSet:
    """The dataset's images and approved boxes (pixels), read in one transaction."""
    with store.transaction() as s:
        model = get_model(s, model_ref)
        ds = get_dataset(s, model, dataset_id)
        rows = s.scalars(select(Image).where(Image.dataset_id == ds.id, Image.deleted_at.is_(None))
                         .order_by(Image.id)).all()
        images = tuple(
            ExportImage(img.id, f"{img.id}.{img.format.lower().replace('jpeg', 'jpg')}", img.width, img.height,
                        img.sha256, tuple(ExportBox(r.label_id, r.label.name,
                                                    *fraction_to_pixels(r.left, r.top, r.width, r.height,
                                                                        img.width, img.height))
                                          for r in img.regions if r.approved))
            for img in rows)
        return ExportSet(model.name, ds.name, tuple((t.id, t.name) for t in model.labels), images)


def zip_archive(store: Store, files: dict[str, str | bytes], images: dict[str, str]) -> bytes:
    """A zip of text files plus image blobs (`images`: path in the zip -> sha256)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
        for name, sha in images.items():
            zf.writestr(zipfile.ZipInfo(name), store.blobs.get(sha), compress_type=zipfile.ZIP_STORED)
    return buf.getvalue()
