"""Input nobody means to send, and requests that race: each is a clear 4xx (or a clean outcome),
never a 5xx, and loses nothing stored. Found by probing a running server by hand."""
from __future__ import annotations

import hashlib
import io
import itertools
import json
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from connector.imaging import load_rgb
from connector.services.data_check import PAIR_ROWS, _repeated_boxes
from connector.services.images import MAX_BOXES_PER_IMAGE
from connector.services.schedules import cron_weekdays, parse_cron
from connector.spec import load_spec
from connector.app import create_app
from tests.conftest import Api, b64, make_config, png_bytes, queued_run, store_snapshot
from tests.test_coco import zip_of
from tests.test_formats import post_import


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """One app for the module (each test makes its own model): starting an app costs about 2 s."""
    app = create_app(make_config(tmp_path_factory.mktemp("hostile")))
    yield Api(app)
    app.odconnect.close()


_names = itertools.count(1)


def new_model(api, labels):
    return api.model(f"m{next(_names)}x", labels)


def _encrypted(archive: bytes) -> bytes:
    """The zip with its first entry flagged as password-protected (local and central headers)."""
    data = bytearray(archive)
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature) + flags_at
        data[at] |= 0x01
    return bytes(data)


def _bad_crc(archive: bytes, payload: bytes) -> bytes:
    """The zip with one byte of a stored entry's data changed, so that its CRC no longer holds."""
    at = archive.index(payload)
    return archive[:at] + bytes([archive[at] ^ 0xFF]) + archive[at + 1:]


def _stored_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


COCO_ONE = {"images": [{"id": 1, "file_name": "a.png", "width": 320, "height": 256}],
            "categories": [{"id": 1, "name": "apple"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 50]}]}


def test_zip_entries_that_cannot_be_read_are_named(api):
    m = new_model(api, ["apple"])
    picture = png_bytes(seed=1)
    # a picture whose bytes fail their CRC is skipped, with why; the rest imports
    archive = _bad_crc(_stored_zip({"coco.json": json.dumps(COCO_ONE).encode(), "a.png": picture}), picture)
    rep = post_import(api, m, "coco", archive)
    assert rep.status_code == 201, rep.text
    assert rep.json()["images"] == 0 and "a.png cannot be read from the zip" in rep.json()["skipped"][0]["reason"]
    # the annotations themselves behind a password: a 400 naming the file, nothing stored
    before = store_snapshot(api.app)
    r = post_import(api, m, "coco", _encrypted(_stored_zip({"coco.json": json.dumps(COCO_ONE).encode(),
                                                            "a.png": picture})))
    assert r.status_code == 400 and "coco.json cannot be read from the zip" in r.json()["detail"], r.text
    assert "password" in r.json()["detail"]
    assert store_snapshot(api.app) == before


