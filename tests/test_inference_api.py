"""Quick test, publish, detect, roll back, batch and export with a real tiny trained version."""
from __future__ import annotations

import base64
import io
import threading
import time
import zipfile

import numpy as np
import torch
from pathlib import Path
import pytest
from PIL import Image

from tests.conftest import b64
from tests.test_training_api import TINY
from tests.training_data import shapes_image, trained_app

pytestmark = pytest.mark.slow

# An untrained-looking tiny model scores below detectron2's default 0.05 test threshold;
# letting every candidate through makes boxes to draw, filter and count.
INFER = {**TINY, "training": {**TINY["training"], "overrides": {
    **TINY["training"]["overrides"], "MODEL.RETINANET.SCORE_THRESH_TEST": 0.0}}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    app, api, m = trained_app(tmp_path_factory.mktemp("infer"), INFER, seeds=(1, 2))  # publish / roll back
    yield api, m
    app.odconnect.close()


def detect_url(m, ref=None):
    return f"/models/{ref or m['id']}/detect"


def test_detect_before_publish_is_409(trained):
    api, m = trained
    api.post(f"/models/{m['id']}/unpublish")
    r = api.post(detect_url(m), json={"content": b64(shapes_image(1)[0])})
    assert r.status_code == 409 and "no published version" in r.json()["detail"]


def test_quick_test_draws_the_boxes(trained):
    api, m = trained
    data, _ = shapes_image(3)
    r = api.post(f"/models/{m['id']}/quick-test", json={"content": b64(data), "threshold": 0.0, "maxResults": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == 2 and 0 < body["totalCount"] <= 5  # last trained by default
    png = Image.open(io.BytesIO(base64.b64decode(body["annotatedImage"])))
    assert png.format == "PNG" and png.size == (256, 256)
    original = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    drawn = np.asarray(png.convert("RGB")).astype(int)
    changed = np.abs(drawn - original).sum(axis=2) > 60
    # pixels change along each drawn box edge, and stay as they were far from every box
    for p in body["predictions"]:
        bb = p["boundingBox"]
        x0 = int(bb["left"] * 256)
        x1 = min(255, int((bb["left"] + bb["width"]) * 256))
        y_mid = min(255, int((bb["top"] + bb["height"] / 2) * 256))
        assert changed[y_mid, max(0, x0 - 1):x0 + 3].any() or changed[y_mid, max(0, x1 - 2):x1 + 2].any()
    boxes = np.zeros((256, 256), bool)
    for p in body["predictions"]:
        bb = p["boundingBox"]
        boxes[max(0, int(bb["top"] * 256) - 30):int((bb["top"] + bb["height"]) * 256) + 4,
              max(0, int(bb["left"] * 256) - 4):int((bb["left"] + bb["width"]) * 256) + 60] = True
    assert not changed[~boxes].any()
    # the PNG itself, when asked for, and a named version; multipart and raw bodies too
    r = api.post(f"/models/{m['id']}/quick-test", params={"version": "1", "threshold": 0},
                 content=data, headers={"Content-Type": "image/jpeg", "Accept": "image/png"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (256, 256)
    r = api.post(f"/models/{m['id']}/quick-test", files={"file": ("x.jpg", data, "image/jpeg")})
    assert r.status_code == 200 and "annotatedImage" in r.json()


def test_publish_detect_by_id_and_name_rollback_unpublish(trained):
    api, m = trained
    r = api.post(f"/models/{m['id']}/versions/2/publish")
    assert r.status_code == 200 and r.json()["published"] == 2
    assert api.get(f"/models/{m['id']}/versions/published").json()["number"] == 2
    data, _ = shapes_image(5)
    by_id = api.post(detect_url(m), json={"content": b64(data)}, params={"threshold": 0}).json()
    by_name = api.post(detect_url(m, "shapes"), content=data, params={"threshold": 0},
                       headers={"Content-Type": "application/octet-stream"}).json()
    assert by_id["version"] == by_name["version"] == 2
    assert by_id["predictions"] == by_name["predictions"]
    p = by_id["predictions"][0]
    assert set(p) == {"tagId", "tagName", "probability", "boundingBox"}
    assert p["tagId"] in [t["id"] for t in m["labels"]]
    assert all(0 <= v <= 1 for v in p["boundingBox"].values())
    assert sum(c["count"] for c in by_id["counts"]) == by_id["totalCount"] == len(by_id["predictions"])
    assert by_id["image"] == {"width": 256, "height": 256}
    # roll back = publish the older one
    assert api.post(f"/models/{m['id']}/versions/1/publish").json()["published"] == 1
    assert api.post(detect_url(m), json={"content": b64(data)}).json()["version"] == 1
    assert api.post(f"/models/{m['id']}/unpublish").status_code == 200
    assert api.post(detect_url(m), json={"content": b64(data)}).status_code == 409
    assert api.post(f"/models/{m['id']}/unpublish").status_code == 409
    assert api.post(f"/models/{m['id']}/versions/9/publish").status_code == 404


def test_threshold_max_results_and_label_filter(trained):
    api, m = trained
    api.post(f"/models/{m['id']}/versions/2/publish")
    data = b64(shapes_image(6)[0])
    everything = api.post(detect_url(m), json={"content": data, "threshold": 0}).json()
    assert everything["totalCount"] > 3
    probs = [p["probability"] for p in everything["predictions"]]
    assert probs == sorted(probs, reverse=True)
    cut = probs[len(probs) // 2]
    above = api.post(detect_url(m), json={"content": data}, params={"threshold": cut}).json()
    assert above["predictions"] and all(p["probability"] >= cut for p in above["predictions"])
    assert api.post(detect_url(m), json={"content": data}, params={"threshold": 1}).json()["totalCount"] == 0
    top2 = api.post(detect_url(m), json={"content": data}, params={"threshold": 0, "maxResults": 2}).json()
    assert top2["predictions"] == everything["predictions"][:2]
    only = api.post(detect_url(m), json={"content": data}, params={"threshold": 0, "labels": "circle"}).json()
    assert {p["tagName"] for p in only["predictions"]} == {"circle"}
    assert [c["tagName"] for c in only["counts"]] == ["circle"]
    r = api.post(detect_url(m), json={"content": data}, params={"labels": "kiwi"})
    assert r.status_code == 400 and "unknown labels ['kiwi']" in r.json()["detail"]
    assert api.post(detect_url(m), json={"content": data}, params={"threshold": 2}).status_code == 400


def test_bad_images_are_400_and_batch_answers_each(trained):
    api, m = trained
    api.post(f"/models/{m['id']}/versions/2/publish")
    r = api.post(detect_url(m), content=b"not an image", headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 415 and "not a recognised image" in r.json()["detail"]
    r = api.post(detect_url(m), json={"content": "@@@"})
    assert r.status_code == 400 and "not valid base64" in r.json()["detail"]
    good = b64(shapes_image(7)[0])
    r = api.post(f"/models/{m['id']}/detect/batch", params={"threshold": 0},
                 json={"images": [{"name": "a", "content": good}, {"name": "bad", "content": b64(b"junk")},
                                  {"name": "c", "content": good}]})
    assert r.status_code == 200
    res = r.json()["results"]
    assert [x["status"] for x in res] == ["ok", "error", "ok"]
    assert res[1]["error"]["status"] == 415 and res[0]["result"]["predictions"] == res[2]["result"]["predictions"]
    r = api.post(f"/models/{m['id']}/detect/batch", files=[("files", ("a.jpg", shapes_image(7)[0], "image/jpeg")),
                                                          ("files", ("b.jpg", b"\xff\xd8\xff", "image/jpeg"))])
    assert [x["status"] for x in r.json()["results"]] == ["ok", "error"]


def test_concurrent_detects_during_publish_switches(trained):
    api, m = trained
    api.post(f"/models/{m['id']}/versions/1/publish")
    data = b64(shapes_image(8)[0])
    results, errors = [], []

    def client():
        for _ in range(6):
            r = api.post(detect_url(m), json={"content": data})
            (results if r.status_code == 200 else errors).append((r.status_code, r.text))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for version in (2, 1, 2):
        assert api.post(f"/models/{m['id']}/versions/{version}/publish").status_code == 200
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 24
    cache = api.app.odconnect.predictors
    assert cache.loads <= 2  # each version was loaded once, never per request


def test_loading_and_every_forward_pass_run_on_the_model_thread(trained):
    """One thread owns the models, so the process keeps one OpenMP team (see model_thread)."""
    from connector.inference.model_thread import ThreadBoundPredictor
    api, m = trained
    api.post(f"/models/{m['id']}/versions/1/publish")
    parts = api.app.odconnect
    predictor = parts.predictors.get(api.get(f"/models/{m['id']}/versions/1").json()["id"])
    assert isinstance(predictor, ThreadBoundPredictor)
    seen = set()
    hook = predictor.predictor.model.register_forward_pre_hook(lambda *_: seen.add(threading.get_ident()))
    try:
        data = b64(shapes_image(8)[0])
        threads = [threading.Thread(target=api.post, args=(detect_url(m),), kwargs={"json": {"content": data}})
                   for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert api.post(f"/models/{m['id']}/quick-test", json={"content": data}).status_code == 200
    finally:
        hook.remove()
    assert seen == {parts.model_thread.ident}


def test_export_zip_holds_config_weights_and_labels(trained):
    api, m = trained
    r = api.get(f"/models/{m['id']}/versions/1/export")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert {"config.yaml", "model_final.pth"} <= set(names)


def test_torchscript_export_matches_the_predictor(trained):
    api, m = trained
    r = api.get(f"/models/{m['id']}/versions/1/export", params={"format": "torchscript"})
    assert r.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    assert "model.ts" in archive.namelist()
    traced = torch.jit.load(io.BytesIO(archive.read("model.ts")))
    folder = Path(api.app.odconnect.store.artifacts_root) / f"model-{m['id']}" / "v1"
    predictor = api.app.odconnect.predictors.get(
        api.get(f"/models/{m['id']}/versions/1").json()["id"])
    image = Image.open(io.BytesIO(shapes_image(4)[0])).convert("RGB").resize((128, 128))
    chw = torch.as_tensor(np.asarray(image).copy()).permute(2, 0, 1).float()
    if predictor.cfg.INPUT.FORMAT == "BGR":
        chw = chw.flip(0)
    boxes, classes, scores, _ = traced(chw)
    expected = predictor.predict(image, min_score=0.0)
    assert len(expected) == len(scores) > 0
    assert torch.allclose(scores, torch.tensor([d.score for d in expected]), atol=1e-4)
    assert (folder / "model.ts").exists()  # traced once, kept beside the weights
    # the plain export does not carry the large traced file
    plain = zipfile.ZipFile(io.BytesIO(api.get(f"/models/{m['id']}/versions/1/export").content))
    assert "model.ts" not in plain.namelist()


def test_onnx_export_zip_holds_the_graph_and_its_documentation(trained):
    import json
    api, m = trained
    r = api.get(f"/models/{m['id']}/versions/1/export", params={"format": "onnx"})
    assert r.status_code == 200, r.text
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    names = set(archive.namelist())
    assert {"config.yaml", "model_final.pth", "model.onnx", "onnx.json"} <= names and "model.ts" not in names
    meta = json.loads(archive.read("onnx.json"))
    assert meta["architecture"] == "retinanet" and meta["labels"] == [t["name"] for t in m["labels"]]
    assert meta["input"]["resize"]["min_size"] == 128
    plain = zipfile.ZipFile(io.BytesIO(api.get(f"/models/{m['id']}/versions/1/export").content)).namelist()
    assert "model.onnx" not in plain and "onnx.json" not in plain
    assert api.get(f"/models/{m['id']}/versions/1/export", params={"format": "tflite"}).status_code == 400


def test_a_restarted_server_warms_the_published_version(trained):
    from connector.app import create_app
    api, m = trained
    api.post(f"/models/{m['id']}/versions/2/publish")
    version_id = api.get(f"/models/{m['id']}/versions/2").json()["id"]
    app = create_app(api.app.odconnect.config)
    try:
        cache = app.odconnect.predictors
        deadline = time.time() + 60
        while version_id not in cache:
            assert time.time() < deadline, "published version was not warmed"
            time.sleep(0.2)
        assert cache.loads == 1
    finally:
        app.odconnect.close()
