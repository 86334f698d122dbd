"""Real-world data: thumbnails train and detect; five images per label train a model."""
from __future__ import annotations

import io
import random

import pytest
from PIL import Image, ImageDraw

from tests.conftest import Api, b64
from tests.test_inference_api import INFER
from tests.training_data import LABELS, poll, upload_shapes

pytestmark = pytest.mark.slow


def thumbnail(seed: int, width: int = 48, height: int = 40) -> tuple[bytes, list[dict]]:
    """A small JPEG with one 14-20 px shape and its box, like a scraped thumbnail."""
    rnd = random.Random(seed)
    img = Image.new("RGB", (width, height), (rnd.randrange(60, 120),) * 3)
    draw = ImageDraw.Draw(img)
    label = LABELS[seed % 2]
    side = rnd.randrange(14, 21)
    x, y = rnd.randrange(0, width - side), rnd.randrange(0, height - side)
    if label == "square":
        draw.rectangle([x, y, x + side - 1, y + side - 1], fill=(220, 30, 30))
    else:
        draw.ellipse([x, y, x + side - 1, y + side - 1], fill=(30, 60, 220))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue(), [{"labelName": label, "left": x / width, "top": y / height,
                             "width": side / width, "height": side / height}]


def test_thumbnails_are_kept_trained_on_and_detected(make_app):
    api = Api(make_app(**INFER))
    m = api.model("thumbs", LABELS)
    images = [{"name": f"thumb-{s}.jpg", "content": b64(data), "regions": regions}
              for s in range(10) for data, regions in [thumbnail(s)]]
    r = api.post(f"/models/{m['id']}/datasets/{m['datasetId']}/images", json={"images": images})
    assert r.status_code == 201 and r.json()["created"] == 10, r.text
    check = api.get(f"/models/{m['id']}/data-check").json()
    assert check["canTrain"] is True and check["smallImages"] == 10
    assert any(w["code"] == "SmallImages" and w["severity"] == "advice" for w in check["warnings"])

    # detectron2 scales the 48x40 pictures up to the preset's size for training and evaluation
    r = api.post(f"/models/{m['id']}/train", json={"maxIterations": 3})
    run = poll(api, r.headers["Location"])
    assert run["status"] == "succeeded", run
    version = api.get(f"/models/{m['id']}/versions/1").json()
    assert version["metrics"]["evalImages"] >= 2 and version["imageCount"] == 10
    assert api.post(f"/models/{m['id']}/versions/1/publish").status_code == 200

    # detect and quick test on a 32x32 picture (the smallest accepted) answer in the image's own fractions
    small, _ = thumbnail(3, 32, 32)
    body = api.post(f"/models/{m['id']}/detect", json={"content": b64(small)}, params={"threshold": 0}).json()
    assert body["image"] == {"width": 32, "height": 32} and body["version"] == 1
    assert body["predictions"], "a score threshold of 0 keeps every detection"
    for p in body["predictions"]:
        bb = p["boundingBox"]
        assert 0 <= bb["left"] <= 1 and 0 < bb["width"] <= 1 - bb["left"] + 1e-4
    r = api.post(f"/models/{m['id']}/quick-test", content=small, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200 and r.json()["image"] == {"width": 32, "height": 32}


def test_five_images_per_label_train_as_the_data_check_says(make_app):
    # the default rules (5 to train, advice under 15), with the tiny test model
    api = Api(make_app(training=INFER["training"]))
    m = api.model("few", LABELS)
    upload_shapes(api, m, 4, start=1)  # seeds 1..4: squares on all four, circles on 1 and 3
    check = api.get(f"/models/{m['id']}/data-check").json()
    assert not check["canTrain"] and "at least 5 are needed" in check["warnings"][0]["message"]
    for seed in (5, 7, 9):  # odd seeds draw both shapes: circles reach 5
        upload_shapes(api, m, 1, start=seed)
    check = api.get(f"/models/{m['id']}/data-check").json()
    per_label = {x["name"]: x["images"] for x in check["labels"]}
    assert per_label == {"square": 7, "circle": 5} and check["canTrain"] is True
    advice = {w["label"]: w for w in check["warnings"] if w["code"] == "VeryFewImages"}
    assert set(advice) == {"square", "circle"} and "will vary" in advice["circle"]["message"]

    r = api.post(f"/models/{m['id']}/train", json={"maxIterations": 3})
    run = poll(api, r.headers["Location"])
    assert run["status"] == "succeeded", run
    version = api.get(f"/models/{m['id']}/versions/1").json()
    assert version["metrics"]["perLabel"]["circle"]["images"] >= 1  # held out: every label is scored
    assert any("'circle' has" in a for a in version["metrics"]["advice"])
