"""Learning from production with a real trained version: capture (all, uncertain, sample), caps,
retention, review (approve, discard, delete-all), monitoring figures and the drift webhook.

One version is trained for the module, with an evaluation dataset of drawn shapes (its baseline).
Every test sends drawn shapes only, except the drift test, which sends the shift itself.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import random

import pytest
from PIL import Image
from sqlalchemy import select, update

from model_store.schema import CapturedImage
from tests.conftest import Api, b64, make_config
from tests.powerplatform.helpers import Receiver
from tests.test_inference_api import INFER
from tests.training_data import LABELS, poll, shapes_image, upload_shapes

pytestmark = pytest.mark.slow

# INFER's small images, on the `fast` preset (pretrained backbone) with a steep learning rate:
# 14 iterations make a model whose probabilities tell drawn shapes (0.3-0.9) from noise (~0.04),
# which the drift test needs (a 2-iteration scratch model scores every box 0.010). The raw
# weights: an average over 14 steps would still be mostly the initial ones.
PROD = {**INFER, "training": {**INFER["training"], "default_preset": "fast", "overrides": {
    **INFER["training"]["overrides"], "SOLVER.IMS_PER_BATCH": 4, "SOLVER.BASE_LR": 0.02, "SOLVER.WARMUP_ITERS": 4,
    "ODCONNECT.EMA.ENABLED": False}},
    "capture": {"sample_seed": 7},
    "monitoring": {"flush_seconds": 3600.0, "drift_min_images": 30, "min_baseline_images": 10},
    "webhooks": {"poll_seconds": 0.1, "allow_loopback": True}}  # the receiver listens on this machine
TRAIN_ITERATIONS = 14
EVAL_IMAGES = 16
_seeds = iter(range(1000, 100000))  # every test image is a new drawing


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fresh_shapes(n: int) -> list[bytes]:
    return [shapes_image(next(_seeds))[0] for _ in range(n)]


@pytest.fixture(scope="module")
def prod(tmp_path_factory):
    from connector.app import create_app
    app = create_app(make_config(tmp_path_factory.mktemp("prod"), **PROD))
    api = Api(app)
    m = api.model("shapes", LABELS)
    upload_shapes(api, m, 12)
    ev = api.post(f"/models/{m['id']}/datasets", json={"name": "eval", "kind": "evaluation"}).json()
    upload_shapes(api, m, EVAL_IMAGES, start=500, dataset_id=ev["id"])
    r = api.post(f"/models/{m['id']}/train", json={"maxIterations": TRAIN_ITERATIONS, "seed": 1,
                                                   "evaluationDatasetId": ev["id"]})
    assert poll(api, r.headers["Location"], timeout=900)["status"] == "succeeded"
    assert api.post(f"/models/{m['id']}/versions/1/publish").status_code == 200
    yield api, m
    app.odconnect.close()


@pytest.fixture
def p(prod):
    """The module's app with capture off and no captured image, as each test starts."""
    api, m = prod
    api.put(f"/models/{m['id']}/capture", json={"mode": "off", "maxImages": 1000, "retentionDays": 30,
                                                "bandLow": 0.3, "bandHigh": 0.7, "sampleRate": 0.1})
    assert api.delete(f"/models/{m['id']}/captures").status_code == 200
    return api, m


def detect(api, m, data: bytes, headers=None, **params) -> dict:
    r = api.post(f"/models/{m['id']}/detect", json={"content": b64(data)}, params=params, headers=headers or {})
    assert r.status_code == 200, r.text
    return r.json()


def settle(api) -> None:
    assert api.app.odconnect.production.wait_idle(60)


def captured(api, m, **params) -> list[dict]:
    r = api.get(f"/models/{m['id']}/captures", params={"pageSize": 256, **params})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def capture_on(api, m, **settings) -> dict:
    r = api.put(f"/models/{m['id']}/capture", json=settings)
    assert r.status_code == 200, r.text
    return r.json()


def without_duration(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "durationMs"}


# --- capture ---------------------------------------------------------------------------------------

