"""Scheduled retraining on new data (APScheduler) and ML-assisted labeling (suggested boxes)."""
from __future__ import annotations

import pytest

from tests.conftest import Api
from tests.test_inference_api import INFER
from tests.test_training_api import TINY, poll
from tests.training_data import LABELS, upload_shapes

pytestmark = pytest.mark.slow


def test_schedule_is_validated_registered_and_retrains_only_on_new_data(make_app):
    api = Api(make_app(**TINY))
    m = api.model("shapes", LABELS)
    upload_shapes(api, m, 6)
    url = f"/models/{m['id']}/schedule"
    assert api.get(url).status_code == 404
    r = api.put(url, json={"cron": "not a cron"})
    assert r.status_code == 400 and "not valid" in r.json()["detail"]
    r = api.put(url, json={"cron": "0 3 * * *"})
    assert r.status_code == 200 and r.json()["nextRun"].endswith("03:00:00+00:00")
    scheduler = api.app.odconnect.scheduler
    assert scheduler.scheduler.get_job(f"retrain-{m['id']}") is not None
    api.put(f"/models/{m['id']}/draft", json={"settings": {"maxIterations": 2}})

    # what APScheduler calls when the cron fires
    assert scheduler.fire(m["id"]).startswith("started run")
    run = api.get(f"/models/{m['id']}/runs").json()[-1]
    assert run["trigger"] == "schedule"
    assert poll(api, f"/api/v1/models/{m['id']}/runs/{run['id']}")["status"] == "succeeded"
    assert scheduler.fire(m["id"]) == "skipped: no new data since version 1"
    assert api.get(url).json()["lastOutcome"] == "skipped: no new data since version 1"
    upload_shapes(api, m, 2, start=70)
    assert scheduler.fire(m["id"]).startswith("started run")
    assert poll(api, f"/api/v1/models/{m['id']}/runs/{run['id'] + 1}")["version"] == 2

    # paused, then deleted; a restart registers enabled schedules again
    assert api.put(url, json={"cron": "0 3 * * *", "enabled": False}).json()["nextRun"] is None
    assert scheduler.scheduler.get_job(f"retrain-{m['id']}") is None
    api.put(url, json={"cron": "*/5 * * * *"})
    root = api.app.odconnect.config["storage"]["root"]
    api.app.odconnect.close()
    again = Api(make_app(root=__import__("pathlib").Path(root), **TINY))
    assert again.get(url).json()["nextRun"] is not None
    assert again.delete(url).status_code == 204 and again.get(url).status_code == 404


def test_suggested_boxes_wait_for_approval_and_keep_human_boxes(make_app):
    api = Api(make_app(**INFER))
    m = api.model("shapes", LABELS)
    upload_shapes(api, m, 6)
    r = api.post(f"/models/{m['id']}/train", json={"maxIterations": 2})
    assert poll(api, r.headers["Location"])["status"] == "succeeded"
    new = upload_shapes(api, m, 1, start=90, boxes=False)[0]
    url = f"/models/{m['id']}/datasets/{m['datasetId']}/images/{new}"
    human = {"labelName": "square", "left": 0.1, "top": 0.1, "width": 0.2, "height": 0.2}
    api.put(url + "/regions", json={"regions": [human]})
    img = api.post(url + "/suggest", params={"threshold": 0}).json()
    suggested = [r for r in img["regions"] if r["source"] == "suggested"]
    assert suggested and all(not r["approved"] and r["probability"] is not None for r in suggested)
    assert [r for r in img["regions"] if r["source"] == "user"][0]["approved"] is True
    before = api.get(f"/models/{m['id']}/data-check").json()
    assert before["unapprovedBoxes"] == len(suggested)
    # suggesting again replaces the old suggestions, not the human box
    again = api.post(url + "/suggest", params={"threshold": 0}).json()
    assert len([r for r in again["regions"] if r["source"] == "suggested"]) == len(suggested)
    first = [r for r in again["regions"] if r["source"] == "suggested"][0]
    approved = api.post(url + "/regions/approve", json={"regionIds": [first["id"]]}).json()
    assert sum(r["approved"] for r in approved["regions"]) == 2  # the human box and the one approved
    after = api.get(f"/models/{m['id']}/data-check").json()
    assert after["boxes"] == before["boxes"] + 1 and after["unapprovedBoxes"] == len(suggested) - 1
    # a person redrawing the boxes keeps the suggestions still waiting for review...
    moved = {**human, "left": 0.3}
    kept = api.put(url + "/regions", json={"regions": [moved]}).json()["regions"]
    assert [r["left"] for r in kept if r["approved"]] == [0.3]
    assert sorted(r["id"] for r in kept if not r["approved"]) == sorted(
        r["id"] for r in approved["regions"] if not r["approved"])
    # ...unless asked to drop them
    clean = api.put(url + "/regions", params={"keepSuggestions": "false"}, json={"regions": [moved]}).json()
    assert [(r["approved"], r["left"]) for r in clean["regions"]] == [(True, 0.3)]
