"""Images and boxes: the three upload forms, listing, boxes, and every class of bad input."""
import io
import re

import pytest
from PIL import Image

from tests.conftest import b64, png_bytes, png_header_only, store_snapshot


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def images_path(m):
    return f"/models/{m['id']}/datasets/{m['datasetId']}/images"


def box(label="apple", left=0.1, top=0.2, width=0.3, height=0.4):
    return {"labelName": label, "left": left, "top": top, "width": width, "height": height}


def test_upload_json_base64_with_boxes_and_data_url(api):
    m = api.model()
    r = api.post(images_path(m), json={"images": [
        {"name": "a.png", "content": b64(png_bytes(seed=1)), "regions": [box()]},
        {"name": "b.jpg", "content": "data:image/jpeg;base64," + b64(png_bytes(seed=2, fmt="JPEG"))},
    ]})
    assert r.status_code == 201, r.text
    assert r.json()["created"] == 2
    ids = [x["imageId"] for x in r.json()["results"]]
    a = api.get(f"{images_path(m)}/{ids[0]}").json()
    assert (a["width"], a["height"], a["format"]) == (320, 256, "png")
    assert a["regions"][0]["labelName"] == "apple" and a["regions"][0]["approved"] is True
    assert a["regions"][0]["width"] == pytest.approx(0.3)
    assert api.get(f"{images_path(m)}/{ids[1]}").json()["format"] == "jpeg"


def test_upload_multipart_keeps_good_files_and_reports_bad_ones(api):
    m = api.model()
    files = [("files", ("good1.png", png_bytes(seed=1), "image/png")),
             ("files", ("empty.jpg", b"", "image/jpeg")),
             ("files", ("notes.jpg", b"this is a text file", "image/jpeg")),
             ("files", ("good2.bmp", png_bytes(seed=2, fmt="BMP"), "image/bmp")),
             ("files", ("cut.jpg", half(png_bytes(seed=3, fmt="JPEG")), "image/jpeg"))]
    r = api.post(images_path(m) + "/files", files=files)
    assert r.status_code == 201, r.text
    by_name = {x["name"]: x for x in r.json()["results"]}
    assert by_name["good1.png"]["status"] == by_name["good2.bmp"]["status"] == "created"
    assert "0 bytes" in by_name["empty.jpg"]["reason"]
    assert "not a recognised image" in by_name["notes.jpg"]["reason"]
    assert "corrupt or truncated" in by_name["cut.jpg"]["reason"]
    assert api.get(images_path(m)).json()["total"] == 2