@pytest.mark.parametrize("fmt, annotations, needle", [
    ("coco", b"[" * 100_000, "nests too deeply"),
    ("labelstudio", b"[" * 100_000, "nests too deeply"),
    ("customvision", b"{\"images\": " + b"[" * 100_000, "nests too deeply"),
    ("coco", json.dumps({**COCO_ONE, "annotations": [{"id": 1, "image_id": [1], "category_id": 1,
                                                      "bbox": [1, 1, 5, 5]}]}).encode(), "refers to image [1]"),
    ("coco", json.dumps({**COCO_ONE, "annotations": [{"id": 1, "image_id": 1, "category_id": {"a": 1},
                                                      "bbox": [1, 1, 5, 5]}]}).encode(), "refers to category"),
    ("coco", json.dumps({**COCO_ONE, "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                                                      "bbox": [True, 1, 5, 5]}]}).encode(), "bbox must be"),
    ("yolo", b"names: [" * 5000, "is not valid YAML"),
    ("yolo", b"names: [cat, dog\n", "is not valid YAML"),
])
def test_annotations_of_the_wrong_shape_are_a_400_that_changes_nothing(api, fmt, annotations, needle):
    m = new_model(api, ["apple"])
    before = store_snapshot(api.app)
    name = "data.yaml" if fmt == "yolo" else "a.json"
    r = post_import(api, m, fmt, zip_of({"a.png": png_bytes(seed=2), name: annotations}))
    assert r.status_code == 400 and needle in r.json()["detail"], r.text
    assert store_snapshot(api.app) == before


def test_odd_values_inside_annotations_skip_their_item(api):
    m = new_model(api, ["apple"])
    huge = int("9" * 400)
    coco = {**COCO_ONE, "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [huge, 1, 5, 5]},
                                        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 50]}]}
    rep = post_import(api, m, "coco", zip_of({"a.png": png_bytes(seed=3), "c.json": json.dumps(coco).encode()}))
    assert rep.status_code == 201, rep.text
    reasons = {s["item"]: s["reason"] for s in rep.json()["skipped"]}
    assert "too large" in reasons["annotation 1"] and rep.json()["boxes"] == 1

    tasks = [{"id": 1, "data": {"image": "/"}},
             {"id": 2, "data": {"image": "http://[::1/b.png"},
              "annotations": [{"result": [{"type": "rectanglelabels", "value": {
                  "x": huge, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["apple"]}}]}]}]
    rep = post_import(api, m, "labelstudio", zip_of({"b.png": png_bytes(seed=4), "t.json": json.dumps(tasks).encode()}))
    assert rep.status_code == 201, rep.text
    reasons = {s["item"]: s["reason"] for s in rep.json()["skipped"]}
    assert "has no file name" in reasons["task 1"]
    assert "must be numbers" in reasons["task 2 box 1"] and rep.json()["images"] == 1  # found by its file name

    images = [{"id": "c", "originalImageUri": "https://[abc/c.png",
               "regions": [{"tagName": "apple", "left": huge, "top": 0, "width": 0.1, "height": 0.1}]}]
    rep = post_import(api, m, "customvision", zip_of({"c.png": png_bytes(seed=5), "i.json": json.dumps(images).encode()}))
    assert rep.status_code == 201 and rep.json()["images"] == 1, rep.text
    assert "must be numbers" in rep.json()["skipped"][0]["reason"]

    voc = b'<?xml version="1.0" encoding="x-nope"?><annotation><filename>d.png</filename></annotation>'
    rep = post_import(api, m, "voc", zip_of({"d.png": png_bytes(seed=6), "d.xml": voc}))
    assert rep.status_code == 201 and "unknown encoding" in rep.json()["skipped"][0]["reason"], rep.text


def test_a_file_name_two_folders_share_is_said_to_be_ambiguous(api):
    m = new_model(api, ["apple"])
    rep = post_import(api, m, "coco", zip_of({"x/a.png": png_bytes(seed=13), "y/a.png": png_bytes(seed=14),
                                               "c.json": json.dumps(COCO_ONE).encode()})).json()
    assert rep["images"] == 0 and "2 files in it are named a.png" in rep["skipped"][0]["reason"]


def test_a_size_declared_before_exif_rotation_is_explained(api):
    m = new_model(api, ["apple"])
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter: the stored 100x40 is seen as 40x100
    buf = io.BytesIO()
    Image.new("RGB", (100, 40), (90, 120, 200)).save(buf, "JPEG", exif=exif.tobytes())
    coco = {**COCO_ONE, "images": [{"id": 1, "file_name": "r.jpg", "width": 100, "height": 40}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]}]}
    rep = post_import(api, m, "coco", zip_of({"r.jpg": buf.getvalue(), "c.json": json.dumps(coco).encode()})).json()
    assert rep["images"] == 0
    assert "declared 100x40 but the file is 40x100 as shown: its EXIF orientation" in rep["skipped"][0]["reason"]


def test_yolo_class_numbers_of_a_mapping_are_kept(api):
    m = new_model(api, ["cat", "dog"])
    archive = zip_of({"images/a.png": png_bytes(seed=7), "data.yaml": b"names: {0: cat, 2: dog}\n",
                      "labels/a.txt": b"2 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n"})
    rep = post_import(api, m, "yolo", archive).json()
    assert rep["boxesPerLabel"] == {"dog": 1}
    assert "class 1 is not in the class names (0, 2)" in rep["skipped"][0]["reason"]


