"""What the studio's model list shows (image count, last score, version numbers) and renaming labels."""
from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event

from model_store.schema import Model, Version
from tests.conftest import b64, png_bytes, store_snapshot


def upload(api, m, seeds, regions=None):
    images = [{"content": b64(png_bytes(seed=s)), "regions": regions or []} for s in seeds]
    r = api.post(f"/models/{m['id']}/datasets/{m['datasetId']}/images", json={"images": images})
    assert r.status_code == 201, r.text
    return [x["imageId"] for x in r.json()["results"]]


def add_version(api, model_id: int, number: int, score: float, publish=False, last=True) -> None:
    """A version row as training records it (the list only reads its number and score)."""
    with api.app.odconnect.store.transaction() as s:
        v = Version(model_id=model_id, number=number, metrics={"score": score}, labels=["apple", "banana"])
        s.add(v)
        s.flush()
        model = s.get(Model, model_id)
        if last:
            model.last_trained_version_id = v.id
        if publish:
            model.published_version_id = v.id


@contextmanager
def count_queries(api):
    seen = []
    engine = api.app.odconnect.store.engine

    def on_execute(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


def test_model_view_counts_images_and_names_versions(api):
    m = api.model("fruit")
    assert {k: m[k] for k in ("imageCount", "lastScore", "publishedVersion", "lastTrainedVersion")} == \
        {"imageCount": 0, "lastScore": None, "publishedVersion": None, "lastTrainedVersion": None}
    ids = upload(api, m, range(3))
    api.delete(f"/models/{m['id']}/datasets/{m['datasetId']}/images/{ids[0]}")  # deleted ones do not count
    ev = api.post(f"/models/{m['id']}/datasets", json={"name": "holdout", "kind": "evaluation"}).json()
    api.post(f"/models/{m['id']}/datasets/{ev['id']}/images", json={"images": [{"content": b64(png_bytes(seed=9))}]})
    add_version(api, m["id"], 1, 71.5, publish=True)
    add_version(api, m["id"], 2, 88.25)
    got = api.get(f"/models/{m['id']}").json()
    assert (got["imageCount"], got["lastScore"], got["publishedVersion"], got["lastTrainedVersion"]) == (2, 88.25, 1, 2)
    listed = api.get("/models").json()[0]
    assert listed == got
    assert api.patch(f"/models/{m['id']}", json={"description": "x"}).json()["imageCount"] == 2


def test_model_list_costs_the_same_queries_for_one_model_or_many(api):
    first = api.model("m0")
    upload(api, first, [0])
    with count_queries(api) as one:
        assert len(api.get("/models").json()) == 1
    for i in range(1, 6):
        m = api.model(f"m{i}", ["a", "b", "c"])
        upload(api, m, [10 * i, 10 * i + 1])
        add_version(api, m["id"], 1, 50.0 + i, publish=i % 2 == 0)
    with count_queries(api) as many:
        listed = api.get("/models").json()
    assert len(listed) == 6 and [x["imageCount"] for x in listed] == [1, 2, 2, 2, 2, 2]
    assert [x["lastScore"] for x in listed] == [None, 51.0, 52.0, 53.0, 54.0, 55.0]
    assert [x["publishedVersion"] for x in listed] == [None, None, 1, None, 1, None]
    assert len(many) == len(one), many


def test_rename_label_and_its_conflicts(api):
    m = api.model("fruit", ["apple", "banana"])
    apple, banana = m["labels"]
    url = f"/models/{m['id']}/labels"
    img = upload(api, m, [1], regions=[{"labelName": "apple", "left": 0.1, "top": 0.1, "width": 0.2, "height": 0.2}])[0]
    r = api.patch(f"{url}/{apple['id']}", json={"name": "green apple"})
    assert r.status_code == 200 and r.json() == {**apple, "name": "green apple"}
    assert [t["name"] for t in api.get(url).json()] == ["green apple", "banana"]
    # boxes follow the label, by id
    region = api.get(f"/models/{m['id']}/datasets/{m['datasetId']}/images/{img}").json()["regions"][0]
    assert region["labelName"] == "green apple" and region["labelId"] == apple["id"]
    # the same name again is fine; another label's name is a conflict; unknown labels are 404
    assert api.patch(f"{url}/{apple['id']}", json={"name": "green apple"}).status_code == 200
    other = api.model("veg", ["leek"])
    before = store_snapshot(api.app)
    for label_id, body, status, needle in [
            (banana["id"], {"name": "green apple"}, 409, "already exists"),
            (9999, {"name": "kiwi"}, 404, "label 9999 does not exist"),
            (banana["id"], {"name": "a/b"}, 400, "no control characters, / or"),
            (banana["id"], {"name": ""}, 400, "name"),
            (banana["id"], {}, 400, "name")]:
        r = api.patch(f"{url}/{label_id}", json=body)
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json") and needle in r.json()["detail"]
    assert api.patch(f"/models/{other['id']}/labels/{apple['id']}", json={"name": "x"}).status_code == 404
    assert store_snapshot(api.app) == before


def test_delete_a_label_with_its_boxes(api):
    m = api.model("cutlery", ["fork", "frok", "spoon"])
    fork, typo, spoon = m["labels"]
    url = f"/models/{m['id']}/labels"
    box = {"left": 0.1, "top": 0.1, "width": 0.2, "height": 0.2}
    img = upload(api, m, [1], regions=[{"labelName": "fork", **box}, {"labelName": "frok", **box},
                                       {"labelName": "frok", **box, "left": 0.5}])[0]
    r = api.delete(f"{url}/{typo['id']}")
    assert r.status_code == 200 and r.json() == {**typo, "boxesDeleted": 2}, r.text
    assert [t["name"] for t in api.get(url).json()] == ["fork", "spoon"]
    regions = api.get(f"/models/{m['id']}/datasets/{m['datasetId']}/images/{img}").json()["regions"]
    assert [r["labelName"] for r in regions] == ["fork"]
    # the data check no longer blocks on the label that had no boxes, once it is gone too
    assert api.delete(f"{url}/{spoon['id']}").json()["boxesDeleted"] == 0
    assert not [w for w in api.get(f"/models/{m['id']}/data-check").json()["warnings"] if w["label"] == "spoon"]
    before = store_snapshot(api.app)
    for label_id, status, needle in [(fork["id"], 409, "only label"), (typo["id"], 404, "does not exist")]:
        r = api.delete(f"{url}/{label_id}")
        assert r.status_code == status and needle in r.json()["detail"], r.text
    assert store_snapshot(api.app) == before


def test_names_that_differ_only_in_case_or_unicode_form_are_one_label(api):
    """A flow counting "fork" and "Fork" apart would split one count in two: they are one label."""
    before = store_snapshot(api.app)
    r = api.post("/models", json={"name": "cutlery", "labels": ["fork", "Fork"]})
    assert r.status_code == 409 and "as 'fork'" in r.json()["detail"], r.text
    assert store_snapshot(api.app) == before  # no model half made
    m = api.model("cutlery", ["fork", "spoon"])
    fork, spoon = m["labels"]
    url = f"/models/{m['id']}/labels"
    before = store_snapshot(api.app)
    for name in ("Fork", " FORK ", "\uff46\uff4f\uff52\uff4b"):  # the last: full-width letters
        r = api.post(url, json={"names": [name]})
        assert r.status_code == 409 and "differ only in case" in r.json()["detail"], (name, r.text)
    assert api.patch(f"{url}/{spoon['id']}", json={"name": "FORK"}).status_code == 409
    assert store_snapshot(api.app) == before
    # a label may change its own case; boxes given by name find it whatever the case
    assert api.patch(f"{url}/{fork['id']}", json={"name": "Fork"}).json()["name"] == "Fork"
    box = {"left": 0.1, "top": 0.1, "width": 0.2, "height": 0.2}
    img = upload(api, m, [1], regions=[{"labelName": "fork", **box}, {"labelName": "SPOON", **box}])[0]
    regions = api.get(f"/models/{m['id']}/datasets/{m['datasetId']}/images/{img}").json()["regions"]
    assert sorted(r["labelId"] for r in regions) == [fork["id"], spoon["id"]]
