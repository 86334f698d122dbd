"""COCO import (zip and server folder), validation, all-or-nothing, report, and export."""
import io
import json
import zipfile

import pytest

from tests.conftest import png_bytes, store_snapshot


def coco_set(n=3, labels=("apple", "banana")):
    """n images of 320x256 with one box each, as COCO + the files."""
    cats = [{"id": 10 + i, "name": name} for i, name in enumerate(labels)]
    images, anns, files = [], [], {}
    for i in range(n):
        name = f"imgs/p{i}.png"
        files[name] = png_bytes(seed=i)
        images.append({"id": i + 1, "file_name": name, "width": 320, "height": 256})
        anns.append({"id": 100 + i, "image_id": i + 1, "category_id": cats[i % len(cats)]["id"],
                     "bbox": [80, 64, 80, 64], "area": 80 * 64, "iscrowd": 0})
    return {"images": images, "annotations": anns, "categories": cats}, files


def zip_of(files: dict, extra: dict | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in {**files, **(extra or {})}.items():
            zf.writestr(name, data)
    return buf.getvalue()


def import_url(m):
    return f"/models/{m['id']}/datasets/{m['datasetId']}/import/coco"


def post_import(api, m, coco, files, **form):
    sent = {"images": ("set.zip", zip_of(files), "application/zip"),
            "annotations": ("coco.json", json.dumps(coco).encode(), "application/json")}
    return api.post(import_url(m), files=sent, data={k: str(v).lower() for k, v in form.items()})


def test_zip_import_reports_counts_and_boxes(api):
    m = api.model("fruit", ["apple"])
    coco, files = coco_set(4)
    r = post_import(api, m, coco, files)
    assert r.status_code == 201, r.text
    rep = r.json()
    assert rep["images"] == 4 and rep["boxes"] == 4
    assert rep["boxesPerLabel"] == {"apple": 2, "banana": 2}
    assert rep["labelsAdded"] == ["banana"] and rep["skipped"] == []
    img = api.get(f"/models/{m['id']}/datasets/{m['datasetId']}/images").json()["items"][0]
    reg = img["regions"][0]
    assert (reg["left"], reg["top"], reg["width"], reg["height"]) == pytest.approx((0.25, 0.25, 0.25, 0.25))
    assert reg["source"] == "import" and img["name"] == "p0.png"


def test_annotations_inside_the_zip(api):
    m = api.model()
    coco, files = coco_set(2)
    data = zip_of(files, {"annotations/instances.json": json.dumps(coco)})
    r = api.post(import_url(m), files={"images": ("set.zip", data, "application/zip")})
    assert r.status_code == 201 and r.json()["images"] == 2


@pytest.mark.parametrize("mutate,needle", [
    (lambda c: c["annotations"][0].update(image_id=99), "refers to image 99"),
    (lambda c: c["annotations"][1].update(category_id=77), "refers to category 77"),
    (lambda c: c["images"].append(dict(c["images"][0])), "id 1 twice"),
    (lambda c: c.pop("categories"), "no 'categories' list"),
    (lambda c: c["annotations"][0].update(bbox=[1, 2, 3]), "bbox must be"),
])
def test_structural_errors_reject_everything(api, mutate, needle):
    m = api.model()
    coco, files = coco_set(3)
    mutate(coco)
    before = store_snapshot(api.app)
    r = post_import(api, m, coco, files)
    assert r.status_code == 400 and needle in r.json()["detail"], r.json()
    assert store_snapshot(api.app) == before


def test_unusable_items_are_skipped_with_reasons(api):
    m = api.model()
    coco, files = coco_set(5)
    coco["annotations"][0]["bbox"] = [-50, 10, 40, 40]          # outside the image
    coco["annotations"][1]["bbox"] = [10, 10, 0, 20]            # no area
    coco["annotations"][2]["iscrowd"] = 1
    files["imgs/p3.png"] = b"not an image"                       # corrupt file
    del files["imgs/p4.png"]                                     # missing file
    coco["images"].append({"id": 6, "file_name": "imgs/p0.png", "width": 999, "height": 256})
    r = post_import(api, m, coco, files)
    assert r.status_code == 201, r.text
    rep = r.json()
    reasons = {s["item"]: s["reason"] for s in rep["skipped"]}
    assert "outside" in reasons["annotation 100"]
    assert "no area" in reasons["annotation 101"]
    assert "crowd" in reasons["annotation 102"]
    assert "not a recognised image" in reasons["image 4 (imgs/p3.png)"]
    assert "not in the zip" in reasons["image 5 (imgs/p4.png)"]
    assert "declared 999x256" in reasons["image 6 (imgs/p0.png)"]
    assert rep["images"] == 3 and rep["boxes"] == 0


def test_categories_that_differ_only_in_case_box_one_label(api):
    m = api.model("fruit", ["apple"])
    coco, files = coco_set(4, labels=("Apple", "BANANA", "banana"))
    r = post_import(api, m, coco, files)
    assert r.status_code == 201, r.text
    rep = r.json()
    assert rep["labelsAdded"] == ["BANANA"] and rep["boxesPerLabel"] == {"apple": 2, "BANANA": 2}
    assert [t["name"] for t in api.get(f"/models/{m['id']}/labels").json()] == ["apple", "BANANA"]


def test_unknown_categories_without_add_labels(api):
    m = api.model("fruit", ["apple"])
    coco, files = coco_set(2)
    before = store_snapshot(api.app)
    r = post_import(api, m, coco, files, addLabels=False)
    assert r.status_code == 400 and "['banana']" in r.json()["detail"]
    assert store_snapshot(api.app) == before


def test_bad_zip_and_json(api):
    m = api.model()
    r = api.post(import_url(m), files={"images": ("x.zip", b"PK nope", "application/zip")})
    assert r.status_code == 400 and "not a valid zip" in r.json()["detail"]
    r = api.post(import_url(m), files={"images": ("x.zip", zip_of({}), "application/zip"),
                                        "annotations": ("c.json", b"{oops", "application/json")})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]