def test_capture_is_off_by_default_and_detect_answers_the_same_with_it_on(p):
    api, m = p
    got = api.get(f"/models/{m['id']}/capture").json()
    assert got["mode"] == "off" and got["images"] == 0
    images = fresh_shapes(3)
    off = [detect(api, m, d, threshold=0.05) for d in images]
    settle(api)
    assert captured(api, m) == []
    capture_on(api, m, mode="all")
    on = [detect(api, m, d, threshold=0.05) for d in images]
    assert [without_duration(b) for b in on] == [without_duration(b) for b in off]
    settle(api)
    assert sorted(i["sha256"] for i in captured(api, m)) == sorted(sha(d) for d in images)


def test_all_keeps_each_image_once_with_suggestions_and_metadata(p):
    api, m = p
    settings = capture_on(api, m, mode="all")
    assert settings["mode"] == "all" and settings["bandLow"] == 0.3
    images = fresh_shapes(4)
    before = dt.datetime.now(dt.timezone.utc)
    answers = {sha(d): detect(api, m, d, headers={"x-ms-workflow-run-id": f"run-{i}"}, threshold=0.2)
               for i, d in enumerate(images)}
    detect(api, m, images[0], threshold=0.2)  # the same picture again: kept once
    batch = fresh_shapes(2)
    r = api.post(f"/models/{m['id']}/detect/batch", json={"images": [{"content": b64(d)} for d in batch]},
                 headers={"X-Correlation-Id": "order-42", "x-ms-workflow-run-id": "run-b"})
    assert r.status_code == 200 and [x["status"] for x in r.json()["results"]] == ["ok", "ok"]
    settle(api)
    after = dt.datetime.now(dt.timezone.utc)
    items = {i["sha256"]: i for i in captured(api, m)}
    assert set(items) == set(answers) | {sha(d) for d in batch}
    assert f'odconnect_captured_images_pending{{model="{m["name"]}"}} 6.0' in api.client.get("/metrics").text
    for i, d in enumerate(images):
        item = items[sha(d)]
        c = item["capture"]
        assert c["operation"] == "detect" and c["version"] == 1 and c["correlationId"] == f"run-{i}"
        assert before <= dt.datetime.fromisoformat(c["captured"]) <= after
        answer = answers[sha(d)]
        # the answer's boxes (threshold 0.2 < bandLow 0.3: the floor is the caller's threshold)
        want = sorted((pr["tagName"], pr["probability"], pr["boundingBox"]["left"], pr["boundingBox"]["top"])
                      for pr in answer["predictions"])
        got = sorted((rg["labelName"], rg["probability"], round(rg["left"], 5), round(rg["top"], 5))
                     for rg in item["regions"])
        assert [g[:2] for g in got] == [w[:2] for w in want]
        assert all(abs(g[2] - w[2]) < 1e-4 and abs(g[3] - w[3]) < 1e-4 for g, w in zip(got, want))
        assert all(not rg["approved"] and rg["source"] == "suggested" for rg in item["regions"])
        assert c["topProbability"] >= max([pr["probability"] for pr in answer["predictions"]], default=0) - 1e-4
        assert (item["width"], item["height"], item["format"]) == (256, 256, "jpeg")
        content = api.get(f"/models/{m['id']}/datasets/{item['datasetId']}/images/{item['id']}/content")
        assert content.status_code == 200 and content.content == d
    assert {items[sha(d)]["capture"]["correlationId"] for d in batch} == {"order-42"}
    assert {items[sha(d)]["capture"]["operation"] for d in batch} == {"batch"}
    datasets = api.get(f"/models/{m['id']}/datasets").json()
    prod_ds = [d for d in datasets if d["kind"] == "production"]
    assert len(prod_ds) == 1 and prod_ds[0]["imageCount"] == 6
    got = api.get(f"/models/{m['id']}/capture").json()
    assert got["datasetId"] == prod_ds[0]["id"] and got["images"] == 6
    assert got["outcomes"]["duplicate"] >= 1
    # production images never train: the data check counts the training datasets only
    assert api.get(f"/models/{m['id']}/data-check").json()["images"] == 12


