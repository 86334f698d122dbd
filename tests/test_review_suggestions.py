"""Reviewing suggested boxes: the image list's filters and uncertainty order, batch approval above a
probability, rejecting, and the data check that never counts a suggestion."""
from __future__ import annotations

import pytest

from model_store.schema import Region
from tests.conftest import b64, png_bytes, store_snapshot


def box(label, left=0.1):
    return {"labelName": label, "left": left, "top": 0.1, "width": 0.2, "height": 0.2}


def suggest(api, image_id: int, label_id: int, probability: float) -> int:
    """A suggested box as ML-assisted labeling stores it (unapproved, with the model's probability)."""
    with api.app.odconnect.store.transaction() as s:
        r = Region(image_id=image_id, label_id=label_id, left=0.5, top=0.5, width=0.2, height=0.2,
                   approved=False, source="suggested", probability=probability)
        s.add(r)
        s.flush()
        return r.id


@pytest.fixture
def pool(api):
    """Six images: 0 apple (approved), 1 banana (approved) + apple 0.9, 2 apple 0.55 + banana 0.95,
    3 banana 0.7, 4 apple 0.3, 5 nothing."""
    m = api.model("fruit", ["apple", "banana"])
    apple, banana = (t["id"] for t in m["labels"])
    regions = [[box("apple")], [box("banana")], [], [], [], []]
    images = [{"content": b64(png_bytes(seed=i)), "regions": r} for i, r in enumerate(regions)]
    ids = [x["imageId"] for x in api.post(f"/models/{m['id']}/datasets/{m['datasetId']}/images",
                                          json={"images": images}).json()["results"]]
    suggest(api, ids[1], apple, 0.9)
    suggest(api, ids[2], apple, 0.55)
    suggest(api, ids[2], banana, 0.95)
    suggest(api, ids[3], banana, 0.7)
    suggest(api, ids[4], apple, 0.3)
    return api, m, ids


