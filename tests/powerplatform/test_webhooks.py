"""Webhook subscriptions and deliveries: persisted, signed, retried with backoff, kept across a restart."""
from __future__ import annotations

from urllib.parse import urlsplit
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from model_store.schema import WebhookDelivery
from tests.conftest import Api, queued_run
from tests.powerplatform.helpers import Receiver, assert_matches

SWAGGER = json.loads((Path(__file__).resolve().parents[2] / "openapi" / "apiDefinition.swagger.json").read_text())
# allow_loopback: the receivers of these tests listen on 127.0.0.1 (net_guard refuses loopback by default)
FAST = {"webhooks": {"poll_seconds": 0.1, "backoff_base_seconds": 0.2, "max_attempts": 4, "timeout_seconds": 5,
                     "allow_loopback": True}}
LOGIC_APPS = "prod-01.westeurope.logic.azure.com"


def fake_dns(app, names: dict[str, list[str]]) -> None:
    """Resolve these names (and only these) for the app's callback policy: no network in tests."""
    from dataclasses import replace

    def resolve(host, port):
        if host not in names:
            raise OSError(f"{host} is not in the test's DNS")
        return names[host]

    dispatcher = app.odconnect.webhooks
    dispatcher.policy = replace(dispatcher.policy, resolve=resolve)


def subscribe(api, url, event="training-run-finished", **body):
    r = api.post(f"/webhooks/{event}", json={"callbackUrl": url, **body})
    assert r.status_code == 201, r.text
    return r