def test_reimport_skips_duplicates(api):
    m = api.model()
    coco, files = coco_set(2)
    post_import(api, m, coco, files)
    r = post_import(api, m, coco, files)
    assert r.json()["images"] == 0 and r.json()["duplicates"] == 2


def test_folder_import_stays_inside_the_import_root(make_app, tmp_path):
    from tests.conftest import Api
    root = tmp_path / "imports"
    (root / "fruit" / "imgs").mkdir(parents=True)
    coco, files = coco_set(3)
    for name, data in files.items():
        (root / "fruit" / name).write_bytes(data)
    coco["images"][2]["file_name"] = "../../secret.png"
    (tmp_path / "secret.png").write_bytes(png_bytes(seed=42))
    (root / "fruit" / "coco.json").write_text(json.dumps(coco))
    api = Api(make_app(storage={"import_root": str(root)}))
    m = api.model()
    url = f"/models/{m['id']}/datasets/{m['datasetId']}/import/coco-folder"
    r = api.post(url, json={"folder": "fruit"})
    assert r.status_code == 201, r.text
    assert r.json()["images"] == 2
    assert "outside the import folder" in r.json()["skipped"][0]["reason"]
    assert api.post(url, json={"folder": "../"}).status_code == 400
    assert api.post(url, json={"folder": "nope"}).status_code == 404
    assert api.post(url, json={"folder": "fruit", "annotations": "../../secret.png"}).status_code == 400
    # a NUL cannot be in a path: a 400 naming it, not the OS's error
    for body in ({"folder": "fruit\u0000"}, {"folder": "fruit", "annotations": "coco\u0000.json"}):
        r = api.post(url, json=body)
        assert r.status_code == 400 and "NUL" in r.json()["detail"], r.text


def test_folder_import_disabled_by_default(api):
    m = api.model()
    r = api.post(f"/models/{m['id']}/datasets/{m['datasetId']}/import/coco-folder", json={"folder": "x"})
    assert r.status_code == 400 and "disabled" in r.json()["detail"]


def test_export_round_trips_into_another_model(api):
    m = api.model("fruit", ["apple", "banana"])
    coco, files = coco_set(4)
    post_import(api, m, coco, files)
    base = f"/models/{m['id']}/datasets/{m['datasetId']}/export/coco"
    exported = api.get(base).json()
    assert len(exported["images"]) == 4 and len(exported["annotations"]) == 4
    assert exported["annotations"][0]["bbox"] == [80.0, 64.0, 80.0, 64.0]
    z = api.get(base, params={"includeImages": True})
    assert z.headers["content-type"] == "application/zip"
    other = api.model("copy", ["apple", "banana"])
    r = api.post(import_url(other), files={"images": ("c.zip", z.content, "application/zip")})
    assert r.status_code == 201 and r.json()["boxesPerLabel"] == {"apple": 2, "banana": 2}
