"""Label Studio's JSON export: a list of tasks, each with `data` (the image's path or URL) and
`annotations[].result[]`, where a rectangle is `{"type": "rectanglelabels", "value": {x, y, width,
height (percent of the image), rotation, rectanglelabels: [name]}, original_width, original_height}`.
The JSON-MIN export (`{"image": ..., "label": [...]}` per task) is read too.

Images are found by file name: Label Studio serves uploads as `/data/upload/<project>/<8 hex>-<name>`
and local files as `/data/local-files/?d=<path>`; both the stored name and the name before
Label Studio's prefix are looked for in the zip.
"""
from __future__ import annotations

import posixpath
import re
from urllib.parse import parse_qs, unquote

from ...errors import Invalid
from .core import Box, Parsed, Picture, ZipSource, is_image_name, load_json, one_file, url_parts

UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-(.+)$")


def _image_ref(data) -> str | None:
    """The image path of a task: data.image, else the first value that names an image file."""
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("image"), str) and data["image"]:
        return data["image"]
    return next((v for v in data.values() if isinstance(v, str) and _names_an_image(v)), None)


def _names_an_image(value: str) -> bool:
    parts = url_parts(value)
    return is_image_name(value) or (parts is not None and is_image_name(parts.path))


def _names(ref: str) -> tuple[str, ...]:
    parts = url_parts(ref)
    if parts is None:  # not a URL after all: its file name may still be found
        base = posixpath.basename(ref.replace("\\", "/"))
        return (base,) if base else ()
    local = parse_qs(parts.query).get("d")  # /data/local-files/?d=folder/a.jpg
    path = unquote(local[0] if local else parts.path)
    base = posixpath.basename(path.replace("\\", "/"))
    names = [path.lstrip("/"), base]
    if (m := UPLOAD_PREFIX.match(base)) is not None:
        names.append(m.group(1))
    return tuple(dict.fromkeys(n for n in names if n))


def _results(task: dict, item: str, parsed: Parsed) -> list:
    if "annotations" not in task and "label" in task:  # JSON-MIN: the boxes are the task's own
        if not isinstance(task["label"] or [], list):
            raise Invalid(f"{item}: 'label' must be a list")
        return [{"type": "rectanglelabels", "value": r} if isinstance(r, dict) else r for r in task["label"] or []]
    if not isinstance(task.get("annotations") or [], list):
        raise Invalid(f"{item}: 'annotations' must be a list")
    kept = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if not kept:
        return []
    for extra in kept[1:]:
        parsed.skip(f"{item} annotation {extra.get('id', '?')}",
                    "one annotation per image is imported (the first that was not cancelled)")
    result = kept[0].get("result") or []
    if not isinstance(result, list):
        raise Invalid(f"{item}: 'result' must be a list")
    return result


def parse(source: ZipSource, annotations: bytes | None) -> Parsed:
    raw = one_file(source, annotations, (".json",), "Label Studio JSON export")
    tasks = load_json(raw, "the Label Studio export")
    if not isinstance(tasks, list):
        raise Invalid("the Label Studio export must be a JSON list of tasks (export as JSON or JSON-MIN)")
    parsed = Parsed(labels=[], pictures=[])
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise Invalid(f"task {i + 1} of the Label Studio export is not an object")
        ref = _image_ref(task.get("data")) if "data" in task else task.get("image")
        item = f"task {task.get('id', i + 1)}"
        if not isinstance(ref, str) or not ref:
            parsed.skip(item, "the task names no image")
            continue
        names = _names(ref)
        if not names:
            parsed.skip(item, f"the task's image {ref!r} has no file name")
            continue
        pic = Picture(f"{item} ({names[-1]})", names)
        for k, result in enumerate(_results(task, item, parsed), start=1):
            _add_box(result, f"{item} box {k}", pic, parsed)
        parsed.pictures.append(pic)
    return parsed


def _add_box(result, item: str, pic: Picture, parsed: Parsed) -> None:
    if not isinstance(result, dict) or not isinstance(result.get("value"), dict):
        parsed.skip(item, "not a Label Studio result")
        return
    value = result["value"]
    kind = result.get("type") or ("rectanglelabels" if "rectanglelabels" in value else "unknown")
    if kind != "rectanglelabels":
        parsed.skip(item, f"only rectangle labels are imported (this is {kind})")
        return
    if value.get("rotation"):
        parsed.skip(item, f"the rectangle is rotated by {value['rotation']} degrees; only upright boxes train")
        return
    labels = value.get("rectanglelabels")
    if not isinstance(labels, list) or not labels or not all(isinstance(n, str) and n.strip() for n in labels):
        parsed.skip(item, "the rectangle has no label")
        return
    try:
        x, y, w, h = (float(value[k]) / 100 for k in ("x", "y", "width", "height"))
    except (KeyError, TypeError, ValueError, OverflowError):
        parsed.skip(item, "x, y, width and height must be numbers (percent of the image)")
        return
    for name in labels:  # a rectangle with two labels is one box per label
        name = name.strip()
        if name not in parsed.labels:
            parsed.labels.append(name)
        pic.boxes.append(Box(item, name, x, y, w, h, fraction=True))