def test_uncertain_keeps_images_without_detection_or_with_a_box_in_the_band(p):
    api, m = p
    images = fresh_shapes(14)
    seen = [sorted(pr["probability"] for pr in detect(api, m, d, threshold=0.0)["predictions"]) for d in images]
    # Cut points halfway between two answered (4-digit) probabilities, so that no box's raw score
    # can fall on either side of one through rounding.
    def cut(values, fraction):
        values = sorted(set(values))
        k = min(int(len(values) * fraction), len(values) - 2)
        return (values[k] + values[k + 1]) / 2
    threshold = cut([s[-1] for s in seen if s], 1 / 3)  # about a third of the images get no box
    everything = [x for s in seen for x in s]
    low, high = cut([x for x in everything if x > threshold], 0.3), cut([x for x in everything if x > threshold], 0.7)
    expected = {sha(d) for d, s in zip(images, seen)
                if not any(x >= threshold for x in s) or any(low <= x <= high for x in s)}
    assert 0 < len(expected) < len(images), "the band should split the images"
    capture_on(api, m, mode="uncertain", bandLow=low, bandHigh=high)
    for d in images:
        detect(api, m, d, threshold=threshold)
    settle(api)
    items = captured(api, m, order="uncertain")
    assert {i["sha256"] for i in items} == expected
    u = [i["capture"]["uncertainty"] for i in items]
    assert u == sorted(u, reverse=True)
    empty = {sha(d) for d, s in zip(images, seen) if not any(x >= threshold for x in s)}
    assert all(i["capture"]["uncertainty"] == 1.0 for i in items if i["sha256"] in empty)
    assert all(0 < i["capture"]["uncertainty"] <= 1 for i in items)


def test_sample_keeps_the_share_its_seeded_draws_pick(p):
    api, m = p
    capture_on(api, m, mode="sample", sampleRate=0.5)
    images = fresh_shapes(12)
    for d in images:
        detect(api, m, d)
    settle(api)
    draws = random.Random(PROD["capture"]["sample_seed"])  # the worker's first sample draws
    expected = {sha(d) for d in images if draws.random() < 0.5}
    assert {i["sha256"] for i in captured(api, m)} == expected and 0 < len(expected) < 12


def test_max_images_evicts_the_oldest_unreviewed_and_retention_purges(p):
    api, m = p
    blobs = api.app.odconnect.store.blobs
    capture_on(api, m, mode="all", maxImages=3)
    images = fresh_shapes(5)
    for d in images:
        detect(api, m, d)
    settle(api)
    assert {i["sha256"] for i in captured(api, m)} == {sha(d) for d in images[2:]}
    assert not blobs.exists(sha(images[0])) and not blobs.exists(sha(images[1]))
    # a person fixes the oldest one: reviewed images stay over the cap
    oldest = captured(api, m, order="oldest")[0]
    assert oldest["sha256"] == sha(images[2])
    r = api.put(f"/models/{m['id']}/datasets/{oldest['datasetId']}/images/{oldest['id']}/regions",
                json={"regions": [{"labelName": "square", "left": 0.1, "top": 0.1, "width": 0.2, "height": 0.2}]})
    assert r.status_code == 200
    more = fresh_shapes(2)
    for d in more:
        detect(api, m, d)
    settle(api)
    assert {i["sha256"] for i in captured(api, m)} == {sha(images[2]), sha(more[0]), sha(more[1])}
    assert api.get(f"/models/{m['id']}/capture").json()["outcomes"]["evicted"] >= 4
    # lowering the cap applies at once
    assert capture_on(api, m, maxImages=1)["images"] == 1
    assert [i["sha256"] for i in captured(api, m)] == [sha(images[2])]
    # retention: an image kept 31 days ago is purged by the background purge and by a settings change
    capture_on(api, m, maxImages=100)
    aged = fresh_shapes(2)
    for d in aged:
        detect(api, m, d)
    settle(api)
    store = api.app.odconnect.store
    ids = {i["sha256"]: i["id"] for i in captured(api, m)}
    with store.transaction() as s:
        s.execute(update(CapturedImage).where(CapturedImage.image_id == ids[sha(aged[0])])
                  .values(captured_at=dt.datetime.utcnow() - dt.timedelta(days=31)))
    assert api.app.odconnect.production.purge() == 1
    assert sha(aged[0]) not in {i["sha256"] for i in captured(api, m)} and not blobs.exists(sha(aged[0]))
    with store.transaction() as s:
        s.execute(update(CapturedImage).where(CapturedImage.image_id == ids[sha(aged[1])])
                  .values(captured_at=dt.datetime.utcnow() - dt.timedelta(days=8)))
    capture_on(api, m, retentionDays=7)
    assert sha(aged[1]) not in {i["sha256"] for i in captured(api, m)}


