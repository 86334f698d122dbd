"""Image-grid speed at 10,000 images: list pages (filters, uncertainty order, deep pages) and
thumbnails (first request vs cached vs 304), through the real server on loopback.

The store is filled directly (rows in one transaction, like a big import would leave them):
10,000 images in one dataset, 40% with 1-3 approved boxes, 50% with 1-4 suggestions of random
probability; the first `--photos` images have real 1600x1200 JPEG files for the thumbnail part.

Usage: python bench/list_bench.py [--images 10000] [--requests 30] [--photos 40]
"""
from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from detect_bench import KEY, percentile, start_server, stop_server  # noqa: E402

LABELS = ["fork", "scissors", "spoon"]


def photo(seed: int) -> bytes:
    rnd = random.Random(seed)
    img = Image.new("RGB", (1600, 1200), (rnd.randrange(256), 120, 160))
    draw = ImageDraw.Draw(img)
    for _ in range(30):
        x, y = rnd.randrange(1500), rnd.randrange(1100)
        draw.ellipse([x, y, x + rnd.randrange(20, 300), y + rnd.randrange(20, 300)],
                     fill=tuple(rnd.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=88)
    return buf.getvalue()


def fill(root: Path, n_images: int, n_photos: int) -> tuple[int, int]:
    """A model with one dataset of `n_images` images; returns (model id, dataset id)."""
    from sqlalchemy import insert

    from connector.services import catalog
    from model_store import Store
    from model_store.schema import Image as ImageRow, Region

    store = Store(f"sqlite:///{root / 'odconnect.db'}", root)
    model = catalog.create_model(store, "grid", LABELS)
    dataset_id = catalog.list_datasets(store, model["id"])[0]["id"]
    label_ids = [t["id"] for t in model["labels"]]
    rnd = random.Random(0)
    images, regions = [], []
    for i in range(1, n_images + 1):
        sha = store.blobs.put(photo(i)) if i <= n_photos else f"{i:064x}"
        images.append({"id": i, "dataset_id": dataset_id, "sha256": sha, "name": f"img-{i}.jpg", "format": "JPEG",
                       "width": 1600, "height": 1200, "size_bytes": 250_000})
        if rnd.random() < 0.4:
            for _ in range(rnd.randint(1, 3)):
                regions.append({"image_id": i, "label_id": rnd.choice(label_ids), "left": 0.1, "top": 0.1,
                                "width": 0.2, "height": 0.2, "approved": True, "source": "user"})
        if rnd.random() < 0.5:
            for _ in range(rnd.randint(1, 4)):
                regions.append({"image_id": i, "label_id": rnd.choice(label_ids), "left": 0.5, "top": 0.5,
                                "width": 0.2, "height": 0.2, "approved": False, "source": "suggested",
                                "probability": round(rnd.random(), 4)})
    with store.transaction() as s:
        s.execute(insert(ImageRow), images)
        s.execute(insert(Region), regions)
    store.dispose()
    return model["id"], dataset_id


def get(base: str, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(base + path, headers={"X-API-Key": KEY, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def timed(base: str, path: str, requests: int, headers=None, expect=200) -> list[float]:
    out = []
    for _ in range(requests):
        t0 = time.perf_counter()
        status, _, _ = get(base, path, headers)
        out.append((time.perf_counter() - t0) * 1000)
        assert status == expect, (path, status)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--photos", type=int, default=40)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="odc-list-bench-"))
    t0 = time.perf_counter()
    model_id, ds = fill(root / "data", args.images, args.photos)
    print(f"filled {args.images} images in {time.perf_counter() - t0:.1f} s")
    config = root / "config.yaml"
    config.write_text(json.dumps({"storage": {"root": str(root / "data")}, "security": {"api_keys": [KEY]}}))
    server, client = start_server(config)
    base = client.base
    images = f"/models/{model_id}/datasets/{ds}/images"
    last_page = (args.images + 49) // 50
    cases = [
        ("page 1, by id", "?page=1&pageSize=50"),
        (f"page {last_page}, by id", f"?page={last_page}&pageSize=50"),
        ("page 1, newest first", "?sort=-id&pageSize=50"),
        ("unlabeled (tagged=false)", "?tagged=false&pageSize=50"),
        ("labeled (tagged=true)", "?tagged=true&pageSize=50"),
        ("hasSuggestions=true", "?hasSuggestions=true&pageSize=50"),
        ("label=fork", "?label=fork&pageSize=50"),
        ("uncertainty, page 1", "?sort=uncertainty&pageSize=50"),
        ("uncertainty, page 100", "?sort=uncertainty&page=100&pageSize=50"),
        ("unlabeled by uncertainty", "?tagged=false&sort=uncertainty&pageSize=50"),
        ("page 1, pageSize=256", "?pageSize=256"),
    ]
    try:
        rows = []
        for name, query in cases:
            status, _, body = get(base, images + query)
            assert status == 200, body
            total = json.loads(body)["total"]
            get(base, images + query)  # warm
            lat = timed(base, images + query, args.requests)
            rows.append((name, total, percentile(lat, 50), percentile(lat, 95)))
        print(f"\nImage list, {args.images} images, 50 per page, {args.requests} requests each (ms):\n")
        print("| request | total | p50 ms | p95 ms |\n|---|---|---|---|")
        for name, total, p50, p95 in rows:
            print(f"| {name} | {total} | {p50:.1f} | {p95:.1f} |")

        thumbs = [f"{images}/{i}/thumbnail?size=256" for i in range(1, args.photos + 1)]
        first = [timed(base, t, 1)[0] for t in thumbs]
        cached = [ms for t in thumbs for ms in timed(base, t, 3)]
        etag = get(base, thumbs[0])[1]["ETag"]
        not_modified = timed(base, thumbs[0], args.requests, {"If-None-Match": etag}, expect=304)
        size = len(get(base, thumbs[0])[2])
        print(f"\nThumbnails (size 256) of {args.photos} 1600x1200 JPEGs, ~{size // 1024} KB each (ms):\n")
        print("| request | p50 ms | p95 ms |\n|---|---|---|")
        for name, lat in (("first (decode + resize + write)", first), ("cached", cached),
                          ("If-None-Match -> 304", not_modified)):
            print(f"| {name} | {percentile(lat, 50):.1f} | {percentile(lat, 95):.1f} |")
    finally:
        stop_server(server)


if __name__ == "__main__":
    main()
