"""Custom Vision's tagged images as its training API returns them (`GetTaggedImages`): a JSON list
of images (or `{"images": [...], "tags": [...]}`), each with `regions[]` of `tagName` (or a
`tagId` the `tags` list names) and `left, top, width, height` as fractions of the image.

Custom Vision stores images by id, so an image is looked for by its `fileName`/`name` when the
JSON has one, then by the file name of its `originalImageUri`, then as `<id>.<ext>`.
"""
from __future__ import annotations

import posixpath
from urllib.parse import unquote

from ...errors import Invalid
from .core import IMAGE_SUFFIXES, Box, Parsed, Picture, ZipSource, load_json, one_file, url_parts


def _names(img: dict) -> tuple[str, ...]:
    names = [img.get(k) for k in ("fileName", "name")]
    uri = img.get("originalImageUri")
    if isinstance(uri, str) and uri:
        parts = url_parts(uri)  # None: not a URL after all, but its file name may still be found
        names.append(posixpath.basename(uri if parts is None else unquote(parts.path)))
    image_id = img.get("id", img.get("imageId"))
    if image_id not in (None, ""):
        names += [f"{image_id}{suffix}" for suffix in IMAGE_SUFFIXES] + [str(image_id)]
    return tuple(dict.fromkeys(n for n in names if isinstance(n, str) and n))


def parse(source: ZipSource, annotations: bytes | None) -> Parsed:
    raw = one_file(source, annotations, (".json",), "Custom Vision images JSON")
    doc = load_json(raw, "the Custom Vision JSON")
    tags = {}
    if isinstance(doc, dict):
        if not isinstance(doc.get("tags") or [], list):
            raise Invalid("the Custom Vision JSON's 'tags' must be a list")
        tags = {t["id"]: t.get("name") for t in doc.get("tags") or []
                if isinstance(t, dict) and isinstance(t.get("id"), (str, int))}
        doc = doc.get("images")
    if not isinstance(doc, list):
        raise Invalid("the Custom Vision JSON must be a list of images, or an object with an 'images' list")
    parsed = Parsed(labels=[], pictures=[])
    for i, img in enumerate(doc):
        if not isinstance(img, dict):
            raise Invalid(f"image {i + 1} of the Custom Vision JSON is not an object")
        names = _names(img)
        item = f"image {img.get('id', i + 1)}"
        if not names:
            parsed.skip(item, "the image has no id, name or originalImageUri to find its file by")
            continue
        pic = Picture(f"{item} ({names[0]})", names)
        if not isinstance(img.get("regions") or [], list):
            raise Invalid(f"{item}: 'regions' must be a list")
        for k, region in enumerate(img.get("regions") or [], start=1):
            _add_box(region, f"{item} region {region.get('regionId', k) if isinstance(region, dict) else k}",
                     tags, pic, parsed)
        parsed.pictures.append(pic)
    return parsed


def _add_box(region, item: str, tags: dict, pic: Picture, parsed: Parsed) -> None:
    if not isinstance(region, dict):
        parsed.skip(item, "not a region object")
        return
    tag_id = region.get("tagId")
    name = region.get("tagName") or (tags.get(tag_id) if isinstance(tag_id, (str, int)) else None)
    if not isinstance(name, str) or not name.strip():
        parsed.skip(item, f"tag {region.get('tagId')!r} has no name (give tagName, or a 'tags' list)")
        return
    try:
        x, y, w, h = (float(region[k]) for k in ("left", "top", "width", "height"))
    except (KeyError, TypeError, ValueError, OverflowError):
        parsed.skip(item, "left, top, width and height must be numbers (fractions of the image)")
        return
    name = name.strip()
    if name not in parsed.labels:
        parsed.labels.append(name)
    pic.boxes.append(Box(item, name, x, y, w, h, fraction=True))
