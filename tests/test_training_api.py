"""Real, tiny Detectron2 runs through the API: 202 -> poll -> version; cancel; budget; failures; restart."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from tests.conftest import Api, store_snapshot
from tests.training_data import LABELS, api_path, poll, upload_shapes

pytestmark = pytest.mark.slow

TINY = {
    "training": {
        "default_preset": "scratch",
        "retry_after_seconds": 1,
        # 128 px images and batch 2 keep one iteration well under a second on 2 cores.
        "overrides": {"INPUT.MIN_SIZE_TRAIN": (128,), "INPUT.MAX_SIZE_TRAIN": 160,
                      "INPUT.MIN_SIZE_TEST": 128, "INPUT.MAX_SIZE_TEST": 160, "SOLVER.IMS_PER_BATCH": 2},
    },
    "data_check": {"min_images_per_label": 3},
}


@pytest.fixture
def tapi(make_app):
    return Api(make_app(**TINY))


def shapes_model(api, n=8, name="shapes"):
    m = api.model(name, LABELS)
    upload_shapes(api, m, n)
    return m


def start(api, m, body=None, status=202):
    r = api.post(f"/models/{m['id']}/train", json=body or {})
    assert r.status_code == status, r.text
    return r


def artifact_dirs(api) -> list[Path]:
    return sorted(p for p in api.app.odconnect.store.artifacts_root.rglob("*") if p.is_dir())


def test_train_poll_version_and_weights_load(tapi):
    from connector.modeling.predictor import Predictor
    m = shapes_model(tapi)
    r = start(tapi, m, {"maxIterations": 4, "seed": 1})
    assert r.json()["status"] == "queued"
    assert r.headers["Location"] == f"http://testserver/api/v1/models/{m['id']}/runs/{r.json()['id']}"
    assert r.headers["Retry-After"] == "1"
    run = poll(tapi, r.headers["Location"])
    assert run["status"] == "succeeded", run
    assert run["version"] == 1 and run["progress"]["iteration"] == 4
    v = tapi.get(f"/models/{m['id']}/versions/1").json()
    assert v["lastTrained"] is True and v["published"] is False
    assert v["labels"] == list(LABELS) and v["settings"]["maxIterations"] == 4
    assert set(v["metrics"]["perLabel"]) == set(LABELS)
    assert 0 <= v["performanceScore"] <= 100 and v["metrics"]["evalImages"] >= 2
    assert any("optimistic" in a for a in v["metrics"]["advice"])
    assert v["startedFrom"] == "scratch" and v["iterations"] == 4 and len(v["dataHash"]) == 64
    assert v["metrics"]["keptIteration"] in (2, 3, 4)  # snapshots at 2 and 3 compete with the last
    assert tapi.get(f"/models/{m['id']}/versions/lastTrained").json()["number"] == 1
    assert tapi.get(f"/models/{m['id']}").json()["lastTrainedVersionId"] == v["id"]
    # the weights are for inference only and load into a predictor
    folder = Path(tapi.app.odconnect.store.artifacts_root) / f"model-{m['id']}" / "v1"
    state = torch.load(folder / "model_final.pth", weights_only=True)
    assert set(state) == {"model"}
    predictor = Predictor(folder / "config.yaml", folder / "model_final.pth")
    assert predictor.labels == list(LABELS)
    from PIL import Image
    assert isinstance(predictor.predict(Image.new("RGB", (256, 256))), list)
    assert not list(tapi.app.odconnect.store.artifacts_root.glob(".run-*"))


def test_one_active_run_then_cancel_keeps_nothing(tapi):
    m = shapes_model(tapi)
    r = start(tapi, m, {"maxIterations": 100000, "budgetMinutes": 30})
    location = r.headers["Location"]
    deadline = time.time() + 60
    while tapi.get(api_path(location)).json()["status"] != "training":
        assert time.time() < deadline
        time.sleep(0.2)
    second = start(tapi, m, status=409)
    assert second.headers["Location"] == location and "already has run" in second.json()["detail"]
    t0 = time.time()
    c = tapi.post(api_path(location) + "/cancel")
    assert c.status_code == 202
    run = poll(tapi, location, timeout=30)
    assert run["status"] == "canceled" and time.time() - t0 < 15
    assert run["versionId"] is None
    assert tapi.get(f"/models/{m['id']}/versions").json() == []
    assert artifact_dirs(tapi) == []
    assert tapi.post(api_path(location) + "/cancel").status_code == 409


def test_runs_of_two_models_train_in_turn_and_the_worker_thread_ends(tapi):
    import threading
    first, second = shapes_model(tapi, name="first"), shapes_model(tapi, name="second")
    locations = [start(tapi, m, {"maxIterations": 3}).headers["Location"] for m in (first, second)]
    runs = [poll(tapi, location) for location in locations]
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    assert runs[1]["started"] >= runs[0]["finished"]  # one at a time, in the order asked
    # The worker exits with its queue, taking torch's OpenMP threads with it (they would slow
    # every later detect); a new run starts a new worker.
    deadline = time.time() + 10
    while any(t.name == "train" for t in threading.enumerate()):
        assert time.time() < deadline, "the training thread outlived its queue"
        time.sleep(0.05)
    assert poll(tapi, start(tapi, first, {"maxIterations": 2}).headers["Location"])["status"] == "succeeded"


def test_budget_stops_a_long_run_and_keeps_the_model(tapi):
    m = shapes_model(tapi)
    r = start(tapi, m, {"maxIterations": 100000, "budgetMinutes": 0.08})
    run = poll(tapi, r.headers["Location"])
    assert run["status"] == "succeeded" and run["reason"] == "stopped by budget"
    v = tapi.get(f"/models/{m['id']}/versions/1").json()
    assert 0 < v["iterations"] < 100000 and v["metrics"]["ap50"] is not None


def test_data_check_blocks_fast_with_its_message(make_app):
    api = Api(make_app(training=TINY["training"]))  # default rules: 5 images per label
    m = api.model("shapes", LABELS)
    upload_shapes(api, m, 20, boxes=False)
    before = store_snapshot(api.app)
    r = start(api, m, status=400)
    assert "the data check blocks training" in r.json()["detail"] and "'square' has no images" in r.json()["detail"]
    assert r.json()["dataCheck"]["canTrain"] is False
    upload_shapes(api, m, 8, start=100)  # 8 squares, 4 circles
    r = start(api, m, status=400)
    assert "label 'circle' has 4 images with boxes; at least 5 are needed" in r.json()["detail"]
    assert store_snapshot(api.app)["training_runs"] == before["training_runs"] == []


def test_corrupt_image_fails_the_run_with_its_id(tapi):
    m = shapes_model(tapi)
    img_id = tapi.get(f"/models/{m['id']}/datasets/{m['datasetId']}/images").json()["items"][3]["id"]
    sha = tapi.get(f"/models/{m['id']}/datasets/{m['datasetId']}/images/{img_id}").json()["sha256"]
    tapi.app.odconnect.store.blobs.path(sha).write_bytes(b"\xff\xd8 damaged on disk")
    run = poll(tapi, start(tapi, m, {"maxIterations": 2}).headers["Location"])
    assert run["status"] == "failed" and f"image {img_id} cannot be read" in run["reason"]
    assert artifact_dirs(tapi) == []


def test_bad_settings_are_rejected(tapi):
    m = shapes_model(tapi, n=6)
    for body, needle in [({"preset": "turbo"}, "unknown preset"), ({"budgetMinutes": 0}, "budgetMinutes"),
                         ({"evaluationDatasetId": m["datasetId"]}, "not an evaluation dataset"),
                         ({"weights": "nope.pth"}, "no weights file"), ({"baseVersion": "3"}, "no version 3")]:
        r = tapi.post(f"/models/{m['id']}/train", json=body)
        assert r.status_code in (400, 404) and needle in r.json()["detail"], (body, r.json())
    assert tapi.get(f"/models/{m['id']}/runs").json() == []


def test_restart_fails_training_runs_and_requeues_queued(make_app, tmp_path):
    import subprocess
    import sys
    from model_store.schema import TrainingRun, utcnow
    root = tmp_path / "restart"
    api = Api(make_app(root=root, **TINY))
    m = shapes_model(api)
    from connector.jobs.identity import process_id
    dead = subprocess.run([sys.executable, "-c", "from connector.jobs.identity import process_id; print(process_id())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # a process of this host, gone
    m2 = api.model("other", ["square"])
    with api.app.odconnect.store.transaction() as s:
        s.add(TrainingRun(model_id=m["id"], status="training", settings={"preset": "scratch"}, worker=dead))
        # a run trained by a live process (here: this one) is not the restarted server's to fail
        s.add(TrainingRun(model_id=m2["id"], status="training", settings={"preset": "scratch"}, worker=process_id(),
                          heartbeat_at=utcnow()))
    (api.app.odconnect.store.artifacts_root / ".run-1").mkdir()  # what a killed worker leaves behind
    api.app.odconnect.close()
    again = Api(make_app(root=root, **TINY))
    run = again.get(f"/models/{m['id']}/runs/1").json()
    assert run["status"] == "failed" and "server stopped" in run["reason"]
    assert again.get(f"/models/{m2['id']}/runs/2").json()["status"] == "training"
    assert artifact_dirs(again) == []
    # a new run can start: the store is consistent
    assert poll(again, start(again, m, {"maxIterations": 2}).headers["Location"])["status"] == "succeeded"


def test_draft_resume_discard_and_consumed_by_training(tapi):
    m = shapes_model(tapi)
    url = f"/models/{m['id']}/draft"
    assert tapi.get(url).status_code == 404
    d = tapi.put(url, json={"settings": {"maxIterations": 3, "seed": 7}}).json()
    assert d["settings"]["maxIterations"] == 3 and d["settings"]["preset"] == "scratch" and d["baseVersion"] is None
    d = tapi.put(url, json={"settings": {"seed": 8}}).json()
    assert d["settings"]["maxIterations"] == 3 and d["settings"]["seed"] == 8  # changes accumulate
    assert tapi.put(url, json={"settings": {"preset": "turbo"}}).status_code == 400
    assert tapi.delete(url).status_code == 204 and tapi.get(url).status_code == 404
    tapi.put(url, json={"settings": {"maxIterations": 3}})
    run = poll(tapi, start(tapi, m).headers["Location"])
    assert run["status"] == "succeeded" and run["settings"]["maxIterations"] == 3
    listed = tapi.get(f"/models/{m['id']}/runs").json()[-1]  # the list says what the run made, too
    assert (listed["version"], listed["performanceScore"]) == (run["version"], run["performanceScore"]) != (None, None)
    assert tapi.get(url).status_code == 404  # the draft became version 1
    d = tapi.put(url, json={"settings": {}}).json()  # a new draft starts from the last trained version
    assert d["baseVersion"] == 1 and d["settings"]["maxIterations"] == 3


def test_retrain_uses_current_data_and_base_version_warm_start(tapi):
    m = shapes_model(tapi, n=6)
    poll(tapi, start(tapi, m, {"maxIterations": 2, "seed": 3}).headers["Location"])
    upload_shapes(tapi, m, 4, start=50)
    r = tapi.post(f"/models/{m['id']}/versions/1/retrain", json={})
    assert r.status_code == 202 and r.json()["trigger"] == "retrain"
    run = poll(tapi, r.headers["Location"])
    v1, v2 = (tapi.get(f"/models/{m['id']}/versions/{n}").json() for n in (1, 2))
    assert run["version"] == 2 and v2["settings"] == v1["settings"]
    assert v2["imageCount"] == v1["imageCount"] + 4 and v2["dataHash"] != v1["dataHash"]
    run = poll(tapi, start(tapi, m, {"baseVersion": "1", "warmStart": True}).headers["Location"])
    v3 = tapi.get(f"/models/{m['id']}/versions/3").json()
    assert run["status"] == "succeeded" and v3["startedFrom"] == "version:1"
    assert [v["number"] for v in tapi.get(f"/models/{m['id']}/versions").json()] == [1, 2, 3]
    # archive: not the published one; the last-trained pointer moves back
    assert tapi.delete(f"/models/{m['id']}/versions/3").json()["archived"] is True
    assert tapi.get(f"/models/{m['id']}/versions/lastTrained").json()["number"] == 2


def test_weights_file_added_from_disk_is_used_and_reported(tapi, tmp_path):
    from connector.cli import main
    m = shapes_model(tapi, n=6)
    poll(tapi, start(tapi, m, {"maxIterations": 2}).headers["Location"])
    src = Path(tapi.app.odconnect.store.artifacts_root) / f"model-{m['id']}" / "v1" / "model_final.pth"
    cfg = tapi.app.odconnect.config
    config_file = tmp_path / "c.yaml"
    config_file.write_text(f"storage: {{root: {cfg['storage']['root']}}}\n")
    assert main(["--config", str(config_file), "weights", "add", str(src), "--name", "shapes-v1.pth"]) == 0
    assert main(["--config", str(config_file), "weights", "add", str(tmp_path / "missing.pth")]) == 2
    assert [w["name"] for w in tapi.get("/weights").json()] == ["shapes-v1.pth"]
    run = poll(tapi, start(tapi, m, {"maxIterations": 2, "weights": "shapes-v1.pth"}).headers["Location"])
    assert tapi.get(f"/models/{m['id']}/versions/{run['version']}").json()["startedFrom"] == "weights:shapes-v1.pth"


def test_presets_are_listed(tapi):
    names = [p["name"] for p in tapi.get("/presets").json()]
    assert {"fast", "balanced", "scratch", "accurate"} <= set(names)


def test_accurate_preset_needs_a_weights_file(tapi):
    m = shapes_model(tapi, n=6)
    r = tapi.post(f"/models/{m['id']}/train", json={"preset": "accurate"})
    assert r.status_code == 400 and "odconnect weights add" in r.json()["detail"]


def test_fast_preset_starts_from_the_packaged_imagenet_backbone(tapi):
    m = shapes_model(tapi, n=6)
    run = poll(tapi, start(tapi, m, {"preset": "fast", "maxIterations": 2}).headers["Location"])
    assert run["status"] == "succeeded", run
    v = tapi.get(f"/models/{m['id']}/versions/{run['version']}").json()
    assert v["startedFrom"] == "imagenet:efficientnet-lite0-57934424.pth" and v["settings"]["preset"] == "fast"