def finish_a_run(api, model) -> int:
    """A run finishing for real: a queued run canceled through the API (no training needed)."""
    run_id = queued_run(api.app, model["id"])
    r = api.post(f"/models/{model['id']}/runs/{run_id}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "canceled"
    return run_id


def verify(delivery: dict, secret: str) -> dict:
    expected = "sha256=" + hmac.new(secret.encode(), delivery["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(delivery["headers"]["X-Odconnect-Signature"], expected)
    return json.loads(delivery["body"])


def deliveries(api) -> list[WebhookDelivery]:
    with api.app.odconnect.store.transaction() as s:
        return s.query(WebhookDelivery).order_by(WebhookDelivery.id).all()


def test_subscribe_list_get_and_delete(make_app):
    api = Api(make_app(**FAST))
    fake_dns(api.app, {LOGIC_APPS: ["20.50.2.7"]})
    m = api.model("fruit")
    r = subscribe(api, f"https://{LOGIC_APPS}/workflows/abc/triggers/t?sig=x", modelId="fruit")
    sub = r.json()
    assert r.headers["Location"] == f"http://testserver/api/v1/webhooks/{sub['id']}"
    assert sub["event"] == "trainingRunFinished" and sub["modelId"] == m["id"] and len(sub["secret"]) >= 32
    mine = subscribe(api, "http://127.0.0.1:9/x", "version-published", secret="s" * 20).json()
    assert mine["secret"] == "s" * 20 and mine["modelId"] is None
    listed = api.get("/webhooks").json()
    assert [x["id"] for x in listed] == [sub["id"], mine["id"]] and all("secret" not in x for x in listed)
    assert api.get(f"/webhooks/{sub['id']}").json()["deliveries"] == {"pending": 0, "delivered": 0, "failed": 0}
    assert api.delete(urlsplit(r.headers["Location"]).path.removeprefix("/api/v1")).status_code == 204
    assert api.get(f"/webhooks/{sub['id']}").status_code == 404
    assert api.delete(f"/webhooks/{sub['id']}").status_code == 404
    assert [x["id"] for x in api.get("/webhooks").json()] == [mine["id"]]


@pytest.mark.parametrize("body, status, needle", [
    ({"callbackUrl": "ftp://example.com/x"}, 400, "absolute https URL"),
    ({"callbackUrl": "file:///etc/passwd"}, 400, "absolute https URL"),
    ({"callbackUrl": "/relative"}, 400, "absolute https URL"),
    ({"callbackUrl": "http://127.0.0.1/x", "modelId": "nope"}, 404, "does not exist"),
    ({"callbackUrl": "http://127.0.0.1/x", "secret": "short"}, 400, "secret"),
    ({}, 400, "callbackUrl"),
])
def test_bad_subscriptions_are_refused(make_app, body, status, needle):
    api = Api(make_app(**FAST))
    r = api.post("/webhooks/training-run-finished", json=body)
    assert r.status_code == status and needle in r.json()["detail"], r.text
    assert api.get("/webhooks").json() == []
    assert api.client.post("/api/v1/webhooks/version-published",
                           json={"callbackUrl": "http://127.0.0.1/x"}).status_code == 401  # no key


def test_a_finished_run_is_delivered_signed_to_its_model_only(make_app):
    api = Api(make_app(**FAST))
    m, _other = api.model("fruit"), api.model("cars", ["car"])
    with Receiver() as rx, Receiver() as other_rx:
        sub = subscribe(api, rx.url, modelId=str(m["id"])).json()
        subscribe(api, other_rx.url, modelId="cars")
        run_id = finish_a_run(api, m)
        got = rx.get()
        assert got["path"] == "/hook" and got["headers"]["Content-Type"] == "application/json"
        assert got["headers"]["X-Odconnect-Event"] == "trainingRunFinished"
        event = verify(got, sub["secret"])
        assert event["deliveryId"] == int(got["headers"]["X-Odconnect-Delivery"])
        assert event["runId"] == run_id and event["status"] == "canceled" and event["modelName"] == "fruit"
        assert event["version"] is None and event["runUrl"] == f"/api/v1/models/{m['id']}/runs/{run_id}"
        # what the flow receives is what the connector's x-ms-notification-content declares
        schema = SWAGGER["paths"]["/webhooks/training-run-finished"]["x-ms-notification-content"]["schema"]
        assert_matches(SWAGGER, schema, event)
        assert other_rx.none_within(0.5)
    assert api.app.odconnect.webhooks.wait_idle()
    view = api.get(f"/webhooks/{sub['id']}").json()
    assert view["deliveries"] == {"pending": 0, "delivered": 1, "failed": 0}
    assert view["recentDeliveries"][0]["attempts"] == 1


def test_public_url_makes_locations_and_webhook_links_absolute(make_app):
    """Behind a proxy or tunnel the server's own host is not what flows can reach."""
    api = Api(make_app(server={"public_url": "https://od.example.org/"}, **FAST))
    m = api.model("fruit")
    with Receiver() as rx:
        r = subscribe(api, rx.url)
        assert r.headers["Location"] == f"https://od.example.org/api/v1/webhooks/{r.json()['id']}"
        run_id = finish_a_run(api, m)
        event = verify(rx.get(), r.json()["secret"])
    assert event["runUrl"] == f"https://od.example.org/api/v1/models/{m['id']}/runs/{run_id}"
    missing = api.get("/models/nope/runs/1")  # error answers go through the same handler
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


def test_failed_deliveries_are_retried_with_backoff(make_app):
    api = Api(make_app(**FAST))
    m = api.model("fruit")
    with Receiver(statuses=[503, 500, 200]) as rx:
        sub = subscribe(api, rx.url).json()
        finish_a_run(api, m)
        got = [rx.get(), rx.get(), rx.get()]
    assert [g["answered"] for g in got] == [503, 500, 200]
    assert len({g["body"] for g in got}) == 1  # the same bytes (and signature) each time
    assert len({g["headers"]["X-Odconnect-Delivery"] for g in got}) == 1
    verify(got[2], sub["secret"])
    assert api.app.odconnect.webhooks.wait_idle()
    [d] = deliveries(api)
    assert d.status == "delivered" and d.attempts == 3 and d.last_error == ""


def test_backoff_spacing_and_giving_up(make_app):
    api = Api(make_app(webhooks={**FAST["webhooks"], "backoff_base_seconds": 0.3, "max_attempts": 3}))
    m = api.model("fruit")
    with Receiver(statuses=[500, 500, 500, 500]) as rx:
        subscribe(api, rx.url)
        finish_a_run(api, m)
        stamps = []
        for _ in range(3):
            rx.get()
            stamps.append(time.monotonic())
        assert rx.none_within(1.0)  # max_attempts reached: no fourth try
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert gaps[0] >= 0.25 and gaps[1] >= 0.55, gaps  # 0.3 s, then 0.6 s
    [d] = deliveries(api)
    assert d.status == "failed" and d.attempts == 3 and "HTTP 500" in d.last_error


def test_pending_deliveries_survive_a_restart(make_app, tmp_path):
    root = tmp_path / "restart"
    slow = {"webhooks": {**FAST["webhooks"], "backoff_base_seconds": 1.0}}
    api = Api(make_app(root=root, **slow))
    m = api.model("fruit")
    with Receiver(statuses=[503]) as rx:
        sub = subscribe(api, rx.url).json()
        finish_a_run(api, m)
        first = rx.get()
        api.app.odconnect.close()  # the server stops before the retry
        [d] = deliveries(api)
        assert d.status == "pending" and d.attempts == 1 and "503" in d.last_error
        again = Api(make_app(root=root, **slow))
        second = rx.get()
    assert second["body"] == first["body"] and second["answered"] == 200
    verify(second, sub["secret"])
    assert again.app.odconnect.webhooks.wait_idle()
    [d] = deliveries(again)
    assert d.status == "delivered" and d.attempts == 2


def test_gone_ends_the_subscription_and_delete_drops_pending(make_app):
    api = Api(make_app(**FAST))
    m = api.model("fruit")
    with Receiver(statuses=[410]) as rx:
        sub = subscribe(api, rx.url).json()
        finish_a_run(api, m)
        rx.get()
        assert api.app.odconnect.webhooks.wait_idle()
    assert api.get(f"/webhooks/{sub['id']}").status_code == 404  # the receiver said 410 Gone
    # a receiver that is down: its pending delivery is dropped when the flow unsubscribes
    dead = subscribe(api, "http://127.0.0.1:9/down").json()
    finish_a_run(api, m)
    time.sleep(0.3)
    assert api.delete(f"/webhooks/{dead['id']}").status_code == 204
    last = deliveries(api)[-1]
    assert last.status == "failed" and last.last_error == "unsubscribed"


def test_a_webhook_failure_never_breaks_the_run(make_app, monkeypatch):
    from connector.services import webhooks
    api = Api(make_app(**FAST))
    m = api.model("fruit")
    subscribe(api, "http://127.0.0.1:9/x")

    def broken(*a, **k):
        raise RuntimeError("the webhook table is on fire")

    monkeypatch.setattr(webhooks, "emit", broken)
    run_id = finish_a_run(api, m)  # asserts 202 canceled
    assert api.get(f"/models/{m['id']}/runs/{run_id}").json()["status"] == "canceled"
    assert deliveries(api) == []
