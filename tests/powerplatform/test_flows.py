"""The example flows: everything they call exists in the connector, and they run against a live server.

A replayer (flows_examples/replay.py) executes each flow's odconnect actions in runAfter order over
real HTTP on 127.0.0.1, as the connector's Swagger 2.0 definition describes them, polling 202
answers like Power Automate; other connectors' actions are stubbed and their inputs checked.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from flows_examples.replay import (CONNECTOR, Connector, check_parameters, definition_of, is_connector,
                                   operations, replay)
from tests.conftest import KEY, b64
from tests.powerplatform.helpers import LiveServer, Receiver, assert_matches
from tests.test_inference_api import INFER
from tests.test_training_api import poll
from tests.training_data import shapes_image, trained_app

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SWAGGER = json.loads((ROOT / "openapi" / "apiDefinition.swagger.json").read_text())
FLOWS = {p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "flows_examples").glob("*.json"))}
# every candidate box passes (the tiny model scores low), so there is something to count and draw
CONFIG = {**INFER, "inference": {"default_threshold": 0.0},  # the receivers listen on 127.0.0.1:
          "webhooks": {"poll_seconds": 0.1, "backoff_base_seconds": 0.2, "allow_loopback": True}}
KNOWN_TYPES = {"OpenApiConnection", "OpenApiConnectionWebhook", "Recurrence", "Request", "If", "Compose",
               "Select", "Response"}


def flow(prefix: str) -> dict:
    return next(f for name, f in FLOWS.items() if name.startswith(prefix))


def walk(actions: dict):
    for name, action in actions.items():
        yield name, action
        if action["type"] == "If":
            yield from walk(action.get("actions", {}))
            yield from walk(action.get("else", {}).get("actions", {}))


def test_every_flow_calls_only_what_the_connector_has():
    assert len(FLOWS) >= 4
    ops = operations(SWAGGER)
    used = set()
    for name, f in FLOWS.items():
        definition = definition_of(f)
        assert definition["$schema"].endswith("workflowdefinition.json#") and len(definition["triggers"]) == 1
        assert CONNECTOR in f["properties"]["connectionReferences"], name
        steps = list(definition["triggers"].items()) + list(walk(definition["actions"]))
        for step, node in steps:
            assert node["type"] in KNOWN_TYPES, (name, step, node["type"])
            if node["type"].startswith("OpenApiConnection") and is_connector(node["inputs"]["host"]):
                op_id = node["inputs"]["host"]["operationId"]
                assert op_id in ops, (name, step, op_id)
                params = dict(node["inputs"].get("parameters", {}))
                if node["type"] == "OpenApiConnectionWebhook":  # the platform fills in the callback URL
                    assert ops[op_id][2].get("x-ms-trigger") == "single"
                    params["body/callbackUrl"] = "https://prod.logic.azure.com/callback"
                problems = check_parameters(SWAGGER, op_id, params)
                assert problems == [], (name, step)
                used.add(op_id)
    assert {"DetectObjects", "QuickTest", "TrainModel", "GetVersion", "PublishVersion",
            "OnTrainingRunFinished", "OnVersionPublished", "OnModelNeedsAttention", "SetCaptureSettings"} <= used
    # and the check itself bites
    assert check_parameters(SWAGGER, "DetectObjects", {"modelId": "x", "body/contnet": "x"}) \
        == ["DetectObjects: body has no property body/contnet"]
    assert check_parameters(SWAGGER, "PublishVersion", {"modelId": "x"}) \
        == ["PublishVersion: required parameter version is missing"]
    assert check_parameters(SWAGGER, "Nope", {}) == ["operation Nope is not in the connector"]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    app, api, m = trained_app(tmp_path_factory.mktemp("flows"), CONFIG)  # later runs inherit maxIterations
    assert api.post(f"/models/{m['id']}/versions/1/publish").status_code == 200
    with LiveServer(app) as server:
        yield SimpleNamespace(api=api, model=m, url=server.url, app=app)
    app.odconnect.close()


def connector(live) -> Connector:
    return Connector(SWAGGER, live.url, KEY, poll_timeout=180)


def test_a_new_file_is_detected_and_its_counts_posted(live):
    image, _ = shapes_image(11)
    asked = {}

    def get_file_content(params):
        asked.update(params)
        return {"statusCode": 200, "body": {"$content-type": "image/jpeg", "$content": b64(image)}}

    c = connector(live)
    run = replay(flow("a-"), c, {"body": {"{Identifier}": "b!file-11", "{Name}": "shape-11.jpg"}},
                 stubs={"Get_file_content": get_file_content})
    assert run.order == ["Get_file_content", "Detect_and_count_objects", "Select_counts", "Post_the_counts"]
    assert asked["id"] == "b!file-11"
    detect = run.actions["Detect_and_count_objects"]
    assert detect["status"] == "Succeeded" and c.log[0]["url"].startswith(live.url + "/api/v1/models/shapes/detect")
    body = detect["outputs"]["body"]
    assert_matches(SWAGGER, SWAGGER["paths"]["/models/{modelId}/detect"]["post"]["responses"]["200"]["schema"], body)
    direct = live.api.post("/models/shapes/detect", json={"content": b64(image)}).json()
    assert body["predictions"] == direct["predictions"] and body["totalCount"] > 0
    counts = ", ".join(f"{c['tagName']}: {c['count']}" for c in direct["counts"])
    message = run.actions["Post_the_counts"]["inputs"]["body/messageBody"]
    assert message == f"<p>shape-11.jpg: {direct['totalCount']} objects ({counts}), model shapes version 1</p>"


def test_power_apps_gets_the_drawn_picture(live):
    image, _ = shapes_image(12)
    run = replay(flow("b-"), connector(live), {"body": {"file": {"name": "photo.jpg", "contentBytes": b64(image)},
                                                        "text": "shapes"}})
    quick = run.actions["Quick_test"]
    assert quick["status"] == "Succeeded", quick["outputs"]
    schema = SWAGGER["paths"]["/models/{modelId}/quick-test"]["post"]["responses"]["200"]["schema"]
    assert_matches(SWAGGER, schema, quick["outputs"]["body"])
    answer = run.response["body"]
    assert answer["objects"] == str(quick["outputs"]["body"]["totalCount"])
    assert answer["annotatedimage"].startswith("data:image/png;base64,")
    png = Image.open(io.BytesIO(base64.b64decode(answer["annotatedimage"].split(",", 1)[1])))
    assert png.format == "PNG" and png.size == (256, 256)
    original = Image.open(io.BytesIO(image)).convert("RGB")
    assert png.convert("RGB").tobytes() != original.tobytes()  # the boxes are drawn on it


def test_an_exported_flow_runs_with_the_connectors_own_name(live):
    """The flow as `odconnect flows export` writes it into the solution, for a connector named as a
    tenant names it, replays like the example (its odconnect actions are found by that name)."""
    import zipfile
    from connector.powerplatform import flows
    name = "shared_odconnect-5f3c9e8d4b2a1c0d9e"
    zf = zipfile.ZipFile(io.BytesIO(flows.solution_zip(flows.load_examples(ROOT / "flows_examples"), name)))
    [path] = [n for n in zf.namelist() if n.startswith("Workflows/BPowerappsQuickTest-")]
    exported = json.loads(zf.read(path))
    image, _ = shapes_image(13)
    run = replay(exported, connector(live), {"body": {"file": {"name": "p.jpg", "contentBytes": b64(image)},
                                                      "text": "shapes"}}, connector_name=name)
    assert run.actions["Quick_test"]["status"] == "Succeeded"
    assert run.response["body"]["objects"] == str(run.actions["Quick_test"]["outputs"]["body"]["totalCount"])
    host = exported["properties"]["definition"]["actions"]["Quick_test"]["inputs"]["host"]
    assert host == {**host, "connectionName": name, "apiId": f"/providers/Microsoft.PowerApps/apis/{name}"}


def test_weekly_retrain_waits_for_the_run_and_publishes_only_if_better(live):
    api, m = live.api, live.model
    # no version published: GetVersion fails (404), the condition still runs and publishes
    assert api.post(f"/models/{m['id']}/unpublish").status_code == 200
    c = connector(live)
    run = replay(flow("c-"), c)
    train = run.actions["Train_a_new_version"]
    assert train["status"] == "Succeeded" and train["outputs"]["statusCode"] == 200
    new = train["outputs"]["body"]
    # it answered 202 and was polled at its Location (Retry-After apart) until the run had finished
    polls = train["outputs"]["polls"]
    calls = c.log[:polls + 1]
    assert polls >= 1 and (calls[0]["method"], calls[0]["status"]) == ("POST", 202)
    assert all(x["method"] == "GET" and x["url"].endswith(f"/runs/{new['id']}") for x in calls[1:])
    assert [x["status"] for x in calls[1:]] == [202] * (polls - 1) + [200]
    assert new["status"] == "succeeded" and new["version"] == 2
    assert_matches(SWAGGER, {"$ref": "#/definitions/TrainingRun"}, new)
    assert run.status("Get_the_published_version") == "Failed"
    assert run.actions["Get_the_published_version"]["outputs"]["statusCode"] == 404
    assert run.status("Publish_the_new_version") == "Succeeded" and run.status("Keep_the_published_version") is None
    assert api.get(f"/models/{m['id']}/versions/published").json()["number"] == 2
    # with version 2 published: publish version 3 only if it scores at least as well
    run = replay(flow("c-"), connector(live))
    third = run.actions["Train_a_new_version"]["outputs"]["body"]
    published = run.actions["Get_the_published_version"]["outputs"]["body"]
    assert third["version"] == 3 and published["number"] == 2
    better = (third["performanceScore"] or 0) >= (published["performanceScore"] if published["performanceScore"]
                                                  is not None else -1)
    assert (run.status("Publish_the_new_version") == "Succeeded") is better
    assert (run.status("Keep_the_published_version") == "Succeeded") is not better
    assert api.get(f"/models/{m['id']}/versions/published").json()["number"] == (3 if better else 2)


def test_training_finished_trigger_mails_the_score(live):
    api, m = live.api, live.model
    c = connector(live)
    trigger = definition_of(flow("d-"))["triggers"]["When_a_training_run_finishes"]
    with Receiver() as rx:
        created = c.subscribe(trigger, rx.url)  # what saving the flow does
        location, secret = created["headers"]["Location"], created["body"]["secret"]
        assert created["body"]["modelId"] == m["id"]
        r = api.post(f"/models/{m['id']}/train", json={})
        finished = poll(api, r.headers["Location"])
        got = rx.get(timeout=30)
        signature = "sha256=" + hmac.new(secret.encode(), got["body"], hashlib.sha256).hexdigest()
        assert got["headers"]["X-Odconnect-Signature"] == signature
        event = json.loads(got["body"])
        assert event["runId"] == finished["id"] and event["version"] == finished["version"]
        run = replay(flow("d-"), c, {"headers": got["headers"], "body": event})
        assert run.status("Send_the_score") == "Succeeded" and run.status("Send_the_failure") is None
        mail = run.actions["Send_the_score"]["inputs"]
        assert mail["emailMessage/Subject"] == (f"shapes: version {finished['version']} trained, "
                                                f"score {finished['performanceScore']}")
        # the flow is deleted: Power Automate DELETEs the Location, and nothing is sent any more
        assert c.delete_operation(location) == "DeleteWebhook"
        assert c.unsubscribe(location)["statusCode"] == 204
        api.post(f"/models/{m['id']}/train", json={"maxIterations": 100000, "budgetMinutes": 30})
        run_id = api.get(f"/models/{m['id']}/runs").json()[-1]["id"]
        api.post(f"/models/{m['id']}/runs/{run_id}/cancel")
        poll(api, f"/api/v1/models/{m['id']}/runs/{run_id}")
        assert rx.none_within(1.0)


def test_training_failure_takes_the_other_branch(live):
    from model_store.schema import TrainingRun
    api, m = live.api, live.model
    c = connector(live)
    trigger = definition_of(flow("d-"))["triggers"]["When_a_training_run_finishes"]
    with Receiver() as rx:
        location = c.subscribe(trigger, rx.url)["headers"]["Location"]
        with live.app.odconnect.store.transaction() as s:
            queued = TrainingRun(model_id=m["id"], status="queued", settings={})
            s.add(queued)
            s.flush()
            run_id = queued.id
        assert api.post(f"/models/{m['id']}/runs/{run_id}/cancel").json()["status"] == "canceled"
        event = json.loads(rx.get()["body"])
        run = replay(flow("d-"), c, {"body": event})
        assert run.status("Send_the_failure") == "Succeeded" and run.status("Send_the_score") is None
        mail = run.actions["Send_the_failure"]["inputs"]
        assert mail["emailMessage/Subject"] == f"shapes: training run {run_id} canceled"
        assert mail["emailMessage/Body"] == "<p>canceled before it started</p>"
        c.unsubscribe(location)


def test_version_published_trigger_posts_to_teams(live):
    api, m = live.api, live.model
    c = connector(live)
    trigger = definition_of(flow("e-"))["triggers"]["When_a_version_is_published"]
    before = api.get(f"/models/{m['id']}").json()["publishedVersionId"]
    with Receiver() as rx:
        location = c.subscribe(trigger, rx.url)["headers"]["Location"]
        published = c.call("PublishVersion", {"modelId": "shapes", "version": "1"})
        assert published["statusCode"] == 200 and published["body"]["published"] == 1
        event = json.loads(rx.get()["body"])
        assert event["version"] == 1 and event["previousVersionId"] == before
        schema = SWAGGER["paths"]["/webhooks/version-published"]["x-ms-notification-content"]["schema"]
        assert_matches(SWAGGER, schema, event)
        run = replay(flow("e-"), c, {"body": event})
        message = run.actions["Post_the_new_version"]["inputs"]["body/messageBody"]
        assert message.startswith("<p>shapes now answers with version 1 (score ")
        assert message.endswith(f"before: version {event['previousVersion']}).</p>")
        assert c.unsubscribe(location)["statusCode"] == 204
