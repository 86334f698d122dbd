"""Pascal VOC, YOLO, Label Studio and Custom Vision import; YOLO and VOC export; each round-trips on
pictures the test draws, with the COCO import's file matching and skip-with-reason rules."""
from __future__ import annotations

import io
import json
import zipfile

import pytest

from tests.conftest import b64, png_bytes, store_snapshot
from tests.test_coco import zip_of

# (width, height, boxes as (label, left, top, width, height) fractions); one small picture, one unboxed
PICTURES = [
    (320, 256, [("apple", 0.25, 0.25, 0.25, 0.25), ("banana", 0.5, 0.1, 0.4, 0.3)]),
    (64, 48, [("banana", 0.125, 0.125, 0.5, 0.5)]),
    (200, 300, [("apple", 0.0, 0.0, 1.0, 0.5)]),
    (240, 160, []),
]


def drawn(i: int) -> bytes:
    w, h, _ = PICTURES[i]
    return png_bytes(w, h, seed=i)


def seeded_model(api, name="source"):
    m = api.model(name, ["apple", "banana"])
    images = [{"name": f"pic-{i}.png", "content": b64(drawn(i)),
               "regions": [{"labelName": lab, "left": l, "top": t, "width": w, "height": h} for lab, l, t, w, h in boxes]}
              for i, (_, _, boxes) in enumerate(PICTURES)]
    r = api.post(f"/models/{m['id']}/datasets/{m['datasetId']}/images", json={"images": images})
    assert r.status_code == 201 and r.json()["created"] == len(PICTURES), r.text
    return m


def boxes_by_picture(api, m) -> dict:
    """sha256 -> sorted boxes (label, left, top, width, height) of a model's training dataset."""
    items = api.get(f"/models/{m['id']}/datasets/{m['datasetId']}/images", params={"pageSize": 100}).json()["items"]
    return {i["sha256"]: sorted((r["labelName"], r["left"], r["top"], r["width"], r["height"])
                                for r in i["regions"]) for i in items}


def expected_boxes() -> dict:
    import hashlib
    return {hashlib.sha256(drawn(i)).hexdigest(): sorted(boxes) for i, (_, _, boxes) in enumerate(PICTURES)}


def assert_same_boxes(got: dict, want: dict, pixels: float = 0.0):
    assert got.keys() == want.keys()
    sizes = {k: (PICTURES[i][0], PICTURES[i][1]) for i, k in enumerate(expected_boxes())}
    for sha, boxes in want.items():
        assert len(got[sha]) == len(boxes), (got[sha], boxes)
        w, h = sizes[sha]
        for (gl, *gb), (wl, *wb) in zip(got[sha], boxes):
            assert gl == wl
            tol = [pixels / w + 1e-6, pixels / h + 1e-6] * 2
            assert all(abs(a - b) <= t for a, b, t in zip(gb, wb, tol)), (gb, wb)


def post_import(api, m, fmt, archive: bytes, annotations: tuple | None = None, **form):
    files = {"images": ("set.zip", archive, "application/zip")}
    if annotations is not None:
        files["annotations"] = annotations
    return api.post(f"/models/{m['id']}/datasets/{m['datasetId']}/import/{fmt}", files=files,
                    data={k: str(v).lower() for k, v in form.items()})


def export(api, m, fmt) -> bytes:
    r = api.get(f"/models/{m['id']}/datasets/{m['datasetId']}/export/{fmt}",
                params={"includeImages": True} if fmt == "coco" else None)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip", r.text
    assert f"dataset-{m['datasetId']}-{fmt}.zip" in r.headers["content-disposition"]
    return r.content


@pytest.mark.parametrize("fmt, pixels", [("yolo", 0.0), ("voc", 1.0), ("coco", 0.01)])
def test_export_then_import_round_trips(api, fmt, pixels):
    src = seeded_model(api)
    assert_same_boxes(boxes_by_picture(api, src), expected_boxes())
    data = export(api, src, fmt)
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = set(archive.namelist())
    if fmt == "yolo":
        assert {"classes.txt", "data.yaml", "images/1.png", "labels/1.txt", "labels/4.txt"} <= names
        assert archive.read("classes.txt") == b"apple\nbanana\n"
        assert archive.read("labels/1.txt").decode().splitlines() == [
            "0 0.375000 0.375000 0.250000 0.250000", "1 0.700000 0.250000 0.400000 0.300000"]
        assert archive.read("labels/4.txt") == b""  # a picture with nothing to find
    elif fmt == "voc":
        assert {"JPEGImages/2.png", "Annotations/2.xml"} <= names
        xml = archive.read("Annotations/2.xml").decode()
        assert "<name>banana</name>" in xml and "<xmin>9</xmin>" in xml and "<xmax>40</xmax>" in xml
    dst = api.model(f"copy-{fmt}", [])
    r = post_import(api, dst, fmt, data)
    assert r.status_code == 201, r.text
    report = r.json()
    assert report["images"] == 4 and report["boxes"] == 4 and report["skipped"] == []
    assert report["labelsAdded"] == ["apple", "banana"] and report["boxesPerLabel"] == {"apple": 2, "banana": 2}
    assert_same_boxes(boxes_by_picture(api, dst), expected_boxes(), pixels)


