"""Dataset-wide ML-assisted labeling as a job, with real tiny trained versions: 202 -> poll -> 200,
cancel, the labeling model trained first, the 409 when labels lack images, recovery after a restart,
and the loss curve of a run."""
from __future__ import annotations

import shutil
import threading
import time

import pytest
from sqlalchemy import func, select

from connector.app import create_app
from connector.modeling.boxes import iou_ltwh
from model_store.schema import Job, Region, utcnow
from tests.conftest import Api, make_config, store_snapshot
from tests.test_inference_api import INFER
from tests.training_data import LABELS, api_path, poll, trained_app, upload_shapes

pytestmark = pytest.mark.slow

# An untrained-looking tiny model scores every candidate near 0.01: threshold 0 keeps them, and
# five per image keep the store small.
SUGGEST = {**INFER,
           "training": {**INFER["training"], "overrides": {**INFER["training"]["overrides"],
                                                           "TEST.DETECTIONS_PER_IMAGE": 5}},
           "suggestions": {"labeling_settings": {"maxIterations": 2}, "retry_after_seconds": 1}}


def regions_by_image(api, m) -> dict[int, list[dict]]:
    items = api.get(f"/models/{m['id']}/datasets/{m['datasetId']}/images", params={"pageSize": 256}).json()["items"]
    return {i["id"]: i["regions"] for i in items}


def _ltwh(region: dict) -> tuple:
    return region["left"], region["top"], region["width"], region["height"]


def job_count(api) -> int:
    with api.app.odconnect.store.transaction() as s:
        return s.scalar(select(func.count(Job.id)))


def wait_running(api, path: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while api.get(path).json()["status"] != "running":
        assert time.time() < deadline, "the job never started"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory):
    """A store whose model "shapes" has one tiny trained version; trained once, copied per test."""
    root = tmp_path_factory.mktemp("suggest") / "store"
    app, _, m = trained_app(root, SUGGEST)
    app.odconnect.close()  # closed: the database files are whole when copied
    return root, m


def copy_store(trained_store, tmp_path):
    source, m = trained_store
    root = tmp_path / "store"
    shutil.copytree(source, root)  # the version's weights stay where they are, read-only
    return root, m


@pytest.fixture
def trained(trained_store, tmp_path):
    root, m = copy_store(trained_store, tmp_path)
    app = create_app(make_config(root, **SUGGEST))
    yield Api(app), m
    app.odconnect.close()


def test_suggest_a_dataset_as_a_job(trained):
    api, m = trained
    ds = m["datasetId"]
    labeled_before = regions_by_image(api, m)
    # a label renamed after training: the version keeps its names, suggestions land on the label by id
    circle = next(t for t in m["labels"] if t["name"] == "circle")
    api.patch(f"/models/{m['id']}/labels/{circle['id']}", json={"name": "disc"})
    assert api.get(f"/models/{m['id']}/versions/1").json()["labels"] == list(LABELS)
    new = upload_shapes(api, m, 5, start=100, boxes=False)

    r = api.post(f"/models/{m['id']}/datasets/{ds}/suggest", json={"threshold": 0})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["Location"] == f"http://testserver/api/v1/models/{m['id']}/jobs/{job['id']}"
    assert r.headers["Retry-After"] == "1"
    assert (job["kind"], job["status"], job["version"], job["datasetId"]) == ("suggest", "queued", 1, ds)
    assert job["params"] == {"images": "unlabeled", "threshold": 0, "version": None, "trainLabelingModel": False}
    done = poll(api, r.headers["Location"])
    assert done["status"] == "succeeded" and done["reason"] is None, done
    assert done["progress"] == {"done": 5, "total": 5, "phase": "suggesting"}
    assert done["started"] and done["finished"] and done["runId"] is None

    after = regions_by_image(api, m)
    stored = [r for i in new for r in after[i]]
    assert done["result"] == {"images": 5, "suggestions": len(stored), "skipped": 0}
    assert all(0 < len(after[i]) <= 5 for i in new)
    assert all(not r["approved"] and r["source"] == "suggested" and 0 <= r["probability"] <= 1 for r in stored)
    assert {r["labelName"] for r in stored} <= {"square", "disc"}
    # labeled images were not visited: their boxes are exactly as they were (label renamed aside)
    rename = lambda rs: [{**r, "labelName": "disc" if r["labelName"] == "circle" else r["labelName"]} for r in rs]  # noqa: E731
    assert {i: after[i] for i in labeled_before} == {i: rename(rs) for i, rs in labeled_before.items()}
    # suggestions never count as labeled
    check = api.get(f"/models/{m['id']}/data-check").json()
    assert check["unapprovedBoxes"] == len(stored) and check["imagesWithoutBoxes"] == 5
    assert check["boxes"] == sum(len(rs) for rs in labeled_before.values())

    # "all" with an explicit version: every image, approved boxes kept, old suggestions replaced
    r = api.post(f"/models/{m['id']}/datasets/{ds}/suggest", json={"images": "all", "threshold": 0.0, "version": "1"})
    done = poll(api, r.headers["Location"])
    assert done["status"] == "succeeded" and done["progress"]["total"] == done["progress"]["done"] == 13
    final = regions_by_image(api, m)
    for image_id, regions in labeled_before.items():
        assert [r["id"] for r in final[image_id] if r["approved"]] == [r["id"] for r in regions]
        assert any(not r["approved"] for r in final[image_id])
        # no suggestion repeats an approved box of its label (test_review_suggestions has the rule's cases)
        assert not [(s, a) for s in final[image_id] if not s["approved"] for a in regions
                    if a["labelId"] == s["labelId"] and iou_ltwh(_ltwh(s), _ltwh(a)) >= 0.5]
    assert sum(len(final[i]) for i in new) == sum(len([r for r in final[i] if not r["approved"]]) for i in new)
    assert done["result"]["suggestions"] == sum(1 for rs in final.values() for r in rs if not r["approved"])
    listed = api.get(f"/models/{m['id']}/jobs").json()
    assert [j["status"] for j in listed] == ["succeeded", "succeeded"]
    assert api.get(f"/models/{m['id']}/jobs/{listed[0]['id']}").status_code == 200

    # the loop goes on: approve above a probability, and the approved suggestions train
    review = api.post(f"/models/{m['id']}/datasets/{ds}/suggestions/review", json={"approveAbove": 0.0})
    assert review.json()["approved"] == done["result"]["suggestions"] and review.json()["images"] == 13
    r = api.post(f"/models/{m['id']}/train", json={"maxIterations": 2})
    run = poll(api, r.headers["Location"])
    assert run["status"] == "succeeded" and run["version"] == 2
    assert api.get(f"/models/{m['id']}/versions/2").json()["imageCount"] == 13  # the 5 new images train now

    # the run that made version 1 left its loss curve
    progress = api.get(f"/models/{m['id']}/runs/1").json()["progress"]
    curve = progress["lossHistory"]
    assert 1 <= len(curve) <= 200 and curve[-1][0] == progress["iteration"] == 2
    assert all(isinstance(i, int) and loss > 0 for i, loss in curve)


