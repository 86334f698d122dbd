"""Scoped API keys: every operation's scope from the spec, each scope allowed and refused, hashed storage,
revocation at once, admin configured keys, and 429 for a client that keeps sending unknown keys."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from connector.security import operation_scopes
from connector.security.scopes import METHODS, SCOPE_KEY
from connector.services import keys
from connector.spec import load_spec
from tests.conftest import API, Api, KEY

SPEC = load_spec()
SCOPES = operation_scopes(SPEC)


def operations():
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def concrete(path: str) -> str:
    """A path the router matches: every id 1, the version 1."""
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_operation_has_exactly_one_scope_in_the_spec():
    ops = list(operations())
    assert len(SCOPES) == len(ops) >= 50
    assert all(op[SCOPE_KEY] in ("public", *keys.SCOPES) for _, _, op in ops)
    # the classes the scopes stand for
    assert {o for o, s in SCOPES.items() if s == "detect"} >= {"DetectObjects", "DetectObjectsBatch", "QuickTest",
                                                               "ListModels", "GetModel", "ListVersions"}
    assert all(SCOPES[op["operationId"]] == "admin" for _, method, op in ops if method == "delete"
               and op["operationId"] != "DeleteWebhook")  # unsubscribing is the other half of a trigger
    assert SCOPES["TrainModel"] == SCOPES["PublishVersion"] == SCOPES["UploadImagesJson"] == "train"
    # a missing or unknown scope stops the server at start (never an unguarded operation)
    broken = {"paths": {"/x": {"get": {"operationId": "X", "responses": {}}}}}
    with pytest.raises(ValueError, match="x-odconnect-scope must be one of"):
        operation_scopes(broken)


def test_scope_order():
    assert keys.allows("admin", "detect") and keys.allows("train", "train") and keys.allows("detect", "detect")
    assert not keys.allows("detect", "train") and not keys.allows("train", "admin") and not keys.allows("x", "detect")


@pytest.fixture
def scoped(make_app):
    api = Api(make_app())
    made = {scope: keys.create_key(api.app.odconnect.store, f"{scope} app", scope)[0] for scope in keys.SCOPES}
    return api, made


@pytest.mark.parametrize("scope", keys.SCOPES)
def test_each_scope_is_allowed_and_refused_on_every_operation(scoped, scope):
    """Every operation of the spec, called with a key of each scope: 403 naming the scope exactly when
    the key's scope is below the operation's; never a 401 for a valid key."""
    api, made = scoped
    for path, method, op in operations():
        needed = op[SCOPE_KEY]
        if needed == "public":
            continue
        r = getattr(api.client, method)(API + concrete(path), headers={"X-API-Key": made[scope]})
        if keys.allows(scope, needed):
            assert r.status_code not in (401, 403), (scope, op["operationId"], r.status_code, r.text)
        else:
            assert r.status_code == 403, (scope, op["operationId"], r.status_code)
            problem = r.json()
            assert r.headers["content-type"] == "application/problem+json"
            assert problem["requiredScope"] == needed and problem["keyScope"] == scope
            assert f"scope {needed!r}" in problem["detail"] and op["operationId"] in problem["detail"]


def test_what_each_scope_does_end_to_end(scoped):
    api, made = scoped
    detect, train, admin = ({"X-API-Key": made[s]} for s in keys.SCOPES)
    # train builds: a model, an image; detect reads and detects but cannot build or delete
    m = api.client.post(API + "/models", json={"name": "fruit", "labels": ["apple"]}, headers=train)
    assert m.status_code == 201
    assert api.client.get(API + "/models/fruit", headers=detect).status_code == 200
    assert api.client.post(API + "/models/fruit/detect", json={"content": "aGk="}, headers=detect).status_code == 409
    refused = api.client.post(API + "/models", json={"name": "pears", "labels": ["pear"]}, headers=detect)
    assert refused.status_code == 403 and refused.json()["requiredScope"] == "train"
    assert api.client.delete(API + "/models/fruit", headers=train).json()["requiredScope"] == "admin"
    assert api.client.delete(API + "/models/fruit", headers=admin).status_code == 200
    # the configured key is an admin key
    assert api.delete("/models/1").status_code in (200, 404)


def test_keys_are_stored_hashed_and_revoked_at_once(scoped):
    api, made = scoped
    store = api.app.odconnect.store
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT key_hash, prefix FROM api_keys")).fetchall()
        dump = "\n".join(str(r) for r in conn.execute(text("SELECT * FROM api_keys")))
    assert len(rows) == 3 and all(key not in dump for key in made.values())
    assert {r[0] for r in rows} == {keys.hash_key(k) for k in made.values()}
    detect = {"X-API-Key": made["detect"]}
    assert api.client.get(API + "/models", headers=detect).status_code == 200
    listed = {k["scope"]: k for k in keys.list_keys(store)}
    assert listed["detect"]["lastUsed"] is not None and listed["train"]["lastUsed"] is None
    keys.revoke_key(store, listed["detect"]["id"])
    r = api.client.get(API + "/models", headers=detect)  # the very next request
    assert r.status_code == 401 and "unknown or revoked" in r.json()["detail"]
    with pytest.raises(Exception, match="already revoked"):
        keys.revoke_key(store, listed["detect"]["id"])
    with pytest.raises(Exception, match="scope must be one of"):
        keys.create_key(store, "x", "superuser")


def test_a_client_sending_unknown_keys_is_told_to_back_off(make_app):
    api = Api(make_app(security={"unknown_keys_per_minute": 3}))
    made, _ = keys.create_key(api.app.odconnect.store, "field app", "detect")
    bad = {"X-API-Key": "odk_not-a-key"}
    assert [api.client.get(API + "/models", headers=bad).status_code for _ in range(3)] == [401] * 3
    r = api.client.get(API + "/models", headers=bad)
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.headers["content-type"] == "application/problem+json" and "too many unknown API keys" in r.json()["detail"]
    # valid keys from the same address keep working (behind a proxy every client shares it)
    assert api.client.get(API + "/models", headers={"X-API-Key": made}).status_code == 200
    assert api.get("/models").status_code == 200


def test_the_throttle_window(monkeypatch):
    from connector.security.throttle import FailedAuthThrottle
    now = [1000.0]
    throttle = FailedAuthThrottle(2, clock=lambda: now[0])
    assert throttle.fail("a") is None and throttle.fail("a") is None
    assert throttle.fail("a") == 60  # third within the minute
    assert throttle.fail("b") is None  # per address
    now[0] += 61
    assert throttle.fail("a") is None  # the window moved on
    assert FailedAuthThrottle(0).fail("a") is None  # 0 turns it off