def listed(api, m, **params):
    r = api.get(f"/models/{m['id']}/datasets/{m['datasetId']}/images", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_filters(pool):
    api, m, ids = pool
    cases = [({"label": "apple"}, [0]), ({"label": "banana"}, [1]),
             ({"tagged": True}, [0, 1]), ({"tagged": False}, [2, 3, 4, 5]),
             ({"hasSuggestions": True}, [1, 2, 3, 4]), ({"hasSuggestions": False}, [0, 5]),
             ({"tagged": False, "hasSuggestions": True}, [2, 3, 4]),
             ({"label": "banana", "hasSuggestions": True}, [1]), ({}, [0, 1, 2, 3, 4, 5])]
    for params, expected in cases:
        page = listed(api, m, **params)
        assert [i["id"] for i in page["items"]] == [ids[k] for k in expected], params
        assert page["total"] == len(expected)


def test_sort_by_id_and_by_uncertainty(pool):
    api, m, ids = pool
    assert [i["id"] for i in listed(api, m, sort="-id")["items"]] == ids[::-1]
    # |p - 0.5| of each image's most doubtful suggestion: 2 -> 0.05, 3 and 4 -> 0.2 (by id), 1 -> 0.4;
    # images without suggestions last
    order = [ids[k] for k in (2, 3, 4, 1, 0, 5)]
    assert [i["id"] for i in listed(api, m, sort="uncertainty")["items"]] == order
    page = listed(api, m, sort="uncertainty", page=2, pageSize=2)
    assert [i["id"] for i in page["items"]] == order[2:4] and page["total"] == 6
    unlabeled = listed(api, m, sort="uncertainty", tagged=False)
    assert [i["id"] for i in unlabeled["items"]] == [ids[k] for k in (2, 3, 4, 5)]
    # every region of a listed image comes with it
    first = listed(api, m, sort="uncertainty", pageSize=1)["items"][0]
    assert sorted(r["probability"] for r in first["regions"]) == [0.55, 0.95]


def test_bad_list_parameters_are_problems(pool):
    api, m, _ = pool
    url = f"/models/{m['id']}/datasets/{m['datasetId']}/images"
    for params, needle in (({"sort": "random"}, "random"), ({"label": "kiwi"}, "kiwi"),
                           ({"hasSuggestions": "maybe"}, "maybe"), ({"tagged": "sometimes"}, "sometimes")):
        r = api.get(url, params=params)
        assert r.status_code == 400, params
        assert r.headers["content-type"].startswith("application/problem+json") and needle in r.json()["detail"]


def test_data_check_never_counts_suggestions(pool):
    api, m, _ = pool
    check = api.get(f"/models/{m['id']}/data-check").json()
    assert {e["name"]: (e["images"], e["boxes"]) for e in check["labels"]} == {"apple": (1, 1), "banana": (1, 1)}
    assert check["unapprovedBoxes"] == 5 and check["imagesWithBoxes"] == 2 and check["canTrain"] is False
    assert any(w["code"] == "UnapprovedBoxes" for w in check["warnings"])


def test_review_approves_above_and_rejects_the_rest(pool):
    api, m, ids = pool
    url = f"/models/{m['id']}/datasets/{m['datasetId']}/suggestions/review"
    # another dataset's suggestions and a deleted image's stay as they are
    other = api.post(f"/models/{m['id']}/datasets", json={"name": "other", "kind": "evaluation"}).json()
    elsewhere = api.post(f"/models/{m['id']}/datasets/{other['id']}/images",
                         json={"images": [{"content": b64(png_bytes(seed=40))}]}).json()["results"][0]["imageId"]
    suggest(api, elsewhere, m["labels"][0]["id"], 0.99)
    gone = api.post(f"/models/{m['id']}/datasets/{m['datasetId']}/images",
                    json={"images": [{"content": b64(png_bytes(seed=41))}]}).json()["results"][0]["imageId"]
    suggest(api, gone, m["labels"][0]["id"], 0.99)
    api.delete(f"/models/{m['id']}/datasets/{m['datasetId']}/images/{gone}")

    r = api.post(url, json={"approveAbove": 0.9, "label": "banana"})
    assert r.status_code == 200 and r.json() == {"approved": 1, "rejected": 0, "images": 1}
    r = api.post(url, json={"approveAbove": 0.6, "rejectRest": True})
    assert r.json() == {"approved": 2, "rejected": 2, "images": 4}
    check = api.get(f"/models/{m['id']}/data-check").json()
    assert check["unapprovedBoxes"] == 0
    assert {e["name"]: e["boxes"] for e in check["labels"]} == {"apple": 2, "banana": 3}
    kept = {i["id"]: [(r["labelName"], r["approved"], r["probability"]) for r in i["regions"]]
            for i in listed(api, m)["items"]}
    assert kept[ids[0]] == [("apple", True, None)] and kept[ids[4]] == [] and kept[ids[5]] == []
    assert kept[ids[1]] == [("banana", True, None), ("apple", True, 0.9)]
    assert kept[ids[2]] == [("banana", True, 0.95)]
    with api.app.odconnect.store.transaction() as s:
        assert s.query(Region).filter_by(image_id=elsewhere, approved=False).count() == 1
        assert s.query(Region).filter_by(image_id=gone, approved=False).count() == 1
    assert api.post(url, json={"approveAbove": 0.1, "rejectRest": True}).json() == {"approved": 0, "rejected": 0, "images": 0}


def test_bad_review_requests_change_nothing(pool):
    api, m, _ = pool
    url = f"/models/{m['id']}/datasets/{m['datasetId']}/suggestions/review"
    before = store_snapshot(api.app)
    for body, status, needle in (({"approveAbove": 1.5}, 400, "maximum"), ({}, 400, "approveAbove"),
                                 ({"approveAbove": 0.5, "label": "kiwi"}, 400, "kiwi"),
                                 ({"approveAbove": 0.5, "extra": 1}, 400, "extra"),
                                 ({"approveAbove": "high"}, 400, "high")):
        r = api.post(url, json=body)
        assert r.status_code == status, body
        assert r.headers["content-type"].startswith("application/problem+json") and needle in r.json()["detail"], r.json()
    assert api.post(f"/models/{m['id']}/datasets/999/suggestions/review", json={"approveAbove": 0.5}).status_code == 404
    assert store_snapshot(api.app) == before


def test_reject_deletes_suggestions_never_approved_boxes(pool):
    api, m, ids = pool
    base = f"/models/{m['id']}/datasets/{m['datasetId']}/images"
    extra = suggest(api, ids[1], m["labels"][1]["id"], 0.4)
    regions = api.get(f"{base}/{ids[1]}").json()["regions"]
    approved = [r["id"] for r in regions if r["approved"]]
    pending = [r["id"] for r in regions if not r["approved"]]
    assert len(approved) == 1 and len(pending) == 2 and extra in pending
    of_another_image = api.get(f"{base}/{ids[2]}").json()["regions"][0]["id"]
    before = store_snapshot(api.app)
    for body, needle in (({"regionIds": [approved[0]]}, "approved"), ({"regionIds": [pending[0], approved[0]]}, "approved"),
                         ({"regionIds": [9999]}, "do not belong"), ({"regionIds": [of_another_image]}, "do not belong"),
                         ({"regionIds": "all"}, "not of type")):
        r = api.post(f"{base}/{ids[1]}/regions/reject", json=body)
        assert r.status_code == 400 and needle in r.json()["detail"], r.json()
        assert r.headers["content-type"].startswith("application/problem+json")
    assert store_snapshot(api.app) == before
    r = api.post(f"{base}/{ids[1]}/regions/reject", json={"regionIds": [extra]})
    assert r.status_code == 200 and sorted(x["id"] for x in r.json()["regions"]) == sorted(approved + [pending[0]])
    r = api.post(f"{base}/{ids[1]}/regions/reject", json={})
    assert [x["id"] for x in r.json()["regions"]] == approved
    r = api.post(f"{base}/{ids[2]}/regions/reject")
    assert r.status_code == 200 and r.json()["regions"] == []
    assert api.post(f"{base}/9999/regions/reject").status_code == 404


def test_suggestions_never_repeat_an_approved_box(api):
    """On a labeled image a suggestion over an approved box of its label is that box again: it is
    not stored, so a bulk accept cannot box one object twice; the boxes the image misses stay."""
    from connector.services.images import replace_suggestions
    m = api.model("fruit", ["apple", "banana"])
    apple, banana = (t["id"] for t in m["labels"])
    ds = m["datasetId"]
    image_id = api.post(f"/models/{m['id']}/datasets/{ds}/images", json={"images": [
        {"content": b64(png_bytes(seed=7)), "regions": [box("apple")]}]}).json()["results"][0]["imageId"]

    def sug(label_id, left, top=0.1, probability=0.9):
        return {"labelId": label_id, "left": left, "top": top, "width": 0.2, "height": 0.2, "probability": probability}

    view = replace_suggestions(api.app.odconnect.store, m["id"], ds, image_id, [
        sug(apple, 0.11),               # IoU 0.9 with the approved apple: the same object
        sug(apple, 0.15, top=0.15),     # IoU 0.39: an overlapping neighbour, kept
        sug(banana, 0.1),               # the approved box's place, another label: kept for review
        sug(apple, 0.6, top=0.6, probability=0.7),  # an apple the image's boxes miss
    ])
    got = [(r["labelName"], r["approved"], r["left"], r["top"]) for r in view["regions"]]
    assert got == [("apple", True, 0.1, 0.1), ("apple", False, 0.15, 0.15), ("banana", False, 0.1, 0.1),
                   ("apple", False, 0.6, 0.6)]
    r = api.post(f"/models/{m['id']}/datasets/{ds}/suggestions/review", json={"approveAbove": 0.0})
    assert r.json() == {"approved": 3, "rejected": 0, "images": 1}
    check = api.get(f"/models/{m['id']}/data-check").json()
    assert {e["name"]: e["boxes"] for e in check["labels"]} == {"apple": 3, "banana": 1}


def test_unapprove_and_restore_take_a_review_back(pool):
    """Undo of an accept (UnapproveRegions) and of a reject (RestoreSuggestions): a box accepted from
    a suggestion waits for review again with its id and probability; a rejected suggestion comes back
    with its label, box and probability. Anything else is a 400 naming the box, and changes nothing."""
    api, m, ids = pool
    base = f"/models/{m['id']}/datasets/{m['datasetId']}/images"
    regions = api.get(f"{base}/{ids[1]}").json()["regions"]
    drawn = next(r["id"] for r in regions if r["approved"])
    pending = next(r for r in regions if not r["approved"])
    api.post(f"{base}/{ids[1]}/regions/approve", json={"regionIds": [pending["id"]]})
    of_another_image = api.get(f"{base}/{ids[2]}").json()["regions"][0]["id"]
    before = store_snapshot(api.app)
    for body, needle in (({"regionIds": [drawn]}, f"regions [{drawn}] were not suggested"),
                         ({"regionIds": [pending["id"], drawn]}, f"[{drawn}]"),
                         ({"regionIds": [9999]}, "regions [9999] do not belong"),
                         ({"regionIds": [of_another_image]}, f"[{of_another_image}] do not belong"),
                         ({}, "regionIds"), ({"regionIds": [0]}, "minimum")):
        r = api.post(f"{base}/{ids[1]}/regions/unapprove", json=body)
        assert r.status_code == 400 and needle in r.json()["detail"], r.json()
        assert r.headers["content-type"].startswith("application/problem+json")
    apple = m["labels"][0]["id"]
    sug = {"labelId": apple, "left": 0.5, "top": 0.5, "width": 0.2, "height": 0.2, "probability": 0.9}
    for body, needle in (({"suggestions": [{**sug, "labelId": 9999}]}, "unknown label"),
                         ({"suggestions": [{**sug, "left": 0.9}]}, "not inside the image"),
                         ({"suggestions": [{k: v for k, v in sug.items() if k != "probability"}]}, "probability"),
                         ({"suggestions": [{**sug, "probability": 1.5}]}, "maximum"),
                         ({"suggestions": [sug] * 1001}, "too long"), ({}, "suggestions")):
        r = api.post(f"{base}/{ids[1]}/regions/restore", json=body)
        assert r.status_code == 400 and needle in r.json()["detail"], r.json()
        assert r.headers["content-type"].startswith("application/problem+json")
    assert store_snapshot(api.app) == before
    assert api.post(f"{base}/9999/regions/unapprove", json={"regionIds": [drawn]}).status_code == 404
    # undo of the accept: the same box, a suggestion again (twice is no error)
    for _ in range(2):
        r = api.post(f"{base}/{ids[1]}/regions/unapprove", json={"regionIds": [pending["id"]]})
        assert r.status_code == 200 and r.json()["regions"] == api.get(f"{base}/{ids[1]}").json()["regions"]
        assert {x["id"]: x for x in r.json()["regions"]}[pending["id"]] == pending
    # undo of a reject: the suggestion back, with a new id, by label id or name
    api.post(f"{base}/{ids[1]}/regions/reject", json={"regionIds": [pending["id"]]})
    restored = {k: pending[k] for k in ("labelName", "left", "top", "width", "height", "probability")}
    r = api.post(f"{base}/{ids[1]}/regions/restore", json={"suggestions": [restored, {**sug, "probability": 0.25}]})
    assert r.status_code == 200, r.text
    got = r.json()["regions"]
    assert [x["id"] for x in got][0] == drawn and len(got) == 3 and got[1]["id"] > pending["id"]
    assert {**got[1], "id": pending["id"]} == pending
    assert (got[2]["approved"], got[2]["source"], got[2]["probability"]) == (False, "suggested", 0.25)
    # a restored suggestion is a suggestion like any other: accepted, then taken back again
    api.post(f"{base}/{ids[1]}/regions/approve", json={"regionIds": [got[2]["id"]]})
    r = api.post(f"{base}/{ids[1]}/regions/unapprove", json={"regionIds": [got[2]["id"]]})
    assert r.json()["regions"][2]["approved"] is False