def labelstudio_export():
    """Tasks as Label Studio exports them (upload prefix, percent boxes), plus things to skip."""
    tasks = []
    for i, (w, h, boxes) in enumerate(PICTURES):
        result = [{"id": f"r{i}{k}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                   "original_width": w, "original_height": h, "image_rotation": 0,
                   "value": {"x": l * 100, "y": t * 100, "width": bw * 100, "height": bh * 100, "rotation": 0,
                             "rectanglelabels": [lab]}} for k, (lab, l, t, bw, bh) in enumerate(boxes)]
        tasks.append({"id": 10 + i, "data": {"image": f"/data/upload/7/0a1b2c3{i}-pic-{i}.png"},
                      "annotations": [{"id": 100 + i, "was_cancelled": False, "result": result}]})
    tasks[0]["annotations"][0]["result"].append(
        {"type": "polygonlabels", "value": {"points": [[1, 1], [5, 5], [1, 5]], "polygonlabels": ["apple"]}})
    tasks[1]["annotations"][0]["result"].append(
        {"type": "rectanglelabels", "value": {"x": 10, "y": 10, "width": 20, "height": 20, "rotation": 30,
                                              "rectanglelabels": ["apple"]}})
    tasks[2]["annotations"].insert(0, {"id": 90, "was_cancelled": True, "result": []})
    tasks[2]["annotations"].append({"id": 91, "result": []})
    tasks.append({"id": 99, "data": {"image": "/data/upload/7/deadbeef-missing.png"}, "annotations": []})
    return tasks


def test_label_studio_export_imports_by_file_name(api):
    m = api.model("ls", ["apple"])
    files = {f"photos/pic-{i}.png": drawn(i) for i in range(len(PICTURES))}
    r = post_import(api, m, "labelstudio", zip_of(files),
                    ("export.json", json.dumps(labelstudio_export()).encode(), "application/json"))
    assert r.status_code == 201, r.text
    rep = r.json()
    assert rep["images"] == 4 and rep["labelsAdded"] == ["banana"]
    reasons = {s["item"]: s["reason"] for s in rep["skipped"]}
    assert "only rectangle labels" in reasons["task 10 box 3"]
    assert "rotated by 30 degrees" in reasons["task 11 box 2"]
    assert "one annotation per image" in reasons["task 12 annotation 91"]
    assert "not in the zip" in reasons["task 99 (missing.png)"]
    assert_same_boxes(boxes_by_picture(api, m), expected_boxes(), 0.0)


def test_label_studio_json_min_inside_the_zip(api):
    m = api.model("lsmin", [])
    tasks = [{"image": f"/data/local-files/?d=shots/pic-{i}.png",
              "label": [{"x": l * 100, "y": t * 100, "width": bw * 100, "height": bh * 100, "rotation": 0,
                         "rectanglelabels": [lab], "original_width": w, "original_height": h}
                        for lab, l, t, bw, bh in boxes]}
             for i, (w, h, boxes) in enumerate(PICTURES)]
    files = {f"shots/pic-{i}.png": drawn(i) for i in range(len(PICTURES))}
    r = post_import(api, m, "labelstudio", zip_of(files, {"min.json": json.dumps(tasks)}))
    assert r.status_code == 201 and r.json()["skipped"] == [], r.text
    assert_same_boxes(boxes_by_picture(api, m), expected_boxes(), 0.0)


def test_custom_vision_regions_by_tag_name_or_id(api):
    m = api.model("cv", ["apple", "banana"])
    tags = [{"id": "t-apple", "name": "apple"}, {"id": "t-banana", "name": "banana"}]
    images = []
    for i, (w, h, boxes) in enumerate(PICTURES):
        regions = [{"regionId": f"g{i}{k}", "left": l, "top": t, "width": bw, "height": bh,
                    **({"tagName": lab} if k == 0 else {"tagId": f"t-{lab}"})}
                   for k, (lab, l, t, bw, bh) in enumerate(boxes)]
        images.append({"id": f"img-{i}", "width": w, "height": h, "regions": regions,
                       "originalImageUri": f"https://example.invalid/i-proj/o-img-{i}?sv=1"})
    images[0]["regions"].append({"regionId": "bad", "tagId": "t-unknown", "left": 0, "top": 0, "width": 1, "height": 1})
    files = {f"img-{i}.png": drawn(i) for i in range(len(PICTURES))}
    r = post_import(api, m, "customvision", zip_of(files),
                    ("cv.json", json.dumps({"images": images, "tags": tags}).encode(), "application/json"))
    assert r.status_code == 201, r.text
    assert r.json()["skipped"] == [{"item": "image img-0 region bad",
                                    "reason": "tag 't-unknown' has no name (give tagName, or a 'tags' list)"}]
    assert_same_boxes(boxes_by_picture(api, m), expected_boxes(), 0.0)


