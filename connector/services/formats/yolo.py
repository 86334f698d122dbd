"""YOLO (Darknet / Ultralytics): one `.txt` per image, a line `class cx cy w h` per box, all four
as fractions of the image, with the class names in `data.yaml` (`names`), `obj.names` or
`classes.txt`.

A label file sits beside its image (`a.jpg` + `a.txt`) or in the `labels/` folder that mirrors
`images/` (`images/train/a.jpg` + `labels/train/a.txt`). An image without a label file is a
picture with nothing to find, as YOLO trainers read it.
"""
from __future__ import annotations

import posixpath

import yaml

from ...errors import Invalid
from .core import IMAGE_SUFFIXES, Box, ExportSet, Parsed, Picture, ZipSource, stem

NAME_FILES = ("data.yaml", "data.yml", "obj.names", "classes.txt")  # first found wins, in this order


def _names_from(data: bytes, what: str) -> dict[int, str]:
    """Class number -> name, from a data.yaml (`names` as a list or {number: name}) or a
    one-name-a-line file. A mapping keeps its numbers: `{0: cat, 2: dog}` has no class 1."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid(f"{what} is not UTF-8 text") from exc
    try:
        doc = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        if what.lower().endswith((".yaml", ".yml")):
            raise Invalid(f"{what} is not valid YAML: {str(exc).splitlines()[0] if str(exc) else 'nested too deeply'}") from None
        doc = None  # obj.names, classes.txt: one name a line, whatever YAML makes of it
    if isinstance(doc, dict) and "names" in doc:
        names = doc["names"]
        if isinstance(names, list):
            names = dict(enumerate(names))
        if not isinstance(names, dict):
            raise Invalid(f"{what}: 'names' must be a list of class names or a mapping of class numbers to names")
        try:
            names = {int(k): n for k, n in names.items()}
        except (TypeError, ValueError):
            raise Invalid(f"{what}: the keys of 'names' must be class numbers") from None
        if not all(isinstance(n, (str, int)) and not isinstance(n, bool) for n in names.values()):
            raise Invalid(f"{what}: every class name in 'names' must be text")
        return {k: str(names[k]).strip() for k in sorted(names)}
    return dict(enumerate(line.strip() for line in text.splitlines() if line.strip()))


def _class_names(source: ZipSource, annotations: bytes | None) -> tuple[dict[int, str], str]:
    if annotations is not None:
        return _names_from(annotations, "the annotations file"), "the annotations file"
    for wanted in NAME_FILES:
        found = [p for p in source.paths if posixpath.basename(p).lower() == wanted]
        if len(found) > 1:
            raise Invalid(f"the zip has {len(found)} {wanted} files ({', '.join(found)}); keep one")
        if found:
            return _names_from(source.read_named(found[0]), found[0]), found[0]
    raise Invalid("no class names: put data.yaml, obj.names or classes.txt in the zip, "
                  "or send one in the 'annotations' form field")


def _label_file_of(image_path: str, texts: set[str]) -> str | None:
    folder, base = posixpath.split(image_path)
    candidates = [posixpath.join(folder, stem(base) + ".txt")]
    parts = folder.split("/")
    for i in range(len(parts) - 1, -1, -1):  # the nearest images/ folder mirrors a labels/ folder
        if parts[i] == "images":
            candidates.append(posixpath.join(*parts[:i], "labels", *parts[i + 1:], stem(base) + ".txt"))
            break
    return next((c for c in candidates if c in texts), None)


def parse(source: ZipSource, annotations: bytes | None) -> Parsed:
    names, names_file = _class_names(source, annotations)
    if not names:
        raise Invalid(f"{names_file} lists no class names")
    parsed = Parsed(labels=list(dict.fromkeys(names.values())), pictures=[])
    texts = {p for p in source.with_suffix(".txt") if posixpath.basename(p).lower() not in NAME_FILES}
    used = set()
    for image_path in source.with_suffix(*IMAGE_SUFFIXES):
        pic = Picture(image_path, (image_path,))
        label_file = _label_file_of(image_path, texts)
        if label_file is not None:
            used.add(label_file)
            _read_boxes(source.read_named(label_file), label_file, names, pic, parsed)
        parsed.pictures.append(pic)
    for orphan in sorted(texts - used):
        parsed.skip(orphan, "no image in the zip has this label file's name")
    return parsed


def _read_boxes(data: bytes, label_file: str, names: dict[int, str], pic: Picture, parsed: Parsed) -> None:
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        item = f"{label_file} line {number}"
        if len(fields) != 5:
            parsed.skip(item, f"expected 'class cx cy w h' (5 numbers), found {len(fields)} values "
                              "(segmentation polygons and scored predictions are not boxes to import)")
            continue
        try:
            index = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except (ValueError, OverflowError):
            parsed.skip(item, "expected an integer class and four numbers")
            continue
        if index not in names:
            parsed.skip(item, f"class {index} is not in the class names ({_numbers(names)})")
            continue
        pic.boxes.append(Box(item, names[index], cx - w / 2, cy - h / 2, w, h, fraction=True))


def _numbers(names: dict[int, str]) -> str:
    keys = sorted(names)
    return f"0..{keys[-1]}" if keys == list(range(len(keys))) else ", ".join(map(str, keys))


def write(export: ExportSet) -> tuple[dict, dict]:
    """(text files, images) of the zip: images/<id>.<ext>, labels/<id>.txt, classes.txt, data.yaml."""
    index = {label_id: i for i, (label_id, _) in enumerate(export.labels)}
    names = [name for _, name in export.labels]
    files = {"classes.txt": "".join(f"{n}\n" for n in names),
             "data.yaml": yaml.safe_dump({"path": ".", "train": "images", "val": "images",
                                          "nc": len(names), "names": names}, sort_keys=False)}
    for img in export.images:
        files[f"labels/{stem(img.file_name)}.txt"] = "".join(
            f"{index[b.label_id]} {(b.x + b.w / 2) / img.width:.6f} {(b.y + b.h / 2) / img.height:.6f} "
            f"{b.w / img.width:.6f} {b.h / img.height:.6f}\n" for b in img.boxes)
    return files, {f"images/{img.file_name}": img.sha256 for img in export.images}