def test_approve_moves_images_with_their_boxes_into_training(p):
    api, m = p
    capture_on(api, m, mode="all")
    images = fresh_shapes(3)
    for d in images:
        detect(api, m, d, threshold=0.2)
    settle(api)
    items = {i["sha256"]: i for i in captured(api, m)}
    a, b, c = (items[sha(d)] for d in images)
    fixed = {"labelName": "circle", "left": 0.25, "top": 0.25, "width": 0.3, "height": 0.3}
    # a fix replaces the version's boxes (saving keeps waiting suggestions unless told not to)
    assert api.put(f"/models/{m['id']}/datasets/{a['datasetId']}/images/{a['id']}/regions",
                   json={"regions": [fixed]}, params={"keepSuggestions": "false"}).status_code == 200
    check_before = api.get(f"/models/{m['id']}/data-check").json()
    # all or nothing: an unknown id changes nothing
    r = api.post(f"/models/{m['id']}/captures/approve", json={"imageIds": [a["id"], 999999]})
    assert r.status_code == 404 and "999999" in r.json()["detail"]
    evaluation = next(d for d in api.get(f"/models/{m['id']}/datasets").json() if d["kind"] == "evaluation")
    r = api.post(f"/models/{m['id']}/captures/approve", json={"imageIds": [a["id"]], "datasetId": evaluation["id"]})
    assert r.status_code == 400 and "training dataset" in r.json()["detail"]
    r = api.post(f"/models/{m['id']}/captures/approve", json={"imageIds": [a["id"], b["id"]]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["moved"] == 2 and body["datasetId"] == m["datasetId"]
    moved_a = api.get(f"/models/{m['id']}/datasets/{m['datasetId']}/images/{a['id']}").json()
    assert [(x["labelName"], x["approved"], x["source"]) for x in moved_a["regions"]] == [("circle", True, "user")]
    moved_b = api.get(f"/models/{m['id']}/datasets/{m['datasetId']}/images/{b['id']}").json()
    assert len(moved_b["regions"]) == len(b["regions"]) and all(x["approved"] for x in moved_b["regions"])
    assert [(x["labelName"], x["probability"]) for x in moved_b["regions"]] == \
        [(x["labelName"], x["probability"]) for x in b["regions"]]
    assert [i["id"] for i in captured(api, m)] == [c["id"]]
    check = api.get(f"/models/{m['id']}/data-check").json()
    assert check["images"] == check_before["images"] + 2
    assert check["boxes"] == check_before["boxes"] + 1 + len(b["regions"])
    # an image already in training is a duplicate: the captured copy goes, the training one stays
    capture_on(api, m, mode="off")
    up = api.post(f"/models/{m['id']}/datasets/{c['datasetId']}/images",  # the same bytes again, by hand
                  json={"images": [{"name": "again.jpg", "content": b64(images[1])}]})
    again = up.json()["results"][0]["imageId"]
    r = api.post(f"/models/{m['id']}/captures/approve", json={"imageIds": [again]})
    assert r.json()["results"] == [{"imageId": again, "status": "duplicate", "trainingImageId": b["id"]}]
    assert api.get(f"/models/{m['id']}/datasets/{m['datasetId']}/images/{b['id']}").status_code == 200
    # the moved images' blobs stay when the production dataset is deleted
    api.delete(f"/models/{m['id']}/captures")
    assert api.app.odconnect.store.blobs.exists(sha(images[0]))


def test_discard_and_delete_all_remove_rows_and_unshared_blobs(p):
    api, m = p
    blobs = api.app.odconnect.store.blobs
    other = api.model("other-model", ["thing"])
    images = fresh_shapes(4)
    shared = images[3]  # also a training image of another model: its file must stay
    assert api.post(f"/models/{other['id']}/datasets/{other['datasetId']}/images",
                    json={"images": [{"content": b64(shared)}]}).status_code == 201
    capture_on(api, m, mode="all")
    for d in images:
        detect(api, m, d)
    settle(api)
    items = {i["sha256"]: i for i in captured(api, m)}
    assert len(items) == 4
    r = api.post(f"/models/{m['id']}/captures/discard", json={"imageIds": [items[sha(images[0])]["id"]]})
    assert r.json() == {"deleted": 1, "blobsDeleted": 1}
    assert not blobs.exists(sha(images[0]))
    r = api.delete(f"/models/{m['id']}/captures")
    assert r.status_code == 200 and r.json() == {"deleted": 3, "blobsDeleted": 2}
    assert captured(api, m) == [] and api.get(f"/models/{m['id']}/capture").json()["images"] == 0
    assert not blobs.exists(sha(images[1])) and not blobs.exists(sha(images[2])) and blobs.exists(sha(shared))
    with api.app.odconnect.store.transaction() as s:
        assert s.scalars(select(CapturedImage).where(CapturedImage.model_id == m["id"],
                                                     CapturedImage.status == "pending")).all() == []
    # captures still queued when everything is deleted are not written afterwards
    from connector.services import capture as capture_svc
    ctx = api.app.odconnect
    late = fresh_shapes(2)
    with ctx.production.lock:  # the writer waits on this lock, so the captures stay queued
        for d in late:
            detect(api, m, d)
        capture_svc.delete_all(ctx, m["id"])
    settle(api)
    assert captured(api, m) == [] and not blobs.exists(sha(late[0]))


def test_capture_settings_and_review_refuse_bad_input(p):
    api, m = p
    for body, needle in [({"mode": "sometimes"}, "mode"), ({"bandLow": 0.8, "bandHigh": 0.2}, "bandLow < bandHigh"),
                         ({"sampleRate": 0}, "sampleRate"), ({"maxImages": 0}, "maxImages"),
                         ({"retention": 3}, "retention")]:
        r = api.put(f"/models/{m['id']}/capture", json=body)
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json"), r.text
        assert needle in r.text
    assert api.get(f"/models/{m['id']}/capture").json()["mode"] == "off"
    assert api.get(f"/models/{m['id']}/captures", params={"order": "best"}).status_code == 400
    assert api.get(f"/models/{m['id']}/captures", params={"since": "yesterday"}).status_code == 400
    assert api.get(f"/models/{m['id']}/captures", params={"version": "7"}).status_code == 404
    assert api.post(f"/models/{m['id']}/captures/approve", json={"imageIds": []}).status_code == 400
    assert api.put("/models/nope/capture", json={"mode": "all"}).status_code == 404
    fresh = api.model("empty-model", ["x"])
    assert api.post(f"/models/{fresh['id']}/captures/discard", json={"imageIds": [1]}).status_code == 404
    assert api.get(f"/models/{fresh['id']}/captures").json()["items"] == []


# --- monitoring and drift ------------------------------------------------------------------------

def _today(api, m) -> dict:
    body = api.get(f"/models/{m['id']}/monitoring", params={"days": 1}).json()
    return next((f for f in body["figures"] if f["version"] == 1), {"requests": 0, "noDetection": 0, "labels": []})


def test_monitoring_counts_what_detect_answered(p):
    api, m = p
    before = _today(api, m)
    answers = [detect(api, m, d, threshold=0.3) for d in fresh_shapes(5)]
    after = _today(api, m)
    assert after["requests"] - before["requests"] == 5
    assert after["noDetection"] - before["noDetection"] == sum(a["totalCount"] == 0 for a in answers)
    counts = lambda f: {x["tagName"]: x["count"] for x in f["labels"]}  # noqa: E731
    for label in LABELS:
        answered = sum(c["count"] for a in answers for c in a["counts"] if c["tagName"] == label)
        assert counts(after).get(label, 0) - counts(before).get(label, 0) == answered
    body = api.get(f"/models/{m['id']}/monitoring").json()
    assert body["publishedVersion"] == 1 and body["days"] == 7
    base = body["baselines"][0]
    assert base["version"] == 1 and base["images"] == EVAL_IMAGES
    assert 0 <= base["noDetectionRate"] <= 1 and 0 < base["meanTopProbability"] <= 1
    assert api.get(f"/models/{m['id']}/monitoring", params={"days": 0}).status_code == 400


def noise_image(seed: int) -> bytes:
    """A picture unlike the training images: coloured noise, no shape."""
    img = Image.frombytes("RGB", (256, 256), random.Random(seed).randbytes(256 * 256 * 3))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_drift_fires_the_webhook_on_a_shift_and_not_without_one(p):
    api, m = p
    with Receiver() as rx:
        r = api.post("/webhooks/model-needs-attention", json={"callbackUrl": rx.url, "modelId": "shapes"})
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        # no shift: drawn shapes like the evaluation images (the other tests sent shapes too),
        # at least as many as the test needs
        for d in fresh_shapes(max(10, PROD["monitoring"]["drift_min_images"] - _today(api, m)["requests"])):
            detect(api, m, d)
        today = _today(api, m)
        assert today["drift"]["images"] >= 30 and today["drift"]["note"] is None
        assert today["drift"]["needsAttention"] is False and today["drift"]["pValue"] >= 0.01, today["drift"]
        api.app.odconnect.webhooks.wait_idle()
        assert rx.none_within(0.5)
        # a shift: pictures of noise, as many as all the shapes sent today
        noise = [noise_image(i) for i in range(max(30, today["requests"]))]
        for i in range(0, len(noise), 16):
            r = api.post(f"/models/{m['id']}/detect/batch", json={"images": [{"content": b64(d)} for d in noise[i:i + 16]]})
            assert r.status_code == 200 and {x["status"] for x in r.json()["results"]} == {"ok"}
        shifted = _today(api, m)
        assert shifted["drift"]["needsAttention"] is True and shifted["drift"]["pValue"] < 0.01, shifted["drift"]
        delivery = rx.get(timeout=30)
        event = json.loads(delivery["body"])
        import hmac
        expected = "sha256=" + hmac.new(secret.encode(), delivery["body"], hashlib.sha256).hexdigest()
        assert delivery["headers"]["X-Odconnect-Signature"] == expected
        assert event["event"] == "modelNeedsAttention" and event["modelId"] == m["id"] and event["version"] == 1
        assert event["code"] == "drift" and event["pValue"] < 0.01 and event["images"] == shifted["requests"]
        assert "Kolmogorov-Smirnov" in event["reason"] and event["monitoringUrl"].endswith(f"/models/{m['id']}/monitoring")
        # at most once per version and day
        for i in range(5):
            detect(api, m, noise_image(1000 + i))
        api.get(f"/models/{m['id']}/monitoring")
        api.app.odconnect.webhooks.wait_idle()
        assert rx.none_within(0.5)
        body = api.get(f"/models/{m['id']}/monitoring").json()
        assert len(body["attention"]) == 1 and body["attention"][0]["version"] == 1
        assert "Kolmogorov-Smirnov" in body["attention"][0]["reason"]
        # and for Prometheus, beside the API
        assert f'odconnect_attention_events{{model="{m["name"]}"}} 1.0' in api.client.get("/metrics").text