def test_unusable_items_are_skipped_with_reasons(api):
    m = api.model("skips", ["apple"])
    yolo = zip_of({"images/a.png": drawn(0), "labels/a.txt": b"0 0.5 0.5 0.2 0.2\n0 0.5 0.5\n7 0.5 0.5 0.1 0.1\n"
                   b"0 1.5 0.5 0.2 0.2\n", "labels/ghost.txt": b"0 0.5 0.5 0.1 0.1\n", "obj.names": b"apple\n",
                   "images/broken.png": b"not a picture"})
    rep = post_import(api, m, "yolo", yolo).json()
    reasons = {s["item"]: s["reason"] for s in rep["skipped"]}
    assert "5 numbers" in reasons["labels/a.txt line 2"]
    assert "class 7 is not in the class names" in reasons["labels/a.txt line 3"]
    assert "outside its 320x256 image" in reasons["labels/a.txt line 4"]
    assert "no image in the zip" in reasons["labels/ghost.txt"]
    assert "not a recognised image" in reasons["images/broken.png"]
    assert rep["images"] == 1 and rep["boxes"] == 1

    voc = zip_of({"JPEGImages/b.png": drawn(1), "Annotations/b.xml":
                  b"<annotation><filename>b.png</filename><size><width>64</width><height>48</height></size>"
                  b"<object><name>apple</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>32</xmax><ymax>24</ymax>"
                  b"</bndbox></object><object><name>apple</name><bndbox><xmin>x</xmin></bndbox></object></annotation>",
                  "Annotations/c.xml": b"<annotation><filename>c.png</filename><size><width>10</width>"
                  b"<height>10</height></size></annotation>", "JPEGImages/c.png": drawn(2),
                  "Annotations/bad.xml": b"<annotation><unclosed></annotation>",
                  "Annotations/other.xml": b"<svg/>"})
    rep = post_import(api, m, "voc", voc).json()
    reasons = {s["item"]: s["reason"] for s in rep["skipped"]}
    assert "numeric xmin" in reasons["Annotations/b.xml object 2"]
    assert "declared 10x10 but the file is 200x300" in reasons["Annotations/c.xml (c.png)"]
    assert "not readable XML" in reasons["Annotations/bad.xml"]
    assert "not a Pascal VOC annotation" in reasons["Annotations/other.xml"]
    assert rep["images"] == 1 and rep["boxes"] == 1
    box = boxes_by_picture(api, m)[__import__("hashlib").sha256(drawn(1)).hexdigest()][0]
    assert box == ("apple", 0.0, 0.0, 0.5, 0.5)  # 1-based inclusive corners


def test_xml_entity_bombs_are_refused(api):
    m = api.model("bomb", ["apple"])
    bomb = (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxxxx"><!ENTITY y "&x;&x;&x;&x;&x;&x;">]>'
            b"<annotation><filename>&y;</filename></annotation>")
    rep = post_import(api, m, "voc", zip_of({"a.png": drawn(0), "a.xml": bomb})).json()
    assert rep["images"] == 0 and "not readable XML" in rep["skipped"][0]["reason"]


@pytest.mark.parametrize("fmt, files, annotations, needle", [
    ("yolo", {"a.png": b"x", "a.txt": b"0 0.5 0.5 0.1 0.1"}, None, "no class names"),
    ("yolo", {"a/classes.txt": b"x", "b/classes.txt": b"y"}, None, "2 classes.txt files"),
    ("voc", {"a.png": b"x"}, None, "no Pascal VOC .xml files"),
    ("labelstudio", {}, b'{"not": "a list"}', "must be a JSON list of tasks"),
    ("labelstudio", {"a.json": b"[]", "b.json": b"[]"}, None, "exactly one .json file in the zip (found 2)"),
    ("labelstudio", {}, b'[{"image": "a.png", "label": 7}]', "'label' must be a list"),
    ("customvision", {}, b'[{"id": "a", "regions": {"left": 0}}]', "'regions' must be a list"),
    ("customvision", {}, b"{oops", "not valid JSON"),
    ("customvision", {}, b'{"images": 3}', "must be a list of images"),
])
def test_files_that_are_not_the_format_change_nothing(api, fmt, files, annotations, needle):
    m = api.model("strict", ["apple"])
    before = store_snapshot(api.app)
    r = post_import(api, m, fmt, zip_of(files),
                    ("a", annotations, "application/octet-stream") if annotations is not None else None)
    assert r.status_code == 400 and needle in r.json()["detail"], r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert store_snapshot(api.app) == before


def test_unknown_labels_without_add_labels_are_refused(api):
    m = api.model("closed", ["apple"])
    archive = zip_of({"a.png": drawn(0), "a.txt": b"1 0.5 0.5 0.2 0.2\n", "classes.txt": b"apple\nbanana\n"})
    before = store_snapshot(api.app)
    r = post_import(api, m, "yolo", archive, addLabels=False)
    assert r.status_code == 400 and "['banana']" in r.json()["detail"]
    assert store_snapshot(api.app) == before