def test_bad_suggest_requests_change_nothing(trained):
    api, m = trained
    url = f"/models/{m['id']}/datasets/{m['datasetId']}/suggest"
    before, jobs_before = store_snapshot(api.app), job_count(api)
    for body, status, needle in (({"images": "some"}, 400, "some"), ({"threshold": 2}, 400, "maximum"),
                                 ({"version": "abc"}, 400, "abc"), ({"version": "7"}, 404, "no version 7"),
                                 ({"version": "published"}, 409, "no published version"),
                                 ({"extra": True}, 400, "extra")):
        r = api.post(url, json=body)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json") and needle in r.json()["detail"]
    assert api.post(f"/models/{m['id']}/datasets/99/suggest", json={}).status_code == 404
    assert api.get(f"/models/{m['id']}/jobs/99").status_code == 404
    assert api.post(f"/models/{m['id']}/jobs/99/cancel").status_code == 404
    assert store_snapshot(api.app) == before and job_count(api) == jobs_before == 0


def test_cancel_stops_within_an_image(trained):
    api, m = trained
    upload_shapes(api, m, 8, start=200, boxes=False)
    # Hold the model thread (as a long detect would), so the job is caught running, between images.
    gate = threading.Event()
    holder = threading.Thread(target=api.app.odconnect.model_thread.call, args=(gate.wait, 60))
    holder.start()
    try:
        r = api.post(f"/models/{m['id']}/datasets/{m['datasetId']}/suggest", json={"threshold": 0})
        path = api_path(r.headers["Location"])
        wait_running(api, path)
        again = api.post(f"/models/{m['id']}/datasets/{m['datasetId']}/suggest", json={})
        assert again.status_code == 409 and api_path(again.headers["Location"]) == path
        assert "already has job" in again.json()["detail"]
        c = api.post(path + "/cancel")
        assert c.status_code == 202 and c.json()["status"] == "running"
    finally:
        gate.set()
        holder.join()
    job = poll(api, r.headers["Location"])
    assert job["status"] == "canceled" and job["reason"] == "canceled by request"
    assert job["progress"]["done"] <= 1 and job["result"]["images"] <= 1
    assert job["progress"]["total"] in (None, 8)
    assert api.post(path + "/cancel").status_code == 409
    # the model can suggest again at once
    r = api.post(f"/models/{m['id']}/datasets/{m['datasetId']}/suggest", json={"threshold": 0})
    assert poll(api, r.headers["Location"])["progress"] == {"done": 8, "total": 8, "phase": "suggesting"}