def test_upload_binary_gif_first_frame_and_webp(api):
    m = api.model()
    frames = [Image.new("RGB", (300, 280), c) for c in ("red", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    r = api.post(images_path(m) + "/binary", params={"name": "anim.gif"}, content=buf.getvalue(),
                 headers={"Content-Type": "image/gif"})
    assert r.status_code == 201, r.text
    r = api.post(images_path(m) + "/binary", content=png_bytes(fmt="WEBP"),
                 headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201
    formats = sorted(i["format"] for i in api.get(images_path(m)).json()["items"])
    assert formats == ["gif", "webp"]


def test_duplicate_upload_is_reported_not_stored_twice(api):
    m = api.model()
    data = png_bytes(seed=5)
    first = api.post(images_path(m), json={"images": [{"content": b64(data)}]}).json()
    r = api.post(images_path(m), json={"images": [{"content": b64(data)}]})
    assert r.status_code == 200
    assert r.json()["results"][0] == {"name": "image-1", "status": "duplicate",
                                      "imageId": first["results"][0]["imageId"]}
    assert api.get(images_path(m)).json()["total"] == 1


@pytest.mark.parametrize("payload,status,needle", [
    (b"", 400, "0 bytes"),
    (b"plain text pretending to be a jpeg", 415, "not a recognised image"),
    (half(png_bytes(fmt="JPEG")), 400, "corrupt or truncated"),
    (png_header_only(20000, 20000), 413, "too large to decode safely"),
    (png_bytes(31, 100), 400, "under the minimum of 32 px"),
    (png_header_only(12000, 300), 413, "over the limit of 10240 px per side"),
])
def test_bad_files_are_rejected_with_the_reason_and_nothing_changes(api, payload, status, needle):
    m = api.model()
    api.post(images_path(m), json={"images": [{"content": b64(png_bytes(seed=9)), "regions": [box()]}]})
    before = store_snapshot(api.app)
    r = api.post(images_path(m) + "/binary", params={"name": "x.jpg"}, content=payload,
                 headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400, r.text  # one file, none accepted: the request failed
    assert needle in r.json()["detail"]
    assert r.json()["results"][0]["status"] == "rejected"
    assert r.json()["results"][0]["name"] == "x.jpg"
    # the same file alone through the service gives its own status code
    from connector.errors import OdError
    from connector.imaging import check_image
    with pytest.raises(OdError) as err:
        check_image(payload, api.app.odconnect.limits)
    assert err.value.status == status
    assert store_snapshot(api.app) == before


def test_size_limit_in_bytes_is_configurable(make_app):
    from tests.conftest import Api
    api = Api(make_app(limits={"max_image_bytes": 2000}))
    m = api.model()
    r = api.post(images_path(m), json={"images": [{"content": b64(png_bytes(seed=3, fmt="BMP"))}]})
    assert r.status_code == 400 and "over the limit of 2000 bytes" in r.json()["detail"]


def test_bad_base64_names_the_item(api):
    m = api.model()
    r = api.post(images_path(m), json={"images": [{"content": b64(png_bytes())}, {"content": "%%%"}]})
    assert r.status_code == 400 and "images[1].content is not valid base64" in r.json()["detail"]
    assert api.get(images_path(m)).json()["total"] == 0


def test_path_traversal_names_never_become_paths(api, tmp_path):
    m = api.model()
    evil = ["../../../../tmp/evil.png", "..\\..\\win.png", "/etc/passwd", ".."]
    files = [("files", (n, png_bytes(seed=i), "image/png")) for i, n in enumerate(evil)]
    r = api.post(images_path(m) + "/files", files=files)
    assert r.status_code == 201, r.text
    names = [x["name"] for x in r.json()["results"]]
    assert names == ["evil.png", "win.png", "passwd", "image"]
    root = api.app.odconnect.store.root
    written = [p for p in root.rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to(root.resolve()) for p in written)
    assert not any(p.name in ("evil.png", "win.png", "passwd") for p in written)


def test_regions_set_validate_and_replace(api):
    m = api.model()
    img = api.post(images_path(m), json={"images": [{"content": b64(png_bytes())}]}).json()["results"][0]["imageId"]
    url = f"{images_path(m)}/{img}/regions"
    banana_id = m["labels"][1]["id"]
    r = api.put(url, json={"regions": [box(), {"labelId": banana_id, "left": 0.5, "top": 0.5, "width": 0.5, "height": 0.5}]})
    assert r.status_code == 200
    assert [x["labelName"] for x in r.json()["regions"]] == ["apple", "banana"]
    before = store_snapshot(api.app)
    # the spec refuses what it can say (each number's range, a label given); the server the rest
    bad = [(box(left=-0.2), "regions.1.left: -0.2 is less than the minimum of 0"),
           (box(left=0.8, width=0.3), "not inside the image"),
           (box(width=0), "regions.1.width: 0 is less than or equal to the minimum of 0"),
           (box(height=-0.1), "regions.1.height: -0.1 is less than or equal to the minimum of 0"),
           (box(label="kiwi"), "unknown label 'kiwi'"),
           ({"left": 0.1, "top": 0.1, "width": 0.1, "height": 0.1}, "regions.1: give labelId or labelName")]
    for region, needle in bad:
        r = api.put(url, json={"regions": [box(), region]})
        assert r.status_code == 400, region
        assert needle in r.json()["detail"], r.json()
        assert re.search(r"regions?[ .]1", r.json()["detail"])  # the second region is named
    assert store_snapshot(api.app) == before
    assert len(api.put(url, json={"regions": []}).json()["regions"]) == 0


def test_list_filter_page_get_content_delete(api):
    m = api.model()
    imgs = [{"content": b64(png_bytes(seed=i)), "regions": [box("apple" if i % 2 else "banana")] if i < 4 else []}
            for i in range(6)]
    ids = [x["imageId"] for x in api.post(images_path(m), json={"images": imgs}).json()["results"]]
    page = api.get(images_path(m), params={"page": 2, "pageSize": 4}).json()
    assert page["total"] == 6 and [i["id"] for i in page["items"]] == ids[4:]
    assert len(api.get(images_path(m), params={"label": "apple"}).json()["items"]) == 2
    assert api.get(images_path(m), params={"tagged": False}).json()["total"] == 2
    assert api.get(images_path(m), params={"label": "kiwi"}).status_code == 400
    assert api.get(images_path(m), params={"pageSize": 1000}).status_code == 400
    content = api.get(f"{images_path(m)}/{ids[0]}/content")
    assert content.headers["content-type"] == "image/png" and content.content == png_bytes(seed=0)
    assert api.delete(f"{images_path(m)}/{ids[0]}").status_code == 204
    assert api.get(f"{images_path(m)}/{ids[0]}").status_code == 404
    assert api.get(images_path(m)).json()["total"] == 5
    # uploading it again brings it back
    r = api.post(images_path(m), json={"images": [{"content": b64(png_bytes(seed=0))}]})
    assert r.status_code == 201 and r.json()["results"][0]["imageId"] == ids[0]


def test_approve_suggested_regions(api):
    from model_store.schema import Region
    m = api.model()
    img = api.post(images_path(m), json={"images": [{"content": b64(png_bytes()), "regions": [box(), box("banana")]}]}).json()["results"][0]["imageId"]
    with api.app.odconnect.store.transaction() as s:  # what ML-assisted labeling leaves behind
        for r in s.query(Region).filter_by(image_id=img):
            r.approved, r.source = False, "suggested"
    check = api.get(f"/models/{m['id']}/data-check").json()
    assert check["unapprovedBoxes"] == 2 and check["boxes"] == 0
    regions = api.get(f"{images_path(m)}/{img}").json()["regions"]
    r = api.post(f"{images_path(m)}/{img}/regions/approve", json={"regionIds": [regions[0]["id"]]})
    assert [x["approved"] for x in r.json()["regions"]] == [True, False]
    assert api.post(f"{images_path(m)}/{img}/regions/approve", json={"regionIds": [9999]}).status_code == 400
    r = api.post(f"{images_path(m)}/{img}/regions/approve", json={})
    assert all(x["approved"] for x in r.json()["regions"])


def test_storing_a_large_jpeg_checks_every_byte_without_keeping_its_pixels(monkeypatch):
    """Uploads and imports verify a JPEG at 1/8 scale: the size stored is the picture's own, and
    corrupt or truncated data fails as a full decode would (1/64 of the memory of a phone photo,
    or of a small file whose header claims 10,000 px a side)."""
    from connector import imaging
    from connector.config import DEFAULTS

    limits = DEFAULTS["limits"]
    img = Image.new("RGB", (4000, 3000), (90, 140, 60))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned: 3000 wide, 4000 high
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80, exif=exif)
    loaded = []
    real_load = Image.Image.load
    monkeypatch.setattr(imaging.Image.Image, "load", lambda self: loaded.append(self.size) or real_load(self))
    checked = imaging.check_image(buf.getvalue(), limits, "phone.jpg", keep_pixels=False)
    assert (checked.width, checked.height, checked.decoded) == (3000, 4000, None)
    assert set(loaded) == {(500, 375)}  # 1/8 scale
    with pytest.raises(imaging.Invalid, match="corrupt or truncated"):
        imaging.check_image(half(buf.getvalue()), limits, "cut.jpg", keep_pixels=False)
    assert imaging.check_image(buf.getvalue(), limits, "phone.jpg").decoded.size == (4000, 3000)