def test_an_image_deleted_earlier_comes_back_with_an_import(api):
    m = new_model(api, ["apple"])
    picture = png_bytes(seed=8)
    url = f"/models/{m['id']}/datasets/{m['datasetId']}/images"
    image_id = api.post(url + "/binary", data=picture, headers={"Content-Type": "image/png"}).json()["results"][0]["imageId"]
    gone = api.delete(f"{url}/{image_id}")
    assert gone.status_code == 204 and "content-type" not in gone.headers and gone.content == b""  # no body to label
    coco = {**COCO_ONE, "images": [{**COCO_ONE["images"][0], "file_name": "a.png"}]}
    rep = post_import(api, m, "coco", zip_of({"a.png": picture, "c.json": json.dumps(coco).encode()}))
    assert rep.status_code == 201 and rep.json()["images"] == 1, rep.text
    back = api.get(f"{url}/{image_id}").json()
    assert [r["source"] for r in back["regions"]] == ["import"]


def test_boxes_per_image_are_bounded(api):
    m = new_model(api, ["apple"])
    spec = load_spec()
    put = spec["paths"]["/models/{modelId}/datasets/{datasetId}/images/{imageId}/regions"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["properties"]["regions"]["maxItems"] \
        == MAX_BOXES_PER_IMAGE  # the spec and the service say the same
    url = f"/models/{m['id']}/datasets/{m['datasetId']}/images"
    image_id = api.post(url + "/binary", data=png_bytes(seed=9), headers={"Content-Type": "image/png"}).json()["results"][0]["imageId"]
    box = {"labelName": "apple", "left": 0.1, "top": 0.1, "width": 0.2, "height": 0.2}
    r = api.put(f"{url}/{image_id}/regions", json={"regions": [box] * (MAX_BOXES_PER_IMAGE + 1)})
    assert r.status_code == 400 and "regions" in r.json()["detail"], r.text
    coco = {**COCO_ONE, "annotations": [{"id": k, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}
                                        for k in range(1, MAX_BOXES_PER_IMAGE + 2)]}
    rep = post_import(api, m, "coco", zip_of({"a.png": png_bytes(seed=10), "c.json": json.dumps(coco).encode()})).json()
    assert rep["images"] == 0 and f"over the limit of {MAX_BOXES_PER_IMAGE}" in rep["skipped"][0]["reason"]


def test_boxes_drawn_twice_are_found_across_row_blocks():
    """The data check compares an image's boxes a block of rows at a time: a pair split across
    blocks is still one repeated box, and nothing else is."""
    n = PAIR_ROWS * 2 + 10
    boxes = [(float(i % 40) * 10, float(i // 40) * 10, 5.0, 5.0) for i in range(n)]  # a grid, no overlaps
    boxes.append(boxes[3])  # the last box repeats one of the first block
    found = _repeated_boxes({(1, 7): boxes}, 0.9)
    assert found == {7: (1, [1])}
    assert _repeated_boxes({(1, 7): boxes[:-1]}, 0.9) == {}


def test_concurrent_box_replacements_keep_one_of_them(api):
    m = new_model(api, ["apple"])
    url = f"/models/{m['id']}/datasets/{m['datasetId']}/images"
    image_id = api.post(url + "/binary", data=png_bytes(seed=11), headers={"Content-Type": "image/png"}).json()["results"][0]["imageId"]
    statuses = []

    def put(writer: int):
        client = Api(api.app)
        boxes = [{"labelName": "apple", "left": 0.01 * writer, "top": 0.01 * k, "width": 0.1, "height": 0.1}
                 for k in range(writer + 1)]
        statuses.append(client.put(f"{url}/{image_id}/regions", json={"regions": boxes}).status_code)

    threads = [threading.Thread(target=put, args=(w,)) for w in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 8
    regions = api.get(f"{url}/{image_id}").json()["regions"]
    writers = {round(r["left"] / 0.01) for r in regions}
    assert len(writers) == 1 and len(regions) == writers.pop() + 1, regions  # one writer's set, whole


def test_the_same_picture_uploaded_at_once_is_stored_once(api):
    m = new_model(api, ["apple"])
    url = f"/models/{m['id']}/datasets/{m['datasetId']}/images/binary"
    picture, statuses = png_bytes(seed=12), []

    def upload():
        statuses.append(Api(api.app).post(url, data=picture, headers={"Content-Type": "image/png"}).status_code)

    threads = [threading.Thread(target=upload) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(statuses) <= {200, 201, 409} and 201 in statuses, statuses  # a lost race is a 409 to resend
    items = api.get(f"/models/{m['id']}/datasets/{m['datasetId']}/images").json()["items"]
    assert [i["sha256"] for i in items] == [hashlib.sha256(picture).hexdigest()]


@pytest.mark.parametrize("method, path, body", [
    ("get", "/jobs/9223372036854775808", None),
    ("post", "/jobs/9223372036854775808/cancel", None),
    ("patch", "/labels/9223372036854775808", {"name": "x"}),
    ("post", "/captures/approve", {"imageIds": [1], "datasetId": 9223372036854775808}),
])
def test_ids_past_the_database_are_a_400(api, method, path, body):
    m = new_model(api, ["apple"])
    r = getattr(api, method)(f"/models/{m['id']}{path}", **({"json": body} if body else {}))
    assert r.status_code == 400 and "maximum" in r.json()["detail"], r.text


def test_json_bodies_nested_too_deeply_are_a_400(api):
    r = api.post("/models", data="[" * 100_000, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "nests" in r.json()["detail"], r.text


def test_a_model_name_of_digits_only_is_refused(api):
    r = api.post("/models", json={"name": "123", "labels": ["a"]})
    assert r.status_code == 400 and "digits" in r.json()["detail"], r.text
    m = new_model(api, ["a"])
    assert api.patch(f"/models/{m['id']}", json={"name": "7"}).status_code == 400


def test_archiving_waits_for_work_in_progress(api):
    m = new_model(api, ["a"])
    run_id = queued_run(api.app, m["id"])
    r = api.delete(f"/models/{m['id']}")
    assert r.status_code == 409 and f"training run {run_id}" in r.json()["detail"], r.text
    assert api.get(f"/models/{m['id']}").json()["archived"] is False
    assert api.post(f"/models/{m['id']}/runs/{run_id}/cancel").status_code in (200, 202)
    assert api.delete(f"/models/{m['id']}").status_code == 200


def test_sixteen_bit_grey_and_mpo_pictures_are_read_as_seen(api):
    ramp = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, "PNG")
    grey16 = buf.getvalue()
    assert Image.open(io.BytesIO(grey16)).mode == "I;16"
    rgb = np.asarray(load_rgb(grey16), dtype=np.float64)
    assert 120 < rgb.mean() < 136 and rgb.min() == 0 and rgb.max() == 255  # scaled, not clipped to white

    first, second = Image.new("RGB", (64, 48), (200, 30, 30)), Image.new("RGB", (64, 48), (30, 30, 200))
    buf = io.BytesIO()
    first.save(buf, "MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(buf.getvalue())).format == "MPO"
    m = new_model(api, ["a"])
    r = api.post(f"/models/{m['id']}/datasets/{m['datasetId']}/images",
                 json={"images": [{"name": "phone.jpg", "content": b64(buf.getvalue())},
                                  {"name": "grey.png", "content": b64(grey16)}]})
    assert r.status_code == 201 and r.json()["created"] == 2, r.text
    formats = {i["name"]: i["format"] for i in api.get(f"/models/{m['id']}/datasets/{m['datasetId']}/images").json()["items"]}
    assert formats == {"phone.jpg": "jpeg", "grey.png": "png"}


def test_cron_weekdays_count_from_sunday():
    import datetime as dt
    assert cron_weekdays("1") == "mon" and cron_weekdays("0") == cron_weekdays("7") == "sun"
    assert cron_weekdays("1-5") == "mon,tue,wed,thu,fri" and cron_weekdays("*/2") == "sun,tue,thu,sat"
    assert cron_weekdays("MON-fri") == "mon,tue,wed,thu,fri" and cron_weekdays("0-6") == "*"
    thursday = dt.datetime(2026, 11, 26, 12, tzinfo=dt.timezone.utc)
    assert parse_cron("0 3 * * 1").get_next_fire_time(None, thursday).date() == dt.date(2026, 11, 30)  # a Monday
    assert parse_cron("0 3 * * 0").get_next_fire_time(None, thursday).date() == dt.date(2026, 11, 29)  # a Sunday
    for bad in ("0 3 * * 8", "0 3 * * 5-1", "0 3 * * */0", "0 3 * *"):
        with pytest.raises(Exception, match="is not valid"):
            parse_cron(bad)
