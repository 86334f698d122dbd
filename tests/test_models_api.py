"""Models and labels through real HTTP requests on the Connexion app."""
from tests.conftest import API, store_snapshot


def test_health_needs_no_key_and_version_does(api):
    assert api.client.get(API + "/health").json() == {
        "status": "ok", "parts": {"database": {"status": "up"}, "training": {"status": "up", "runner": "embedded"}}}
    r = api.client.get(API + "/version")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    v = api.get("/version").json()
    assert v["detectron2"] == "0.7.2" and v["torch"].startswith("2.14.1")


def test_wrong_or_missing_key_is_rejected_and_changes_nothing(api):
    before = store_snapshot(api.app)
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}):
        r = api.client.post(API + "/models", json={"name": "x", "labels": ["a"]}, headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["title"] == "Unauthorized"
    assert store_snapshot(api.app) == before


def test_create_get_list_rename_archive(api):
    m = api.model("fruit", ["apple", "banana", "orange"])
    assert [t["name"] for t in m["labels"]] == ["apple", "banana", "orange"]
    assert api.get(f"/models/{m['id']}").json()["name"] == "fruit"
    assert api.get("/models/fruit").json()["id"] == m["id"]  # by name, as flows call it
    assert [x["name"] for x in api.get("/models").json()] == ["fruit"]

    r = api.patch(f"/models/{m['id']}", json={"name": "produce", "description": "market stall"})
    assert r.status_code == 200 and r.json()["name"] == "produce" and r.json()["description"] == "market stall"

    r = api.delete("/models/produce")
    assert r.status_code == 200 and r.json()["archived"] is True
    assert api.get("/models").json() == []
    assert [x["id"] for x in api.get("/models", params={"includeArchived": True}).json()] == [m["id"]]
    # still readable by id, and its name is free again
    assert api.get(f"/models/{m['id']}").json()["archived"] is True
    again = api.post("/models", json={"name": "produce", "labels": ["a"]})
    assert again.status_code == 201
    # restored by id: not while another model has its name; then whole, with its labels
    r = api.post(f"/models/{m['id']}/restore")
    assert r.status_code == 409 and "rename one of them" in r.json()["detail"], r.text
    api.patch(f"/models/{again.json()['id']}", json={"name": "produce 2"})
    r = api.post(f"/models/{m['id']}/restore")
    assert r.status_code == 200 and r.json()["archived"] is False and len(r.json()["labels"]) == 3
    assert api.get("/models/produce").json()["id"] == m["id"]
    assert api.post(f"/models/{m['id']}/restore").status_code == 200  # not archived: nothing to do
    assert api.post("/models/999/restore").status_code == 404


def test_duplicate_names_conflict(api):
    api.model("fruit")
    r = api.post("/models", json={"name": "fruit", "labels": ["kiwi"]})
    assert r.status_code == 409 and "already exists" in r.json()["detail"]
    other = api.model("veg", ["leek"])
    assert api.patch(f"/models/{other['id']}", json={"name": "fruit"}).status_code == 409
    r = api.post("/models", json={"name": "salad", "labels": ["x", "x"]})
    assert r.status_code == 409
    assert api.get("/models/salad").status_code == 404  # the whole create rolled back


def test_bad_bodies_are_problems_naming_the_field(api):
    cases = [({"labels": ["a"]}, "'name' is a required property"),
             ({"name": "m", "labels": "apple"}, "is not of type 'array'"),
             ({"name": "m", "labels": ["a"], "extra": 1}, "extra"),
             ({"name": "a/b", "labels": ["a"]}, "name: 'a/b' is not valid: a model name has 1-128 characters"),
             ({"name": "m", "labels": [" "]}, "labels.0: ' ' is not valid")]
    for body, needle in cases:
        r = api.post("/models", json=body)
        assert r.status_code == 400, body
        assert r.headers["content-type"].startswith("application/problem+json")
        assert needle in r.json()["detail"], (body, r.json())
    assert api.get("/models").json() == []


def test_labels(api):
    m = api.model("fruit", ["apple"])
    r = api.post(f"/models/{m['id']}/labels", json={"names": ["banana", "orange"]})
    assert r.status_code == 201 and [t["name"] for t in r.json()] == ["banana", "orange"]
    assert [t["name"] for t in api.get(f"/models/{m['id']}/labels").json()] == ["apple", "banana", "orange"]
    assert api.post(f"/models/{m['id']}/labels", json={"names": ["apple"]}).status_code == 409
    assert api.get("/models/999/labels").status_code == 404


def test_datasets(api):
    m = api.model()
    r = api.post(f"/models/{m['id']}/datasets", json={"name": "holdout", "kind": "evaluation"})
    assert r.status_code == 201 and r.json()["kind"] == "evaluation"
    kinds = {d["name"]: d["kind"] for d in api.get(f"/models/{m['id']}/datasets").json()}
    assert kinds == {"training": "training", "holdout": "evaluation"}
    assert api.get(f"/models/{m['id']}/datasets/{r.json()['id']}").json()["imageCount"] == 0
    assert api.post(f"/models/{m['id']}/datasets", json={"name": "holdout"}).status_code == 409
    assert api.post(f"/models/{m['id']}/datasets", json={"name": "x", "kind": "other"}).status_code == 400
    other = api.model("other", ["a"])
    assert api.get(f"/models/{other['id']}/datasets/{r.json()['id']}").status_code == 404


def test_swagger_ui_and_spec_are_served(api):
    assert api.client.get(API + "/ui/").status_code == 200
    spec = api.client.get(API + "/openapi.json").json()
    assert "/models" in spec["paths"]