def test_a_shutdown_fails_the_running_job(trained):
    api, m = trained
    upload_shapes(api, m, 5, start=500, boxes=False)
    gate = threading.Event()
    holder = threading.Thread(target=api.app.odconnect.model_thread.call, args=(gate.wait, 60))
    holder.start()
    r = api.post(f"/models/{m['id']}/datasets/{m['datasetId']}/suggest", json={"threshold": 0})
    wait_running(api, api_path(r.headers["Location"]))
    threading.Timer(0.5, gate.set).start()  # the forward pass in flight finishes, then the job stops
    api.app.odconnect.close()
    holder.join()
    with api.app.odconnect.store.transaction() as s:
        job = s.get(Job, r.json()["id"])
        assert job.status == "failed" and "server stopped" in job.reason and job.progress["done"] <= 1


def test_no_version_yet_trains_a_labeling_model_first(make_app):
    # training's own rule (15 images per label) would block; a labeling model needs 5
    api = Api(make_app(**{**SUGGEST, "data_check": {"min_images_per_label": 15}}))
    m = api.model("shapes", LABELS)
    url = f"/models/{m['id']}/datasets/{m['datasetId']}/suggest"
    upload_shapes(api, m, 8)           # squares in all 8, circles in 4
    unlabeled = upload_shapes(api, m, 3, start=300, boxes=False)
    api.put(f"/models/{m['id']}/draft", json={"settings": {"preset": "scratch", "seed": 7}})
    before = store_snapshot(api.app)
    r = api.post(url, json={})
    assert r.status_code == 409 and r.json()["labels"] == ["circle"]
    assert "every label has 5 images with approved boxes" in r.json()["detail"] and "'circle' has 4" in r.json()["detail"]
    assert store_snapshot(api.app) == before and job_count(api) == 0

    upload_shapes(api, m, 2, start=8)  # seed 9 adds the fifth circle
    r = api.post(url, json={"threshold": 0})
    assert r.status_code == 202, r.text
    assert r.json()["params"]["trainLabelingModel"] is True and r.json()["version"] is None
    job = poll(api, r.headers["Location"])
    assert job["status"] == "succeeded", job
    run = api.get(f"/models/{m['id']}/runs/{job['runId']}").json()
    assert run["trigger"] == "labeling" and run["status"] == "succeeded" and run["version"] == job["version"] == 1
    assert run["settings"]["maxIterations"] == 2 and run["settings"]["fromDraft"] is False
    assert api.get(f"/models/{m['id']}/draft").json()["settings"]["seed"] == 7  # the maker's draft is untouched
    assert job["progress"] == {"done": 3, "total": 3, "phase": "suggesting"}
    regions = regions_by_image(api, m)
    assert all(regions[i] and not any(r["approved"] for r in regions[i]) for i in unlabeled)
    assert api.get(f"/models/{m['id']}").json()["lastTrainedVersion"] == 1


def test_restart_fails_a_running_job_and_runs_a_queued_one(trained_store, tmp_path):
    root, m = copy_store(trained_store, tmp_path)
    app = create_app(make_config(root, **SUGGEST))
    api = Api(app)
    new = upload_shapes(api, m, 2, start=400, boxes=False)
    version_id = api.get(f"/models/{m['id']}/versions/1").json()["id"]
    app.odconnect.close()

    def leave(status):  # a job row as a server that stopped mid-way leaves it
        with app.odconnect.store.transaction() as s:
            job = Job(model_id=m["id"], dataset_id=m["datasetId"], kind="suggest", status=status,
                      params={"images": "unlabeled", "threshold": 0, "version": None, "trainLabelingModel": False},
                      progress={"done": 1 if status == "running" else 0, "total": 2, "phase": "suggesting"},
                      result={"images": int(status == "running"), "suggestions": 3 * int(status == "running"),
                              "skipped": 0}, version_id=version_id,
                      started_at=utcnow() if status == "running" else None)
            s.add(job)
            s.flush()
            return job.id

    running = leave("running")
    again = create_app(make_config(root, **SUGGEST))
    try:
        job = Api(again).get(f"/models/{m['id']}/jobs/{running}")
        assert job.status_code == 200 and job.json()["status"] == "failed"
        assert "server stopped" in job.json()["reason"] and job.json()["finished"]
    finally:
        again.odconnect.close()

    queued = leave("queued")
    again = create_app(make_config(root, **SUGGEST))
    try:
        api = Api(again)
        job = poll(api, f"/api/v1/models/{m['id']}/jobs/{queued}")
        assert job["status"] == "succeeded" and job["progress"]["done"] == 2
        with again.odconnect.store.transaction() as s:
            assert s.scalar(select(func.count(Region.id)).where(Region.image_id.in_(new))) == job["result"]["suggestions"] > 0
    finally:
        again.odconnect.close()
