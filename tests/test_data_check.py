"""The data check: counts per label and the Custom Vision / AI Builder training rules."""
from tests.conftest import b64, png_bytes


def seed_images(api, m, counts: dict, unboxed=0):
    images, seed = [], 0
    for label, n in counts.items():
        for _ in range(n):
            seed += 1
            images.append({"content": b64(png_bytes(seed=seed)),
                           "regions": [{"labelName": label, "left": 0.1, "top": 0.1, "width": 0.2, "height": 0.2}]})
    for _ in range(unboxed):
        seed += 1
        images.append({"content": b64(png_bytes(seed=seed))})
    for i in range(0, len(images), 32):
        r = api.post(f"/models/{m['id']}/datasets/{m['datasetId']}/images", json={"images": images[i:i + 32]})
        assert r.status_code == 201, r.text


def codes(check):
    return {(w["code"], w["severity"], w["label"]) for w in check["warnings"]}


def test_blocking_under_5_and_per_label_counts(api):
    m = api.model("fruit", ["apple", "banana", "cherry"])
    seed_images(api, m, {"apple": 15, "banana": 4}, unboxed=2)
    check = api.get(f"/models/{m['id']}/data-check").json()
    assert [(x["name"], x["images"], x["boxes"]) for x in check["labels"]] == [
        ("apple", 15, 15), ("banana", 4, 4), ("cherry", 0, 0)]
    assert check["images"] == 21 and check["imagesWithoutBoxes"] == 2
    assert ("TooFewImages", "blocking", "banana") in codes(check)
    assert ("NoImages", "blocking", "cherry") in codes(check)
    assert ("FewImages", "advice", "apple") in codes(check)
    assert ("ImagesWithoutBoxes", "advice", None) in codes(check)
    assert check["canTrain"] is False


def test_five_per_label_trains_with_advice_that_the_score_will_vary(api):
    m = api.model("fruit", ["apple", "banana"])
    seed_images(api, m, {"apple": 5, "banana": 14})
    check = api.get(f"/models/{m['id']}/data-check").json()
    assert check["canTrain"] is True
    assert {("VeryFewImages", "advice", "apple"), ("VeryFewImages", "advice", "banana")} <= codes(check)
    vary = [w["message"] for w in check["warnings"] if w["code"] == "VeryFewImages"]
    assert all("under 15 the performance score will vary" in m for m in vary)


def test_a_label_without_images_blocks_even_with_no_minimum(make_app):
    from tests.conftest import Api
    api = Api(make_app(data_check={"min_images_per_label": 0}))
    m = api.model("fruit", ["apple", "banana"])
    seed_images(api, m, {"apple": 1})
    check = api.get(f"/models/{m['id']}/data-check").json()
    assert codes(check) >= {("NoImages", "blocking", "banana")} and check["canTrain"] is False


def test_small_pictures_are_kept_and_get_advice(api):
    m = api.model("fruit", ["apple"])
    small = [{"content": b64(png_bytes(40, 32, seed=s)),
              "regions": [{"labelName": "apple", "left": 0.2, "top": 0.2, "width": 0.5, "height": 0.5}]}
             for s in range(3)]
    r = api.post(f"/models/{m['id']}/datasets/{m['datasetId']}/images", json={"images": small})
    assert r.status_code == 201 and r.json()["created"] == 3, r.text
    seed_images(api, m, {"apple": 2})  # 320x256: not small
    check = api.get(f"/models/{m['id']}/data-check").json()
    assert check["smallImages"] == 3
    small_advice = [w for w in check["warnings"] if w["code"] == "SmallImages"]
    assert small_advice[0]["severity"] == "advice" and "3 images are under 256 px" in small_advice[0]["message"]


def test_advice_only_can_train_and_imbalance(api):
    m = api.model("fruit", ["apple", "banana"])
    seed_images(api, m, {"apple": 15, "banana": 31})
    check = api.get(f"/models/{m['id']}/data-check").json()
    assert check["canTrain"] is True
    assert ("Imbalance", "advice", "apple") in codes(check)
    assert not any(w["severity"] == "blocking" for w in check["warnings"])


def test_rules_come_from_config_and_dataset_filter(make_app):
    from tests.conftest import Api
    api = Api(make_app(data_check={"min_images_per_label": 2, "stable_images_per_label": 3,
                                   "advised_images_per_label": 3}))
    m = api.model("fruit", ["apple"])
    seed_images(api, m, {"apple": 3})
    check = api.get(f"/models/{m['id']}/data-check").json()
    assert check["canTrain"] is True and check["warnings"] == []
    ev = api.post(f"/models/{m['id']}/datasets", json={"name": "eval", "kind": "evaluation"}).json()
    check = api.get(f"/models/{m['id']}/data-check", params={"datasetId": ev["id"]}).json()
    assert check["images"] == 0 and check["canTrain"] is False
    assert api.get(f"/models/{m['id']}/data-check", params={"datasetId": 999}).status_code == 404


def test_a_box_repeated_on_its_object_gets_advice(api):
    """Two boxes of one label on one object (IoU >= 0.9) are advice naming the label and how many;
    overlapping neighbours (IoU under 0.9) and boxes of another label on the same place are not."""
    m = api.model("fruit", ["apple", "banana"])

    def r(label, left, top=0.1, width=0.2):
        return {"labelName": label, "left": left, "top": top, "width": width, "height": 0.2}

    images = [[r("apple", 0.1), r("apple", 0.101), r("apple", 0.5)],   # one repeat (IoU 0.99)
              [r("apple", 0.1), r("apple", 0.1), r("apple", 0.1, width=0.19)],  # two repeats of one box
              [r("apple", 0.1), r("apple", 0.12), r("banana", 0.1)],  # IoU 0.82; banana on an apple's place
              [r("banana", 0.1), r("banana", 0.6)]]
    r_ = api.post(f"/models/{m['id']}/datasets/{m['datasetId']}/images", json={"images": [
        {"content": b64(png_bytes(seed=60 + i)), "regions": regions} for i, regions in enumerate(images)]})
    assert r_.status_code == 201, r_.text
    ids = [x["imageId"] for x in r_.json()["results"]]
    check = api.get(f"/models/{m['id']}/data-check").json()
    repeated = [w for w in check["warnings"] if w["code"] == "DuplicateBoxes"]
    assert [(w["severity"], w["label"]) for w in repeated] == [("advice", "apple")]
    assert repeated[0]["message"].startswith("3 boxes of 'apple' in 2 images lie on another box of 'apple' (IoU >= 0.9)")
    assert repeated[0]["images"] == [{"id": ids[0], "datasetId": m["datasetId"]}, {"id": ids[1], "datasetId": m["datasetId"]}]
    assert all("images" not in w for w in check["warnings"] if w["code"] != "DuplicateBoxes")
    assert [(x["name"], x["boxes"]) for x in check["labels"]] == [("apple", 8), ("banana", 3)]
