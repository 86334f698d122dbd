"""Pascal VOC: one XML per image (`<filename>`, `<size>`, `<object><name>` + `<bndbox>`).

VOC corners are 1-based pixel indexes, inclusive: the box of `xmin..xmax` covers pixels
`xmin-1 .. xmax` in 0-based coordinates (what detectron2's VOC loader does too). XML is read with
defusedxml, so an entity bomb in an upload is refused instead of expanded.
"""
from __future__ import annotations

import posixpath
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from ...errors import Invalid
from .core import IMAGE_SUFFIXES, Box, ExportSet, Parsed, Picture, ZipSource, stem


def _xml_files(source: ZipSource, annotations: bytes | None) -> list[tuple[str, bytes]]:
    """(name, bytes) of every XML: from the annotations field (one XML or a zip of them), else the zip."""
    if annotations is not None:
        if annotations[:2] == b"PK":  # held to the images zip's limits, in total and per file
            xml_zip = ZipSource(annotations, source.max_bytes, source.max_file_bytes, what="the annotations file")
            return [(p, xml_zip.read_named(p)) for p in xml_zip.with_suffix(".xml")]
        return [("annotations.xml", annotations)]
    return [(p, source.read_named(p)) for p in source.with_suffix(".xml")]


def _number(obj: Element, tag: str) -> float:
    text = obj.findtext(f"bndbox/{tag}")
    if text is None:
        raise ValueError(f"no <{tag}>")
    return float(text.strip())


def parse(source: ZipSource, annotations: bytes | None) -> Parsed:
    xmls = _xml_files(source, annotations)
    if not xmls:
        raise Invalid("no Pascal VOC .xml files: put them in the zip (e.g. Annotations/*.xml) "
                      "or send them as a zip in the 'annotations' form field")
    images_by_stem: dict[str, list[str]] = {}
    for path in source.with_suffix(*IMAGE_SUFFIXES):
        images_by_stem.setdefault(stem(path), []).append(path)
    parsed = Parsed(labels=[], pictures=[])
    for name, data in xmls:
        try:
            root = fromstring(data)
        except (ParseError, DefusedXmlException, LookupError, ValueError) as exc:  # LookupError: an unknown encoding
            parsed.skip(name, f"not readable XML ({exc.__class__.__name__}: {exc})")
            continue
        if root.tag != "annotation":
            parsed.skip(name, f"not a Pascal VOC annotation (the root element is <{root.tag}>)")
            continue
        file_name = (root.findtext("filename") or "").strip()
        # The file the XML names, else the file of its <path>, else an image with the XML's own stem.
        names = [n for n in (file_name, posixpath.basename((root.findtext("path") or "").strip().replace("\\", "/")))
                 if n]
        names += images_by_stem.get(stem(name), [])
        if not names:
            parsed.skip(name, "names no image (<filename> is empty) and no image in the zip has its name")
            continue
        try:
            width, height = int(root.findtext("size/width") or 0), int(root.findtext("size/height") or 0)
        except ValueError:
            width = height = 0  # an unreadable <size> declares nothing
        pic = Picture(f"{name} ({names[0]})", tuple(dict.fromkeys(names)), [], width or None, height or None)
        for k, obj in enumerate(root.iter("object"), start=1):
            item = f"{name} object {k}"
            label = (obj.findtext("name") or "").strip()
            if not label:
                parsed.skip(item, "the object has no <name>")
                continue
            try:
                x0, y0, x1, y1 = (_number(obj, t) for t in ("xmin", "ymin", "xmax", "ymax"))
            except ValueError as exc:
                parsed.skip(item, f"<bndbox> needs numeric xmin, ymin, xmax, ymax ({exc})")
                continue
            if x1 <= x0 or y1 <= y0:  # inclusive corners make this one pixel: an annotation slip, not an object
                parsed.skip(item, f"box has no area (xmin {x0:g}, xmax {x1:g}, ymin {y0:g}, ymax {y1:g})")
                continue
            if label not in parsed.labels:
                parsed.labels.append(label)
            pic.boxes.append(Box(item, label, x0 - 1, y0 - 1, x1 - x0 + 1, y1 - y0 + 1))
        parsed.pictures.append(pic)
    return parsed


def _xml(export: ExportSet, img) -> str:
    from xml.sax.saxutils import escape
    objects = "".join(
        f"  <object>\n    <name>{escape(b.label)}</name>\n    <pose>Unspecified</pose>\n    <truncated>0</truncated>\n"
        f"    <difficult>0</difficult>\n    <bndbox>\n      <xmin>{round(b.x) + 1}</xmin>\n"
        f"      <ymin>{round(b.y) + 1}</ymin>\n      <xmax>{round(b.x + b.w)}</xmax>\n"
        f"      <ymax>{round(b.y + b.h)}</ymax>\n    </bndbox>\n  </object>\n"
        for b in img.boxes)
    return (f"<annotation>\n  <folder>JPEGImages</folder>\n  <filename>{img.file_name}</filename>\n"
            f"  <source><database>{escape(export.model_name)}</database></source>\n"
            f"  <size>\n    <width>{img.width}</width>\n    <height>{img.height}</height>\n    <depth>3</depth>\n"
            f"  </size>\n  <segmented>0</segmented>\n{objects}</annotation>\n")


def write(export: ExportSet) -> tuple[dict, dict]:
    """(text files, images) of the zip: Annotations/<id>.xml beside JPEGImages/<id>.<ext>."""
    return ({f"Annotations/{stem(img.file_name)}.xml": _xml(export, img) for img in export.images},
            {f"JPEGImages/{img.file_name}": img.sha256 for img in export.images})
