"""The promotion gate, fired by a real APScheduler every two seconds: skip without new data, keep
the published version when the new one is not better by the margin, publish when it is; gated
manual runs; every firing and gated run in the history; one claim per scheduled time."""
from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import select

from tests.conftest import Api
from tests.test_inference_api import INFER
from tests.test_training_api import TINY
from tests.training_data import LABELS, poll, upload_shapes

pytestmark = pytest.mark.slow

# INFER keeps every detection, so that even two-iteration versions have scores above 0 to compare
# webhooks to this machine: the events are read from the store, nothing needs to receive them
GATE = {**INFER, "scheduler": {"cron_seconds": True}, "webhooks": {"allow_loopback": True}}
EVERY_2S = "*/2 * * * * *"  # second minute hour day month weekday


def history(api, m, **params):
    r = api.get(f"/models/{m['id']}/schedule/history", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(api, m, done, timeout=180.0):
    """The newest history entry for which done(entry) holds, polling the API."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [e for e in history(api, m) if done(e)]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no such history entry within {timeout} s: {history(api, m)}")


def schedule(api, m, **body):
    r = api.put(f"/models/{m['id']}/schedule", json={"cron": EVERY_2S, **body})
    assert r.status_code == 200, r.text
    return r.json()


def published_deliveries(app) -> list[dict]:
    from model_store.schema import WebhookDelivery
    with app.odconnect.store.transaction() as s:
        return [d.payload for d in s.scalars(select(WebhookDelivery).where(WebhookDelivery.event == "versionPublished")
                                              .order_by(WebhookDelivery.id))]


def test_schedule_gate_skips_keeps_and_publishes(make_app):
    api = Api(make_app(**GATE))
    app = api.app
    m = api.model("shapes", LABELS)
    upload_shapes(api, m, 6)
    api.put(f"/models/{m['id']}/draft", json={"settings": {"maxIterations": 2}})
    r = api.post("/webhooks/version-published", json={"callbackUrl": "http://127.0.0.1:9/hook",
                                                       "modelId": str(m["id"])})
    assert r.status_code == 201, r.text

    # a manual run gated with `always`: version 1 is published by the gate, through the publish service
    r = api.post(f"/models/{m['id']}/train", json={"publish": "always"})
    assert poll(api, r.headers["Location"])["status"] == "succeeded"
    first = wait_for(api, m, lambda e: e["outcome"] != "training")
    assert (first["trigger"], first["outcome"], first["version"], first["publishedVersion"]) == ("api", "published", 1, None)
    assert api.get(f"/models/{m['id']}").json()["publishedVersionId"] is not None
    v1 = api.get(f"/models/{m['id']}/versions/1").json()
    assert v1["published"] and v1["id"] in app.odconnect.predictors  # warmed as by a publish by hand
    assert [p["version"] for p in published_deliveries(app)] == [1]

    # the schedule fires every 2 s; the data has not changed since version 1
    sch = schedule(api, m, publish="ifBetter", publishMargin=100)
    assert (sch["publish"], sch["publishMargin"]) == ("ifBetter", 100)
    # a firing's entry reads "training" from its claim until it knows there is nothing to train
    skipped = wait_for(api, m, lambda e: e["trigger"] == "schedule" and e["outcome"] != "training")
    assert skipped["outcome"] == "skipped" and skipped["detail"] == "no new data since version 1"
    assert skipped["runId"] is None and skipped["firedBy"] == app.odconnect.scheduler.lease.holder
    assert api.get(f"/models/{m['id']}/schedule").json()["lastOutcome"] == "skipped: no new data since version 1"

    # new data, margin 100: version 2 trains, is compared on the same images, and the published one stays
    schedule(api, m, enabled=False)
    upload_shapes(api, m, 2, start=70)
    schedule(api, m, publish="ifBetter", publishMargin=100)
    started = wait_for(api, m, lambda e: e["runId"] is not None and e["trigger"] == "schedule")
    schedule(api, m, publish="ifBetter", publishMargin=100, enabled=False)
    run = poll(api, f"/api/v1/models/{m['id']}/runs/{started['runId']}")
    assert run["status"] == "succeeded" and run["trigger"] == "schedule"
    kept = wait_for(api, m, lambda e: e["id"] == started["id"] and e["outcome"] != "training")
    v2 = api.get(f"/models/{m['id']}/versions/2").json()
    assert kept["outcome"] == "kept" and "kept the published version" in kept["detail"]
    assert (kept["version"], kept["publishedVersion"], kept["newScore"]) == (2, 1, v2["performanceScore"])
    assert kept["publishedScore"] is not None and kept["publishMargin"] == 100
    assert kept["comparedOn"]["source"] == "heldOut" and kept["comparedOn"]["images"] == v2["metrics"]["evalImages"] > 0
    assert api.get(f"/models/{m['id']}/versions/published").json()["number"] == 1
    assert [p["version"] for p in published_deliveries(app)] == [1]
    # the fairness check, redone here: version 1 scored on version 2's held-out images
    assert rescore(app, m, version=1, on_held_out_of=2) == kept["publishedScore"]
    assert kept["comparedOn"]["seenByPublished"] == seen_by(app, m, version=1, on_held_out_of=2)

    # margin -100 ("better" whatever the scores): version 3 is published by the gate
    upload_shapes(api, m, 2, start=80)
    schedule(api, m, publish="ifBetter", publishMargin=-100)
    started = wait_for(api, m, lambda e: e["runId"] is not None and e["id"] > kept["id"])
    schedule(api, m, publish="ifBetter", publishMargin=-100, enabled=False)
    published = wait_for(api, m, lambda e: e["id"] == started["id"] and e["outcome"] != "training")
    assert published["outcome"] == "published", published
    assert (published["version"], published["publishedVersion"]) == (3, 1)
    assert api.get(f"/models/{m['id']}/versions/published").json()["number"] == 3
    assert [p["version"] for p in published_deliveries(app)] == [1, 3]
    assert published_deliveries(app)[-1]["previousVersion"] == 1

    # a manual retrain with `never` trains without publishing, and says so
    r = api.post(f"/models/{m['id']}/versions/3/retrain", json={"publish": "never"})
    assert poll(api, r.headers["Location"])["status"] == "succeeded"
    never = wait_for(api, m, lambda e: e["trigger"] == "retrain" and e["outcome"] != "training")
    assert (never["outcome"], never["version"], never["publishedVersion"]) == ("trained", 4, 3)
    assert api.get(f"/models/{m['id']}/versions/published").json()["number"] == 3

    # with an evaluation dataset, both versions are scored on it
    ev = api.post(f"/models/{m['id']}/datasets", json={"name": "holdout", "kind": "evaluation"}).json()["id"]
    upload_shapes(api, m, 3, start=200, dataset_id=ev)
    r = api.post(f"/models/{m['id']}/train", json={"evaluationDatasetId": ev, "publish": "ifBetter",
                                                    "publishMargin": 100})
    assert poll(api, r.headers["Location"])["status"] == "succeeded"
    on_eval = wait_for(api, m, lambda e: e["trigger"] == "api" and e["version"] == 5 and e["outcome"] != "training")
    assert on_eval["outcome"] == "kept" and on_eval["publishedVersion"] == 3
    assert on_eval["comparedOn"] == {"source": "evaluationDataset", "images": 3, "seenByPublished": 0}

    # the history, newest first: every firing and gated run, each scheduled time once
    entries = history(api, m, limit=500)
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    fired = [e for e in entries if e["trigger"] == "schedule"]
    times = [e["scheduledFor"] for e in fired]
    assert len(times) == len(set(times)) and all(dt.datetime.fromisoformat(t).second % 2 == 0 for t in times)
    assert {e["outcome"] for e in fired} <= {"skipped", "kept", "published"}
    runs = {r["id"]: r for r in api.get(f"/models/{m['id']}/runs").json()}
    assert all(runs[e["runId"]]["trigger"] == e["trigger"] for e in entries if e["runId"])
    assert [e["trigger"] for e in entries if e["trigger"] != "schedule"] == ["api", "retrain", "api"]
    assert sum(1 for e in fired if e["runId"]) == 2  # two firings trained; the others skipped
    assert history(api, m, limit=1) == entries[:1]


def rescore(app, m, version: int, on_held_out_of: int) -> float:
    """Score `version` on the held-out images of `on_held_out_of`, with the evaluation code."""
    from model_store.schema import Image, Version
    from connector.modeling.artifacts import VersionFiles
    from connector.modeling.boxes import fraction_to_pixels
    from connector.modeling.records import ImageRecord
    from connector.training import score_version
    store = app.odconnect.store
    with store.transaction() as s:
        versions = {v.number: v for v in s.scalars(select(Version).where(Version.model_id == m["id"]))}
        target = versions[on_held_out_of]
        labels = target.labels
        records = []
        for image_id in target.data_snapshot["heldOut"]:
            img = s.get(Image, image_id)
            boxes = tuple((labels.index(r.label.name), *fraction_to_pixels(r.left, r.top, r.width, r.height,
                                                                            img.width, img.height))
                          for r in img.regions if r.approved)
            records.append(ImageRecord(img.id, str(store.blobs.path(img.sha256)), img.width, img.height, boxes))
        files = VersionFiles.at(versions[version].artifact_dir)
    return score_version(files.config, files.weights, records, labels)["score"]


def seen_by(app, m, version: int, on_held_out_of: int) -> int:
    """How many held-out images of `on_held_out_of` the version `version` trained on."""
    from model_store.schema import Version
    with app.odconnect.store.transaction() as s:
        snaps = {v.number: v.data_snapshot for v in s.scalars(select(Version).where(Version.model_id == m["id"]))}
    trained = set(snaps[version]["train"]) - set(snaps[version]["heldOut"])
    return len(trained & set(snaps[on_held_out_of]["heldOut"]))


def test_a_scheduled_time_is_claimed_once_across_schedulers(make_app, tmp_path):
    """Two apps on one database (as two processes would be): the second to fire a scheduled time
    the first already fired does nothing, even when both think they lead."""
    first = Api(make_app(root=tmp_path / "shared", **GATE))
    second = Api(make_app(root=tmp_path / "shared", **GATE))
    m = first.model("shapes", LABELS)
    first.put(f"/models/{m['id']}/schedule", json={"cron": "0 3 * * *"})
    assert first.app.odconnect.scheduler.is_leader and not second.app.odconnect.scheduler.is_leader
    when = dt.datetime(2030, 1, 2, 3, 0, tzinfo=dt.timezone.utc)
    assert first.app.odconnect.scheduler.fire(m["id"], when).startswith("failed: not started: the data check")
    assert second.app.odconnect.scheduler.fire(m["id"], when) == (
        "not fired: the firing scheduled for 2030-01-02 03:00:00 UTC was claimed by another process")
    entries = history(second, m)
    assert len(entries) == 1 and entries[0]["scheduledFor"] == "2030-01-02T03:00:00Z"
    assert entries[0]["firedBy"] == first.app.odconnect.scheduler.lease.holder


@pytest.mark.parametrize("body, needle", [
    ({"cron": "* * * * * *"}, "five fields"),  # seconds need scheduler.cron_seconds
    ({"cron": "0 3 * * *", "publish": "sometimes"}, "publish"),
    ({"cron": "0 3 * * *", "publishMargin": 101}, "publishMargin"),
])
def test_schedule_settings_are_validated(make_app, body, needle):
    api = Api(make_app(**TINY))
    m = api.model("shapes", LABELS)
    r = api.put(f"/models/{m['id']}/schedule", json=body)
    assert r.status_code == 400 and needle in r.json()["detail"], r.text
    assert api.get(f"/models/{m['id']}/schedule").status_code == 404
    r = api.post(f"/models/{m['id']}/train", json={"publish": "sometimes"})
    assert r.status_code == 400 and r.json()["title"] == "Bad Request"
    assert api.get(f"/models/{m['id']}/schedule/history").json() == []
    assert api.get("/models/999/schedule/history").status_code == 404
