"""Server-made thumbnails: size, aspect, EXIF rotation, strong ETag, 304, and a disk cache that
never decodes the full image again."""
from __future__ import annotations

import io

from PIL import Image, ImageDraw

from connector.services import thumbnails
from tests.conftest import b64, png_bytes


def upload(api, m, data: bytes) -> int:
    r = api.post(f"/models/{m['id']}/datasets/{m['datasetId']}/images", json={"images": [{"content": b64(data)}]})
    assert r.status_code == 201, r.text
    return r.json()["results"][0]["imageId"]


def thumb_url(m, image_id):
    return f"/models/{m['id']}/datasets/{m['datasetId']}/images/{image_id}/thumbnail"


def decoded(r) -> Image.Image:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "JPEG"
    return img.convert("RGB")


def exif_rotated_jpeg() -> bytes:
    """Stored 400x300 with a red block top-left; EXIF orientation 6 shows it 300x400, block top-right."""
    img = Image.new("RGB", (400, 300), (20, 20, 200))
    ImageDraw.Draw(img).rectangle([0, 0, 99, 74], fill=(230, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def test_sizes_keep_the_aspect_and_never_enlarge(api):
    m = api.model()
    wide = upload(api, m, png_bytes(640, 320, seed=1))
    for size, expected in ((128, (128, 64)), (256, (256, 128)), (512, (512, 256))):
        assert decoded(api.get(thumb_url(m, wide), params={"size": size})).size == expected
    assert decoded(api.get(thumb_url(m, wide))).size == (256, 128)  # 256 by default
    small = upload(api, m, png_bytes(300, 260, seed=2))
    assert decoded(api.get(thumb_url(m, small), params={"size": 512})).size == (300, 260)
    assert sorted(thumbnails.SIZES) == [128, 256, 512]


def test_exif_orientation_is_applied(api):
    m = api.model()
    image_id = upload(api, m, exif_rotated_jpeg())
    assert api.get(f"/models/{m['id']}/datasets/{m['datasetId']}/images/{image_id}").json()["width"] == 300
    img = decoded(api.get(thumb_url(m, image_id), params={"size": 256}))
    assert img.size == (192, 256)
    red, blue = img.getpixel((180, 10)), img.getpixel((10, 10))
    assert red[0] > 180 and red[2] < 80, red       # the block moved to the top right
    assert blue[2] > 150 and blue[0] < 80, blue


def test_transparency_becomes_white_and_gifs_show_their_first_frame(api):
    m = api.model()
    clear = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    ImageDraw.Draw(clear).rectangle([100, 100, 199, 199], fill=(0, 160, 0, 255))
    buf = io.BytesIO()
    clear.save(buf, "PNG")
    img = decoded(api.get(thumb_url(m, upload(api, m, buf.getvalue())), params={"size": 128}))
    assert min(img.getpixel((5, 5))) > 240 and img.getpixel((64, 64))[1] > 120
    frames = [Image.new("RGB", (300, 280), c) for c in ((250, 0, 0), (0, 0, 250))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    first = decoded(api.get(thumb_url(m, upload(api, m, buf.getvalue())), params={"size": 128})).getpixel((60, 60))
    assert first[0] > 200 and first[2] < 60


def test_strong_etag_long_cache_and_304(api):
    m = api.model()
    image_id = upload(api, m, png_bytes(seed=3))
    r = api.get(thumb_url(m, image_id), params={"size": 128})
    etag = r.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert r.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    again = api.get(thumb_url(m, image_id), params={"size": 128}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag and again.headers["Cache-Control"] == r.headers["Cache-Control"]
    listed = api.get(thumb_url(m, image_id), params={"size": 128}, headers={"If-None-Match": f'"other", {etag}'})
    assert listed.status_code == 304
    # another size is another entity; a stale tag gets the bytes
    other = api.get(thumb_url(m, image_id), params={"size": 256}, headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["ETag"] != etag
    assert api.get(thumb_url(m, image_id), params={"size": 128}, headers={"If-None-Match": '"stale"'}).content == r.content


def test_cached_thumbnail_is_served_without_the_original(api):
    """Once made, a thumbnail is read from its cache file: with the full image gone it still comes back."""
    m = api.model()
    data = png_bytes(900, 700, seed=4)
    image_id = upload(api, m, data)
    first = api.get(thumb_url(m, image_id), params={"size": 256})
    store = api.app.odconnect.store
    sha = api.get(f"/models/{m['id']}/datasets/{m['datasetId']}/images/{image_id}").json()["sha256"]
    cached = thumbnails.cache_path(store, sha, 256)
    assert cached.read_bytes() == first.content
    assert not [p for p in cached.parent.iterdir() if p.name.startswith(".tmp")]  # written atomically
    store.blobs.delete(sha)
    second = api.get(thumb_url(m, image_id), params={"size": 256})
    assert second.status_code == 200 and second.content == first.content
    assert second.headers["ETag"] == first.headers["ETag"]
    # a size not made yet needs the original, which is gone: that is the only thing that fails
    assert not thumbnails.cache_path(store, sha, 128).exists()


def test_bad_size_and_unknown_images_are_problems(api):
    m = api.model()
    image_id = upload(api, m, png_bytes(seed=5))
    for size in ("100", "0", "abc", "1024"):
        r = api.get(thumb_url(m, image_id), params={"size": size})
        assert r.status_code == 400, size
        detail = r.json()["detail"]
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "[128, 256, 512]" in detail or "integer" in detail, detail
    other = api.post(f"/models/{m['id']}/datasets", json={"name": "other"}).json()
    for url in (thumb_url(m, 9999), f"/models/{m['id']}/datasets/{other['id']}/images/{image_id}/thumbnail",
                f"/models/nope/datasets/{m['datasetId']}/images/{image_id}/thumbnail"):
        r = api.get(url)
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    api.delete(f"/models/{m['id']}/datasets/{m['datasetId']}/images/{image_id}")
    assert api.get(thumb_url(m, image_id)).status_code == 404
    assert not (api.app.odconnect.store.root / "thumbnails").exists()  # nothing was made for bad requests
