"""Tiny drawn datasets for real training runs: red squares and blue circles on noise."""
from __future__ import annotations

import io
import random
import time
from urllib.parse import urlsplit

from PIL import Image, ImageDraw

from tests.conftest import b64

LABELS = ("square", "circle")


def shapes_image(seed: int, size: int = 256) -> tuple[bytes, list[dict]]:
    """A 256x256 JPEG with one or two shapes, and their boxes (normalized, Custom Vision shape)."""
    rnd = random.Random(seed)
    img = Image.new("RGB", (size, size))
    img.putdata([(rnd.randrange(60, 120),) * 3 for _ in range(size * size)])
    draw = ImageDraw.Draw(img)
    regions = []
    for k in range(1 + seed % 2):
        label = LABELS[(seed + k) % 2]
        w = rnd.randrange(50, 90)
        x, y = rnd.randrange(0, size - w), rnd.randrange(0, size - w)
        if label == "square":
            draw.rectangle([x, y, x + w, y + w], fill=(220, 30, 30))
        else:
            draw.ellipse([x, y, x + w, y + w], fill=(30, 60, 220))
        regions.append({"labelName": label, "left": x / size, "top": y / size,
                        "width": (w + 1) / size, "height": (w + 1) / size})
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue(), regions


def upload_shapes(api, model: dict, count: int, start: int = 0, dataset_id: int | None = None,
                  boxes: bool = True) -> list[int]:
    images = []
    for seed in range(start, start + count):
        data, regions = shapes_image(seed)
        images.append({"name": f"shape-{seed}.jpg", "content": b64(data), "regions": regions if boxes else []})
    ds = dataset_id or model["datasetId"]
    r = api.post(f"/models/{model['id']}/datasets/{ds}/images", json={"images": images})
    assert r.status_code == 201, r.text
    return [x["imageId"] for x in r.json()["results"]]


def api_path(location: str) -> str:
    """An absolute Location as the test client's path (the client adds the /api/v1 prefix)."""
    return urlsplit(location).path.removeprefix("/api/v1")


def poll(api, location: str, timeout: float = 180) -> dict:
    path = api_path(location)
    deadline = time.time() + timeout
    while True:
        r = api.get(path)
        if r.status_code == 200:
            return r.json()
        assert r.status_code == 202, r.text
        assert int(r.headers["Retry-After"]) >= 1 and api_path(r.headers["Location"]) == path
        assert time.time() < deadline, f"run still {r.json()['status']}"
        time.sleep(0.3)


def trained_app(root, config: dict, seeds=(1,), images: int = 8):
    """A real app with model "shapes" and one tiny trained version per seed: (app, api, model)."""
    from connector.app import create_app
    from tests.conftest import Api, make_config
    app = create_app(make_config(root, **config))
    api = Api(app)
    m = api.model("shapes", LABELS)
    upload_shapes(api, m, images)
    for seed in seeds:
        r = api.post(f"/models/{m['id']}/train", json={"maxIterations": 2, "seed": seed})
        assert poll(api, r.headers["Location"])["status"] == "succeeded"
    return app, api, m
