"""Counts a flow can trust, through the API: a version records per-label thresholds chosen on
validation images with count errors and a score interval; detect, batch and quick test count from
those thresholds when the caller gives none, and an explicit threshold still wins."""
from __future__ import annotations

import pytest

from model_store.schema import Version
from tests.conftest import b64
from tests.test_training_api import TINY
from tests.training_data import LABELS, poll, shapes_image, trained_app

pytestmark = pytest.mark.slow

COUNTING = {**TINY, "training": {**TINY["training"], "overrides": {
    **TINY["training"]["overrides"],
    # tiny data: 14 images get a validation part; every candidate box comes out (scores ~0.05)
    "ODCONNECT.VALIDATION.MIN_IMAGES": 6, "ODCONNECT.VALIDATION.FRACTION": 0.34,
    "ODCONNECT.VALIDATION.MIN_LABEL_IMAGES": 1, "MODEL.RETINANET.SCORE_THRESH_TEST": 0.0}}}


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    app, api, m = trained_app(tmp_path_factory.mktemp("counting"), COUNTING, images=14)
    assert api.post(f"/models/{m['id']}/versions/1/publish").status_code == 200
    yield app, api, m
    app.odconnect.close()


def test_version_reports_thresholds_count_errors_and_score_interval(counted):
    app, api, m = counted
    v = api.get(f"/models/{m['id']}/versions/1").json()
    metrics = v["metrics"]
    assert metrics["validationImages"] >= 2 and metrics["evalImages"] >= 2
    for name in LABELS:
        per = metrics["perLabel"][name]
        assert per["thresholdFrom"] == "validation" and 0.05 <= per["threshold"] <= 0.95
        assert per["countError"] >= 0 and (per["relativeCountError"] is None or per["relativeCountError"] >= 0)
        assert {"precision", "recall", "ap50", "images", "boxes"} <= set(per)
    low, high = metrics["scoreInterval"]["low"], metrics["scoreInterval"]["high"]
    assert low <= metrics["score"] <= high and metrics["scoreInterval"]["level"] == 0.9
    assert any(a.startswith(f"score {metrics['score']:g}, likely between {low:g} and {high:g}")
               for a in metrics["advice"])
    # the images that chose the weights and thresholds are not the ones that scored them
    with app.odconnect.store.transaction() as s:
        snap = s.get(Version, v["id"]).data_snapshot
    assert snap["validation"] and snap["scored"] and not set(snap["validation"]) & set(snap["scored"])
    assert set(snap["validation"]) | set(snap["scored"]) <= set(snap["train"])


def _thresholds(api, m) -> dict[str, float]:
    per = api.get(f"/models/{m['id']}/versions/1").json()["metrics"]["perLabel"]
    return {name: per[name]["threshold"] for name in LABELS}


def _expected(everything: dict, thresholds: dict[str, float]) -> list[dict]:
    return [p for p in everything["predictions"] if p["probability"] >= thresholds[p["tagName"]]]


def test_detect_counts_from_the_versions_thresholds_unless_told_otherwise(counted):
    _, api, m = counted
    thresholds = _thresholds(api, m)
    data = b64(shapes_image(21)[0])
    everything = api.post(f"/models/{m['id']}/detect", json={"content": data, "threshold": 0}).json()
    default = api.post(f"/models/{m['id']}/detect", json={"content": data}).json()
    assert default["predictions"] == _expected(everything, thresholds)
    assert len(default["predictions"]) < len(everything["predictions"])  # scores under 0.05 are cut
    for c in default["counts"]:
        assert c["count"] == sum(p["tagName"] == c["tagName"] for p in default["predictions"])
    # an explicit threshold wins, for every label alike
    cut = 0.5 * (min(thresholds.values()))
    explicit = api.post(f"/models/{m['id']}/detect", json={"content": data}, params={"threshold": cut}).json()
    assert explicit["predictions"] == [p for p in everything["predictions"] if p["probability"] >= cut]
    assert len(explicit["predictions"]) >= len(default["predictions"])
    # batch and quick test count the same way
    batch = api.post(f"/models/{m['id']}/detect/batch", json={"images": [{"content": data}]}).json()
    assert batch["results"][0]["result"]["predictions"] == default["predictions"]
    quick = api.post(f"/models/{m['id']}/quick-test", json={"content": data}).json()
    assert quick["predictions"] == default["predictions"]


def test_a_configured_default_threshold_applies_to_every_label(tmp_path):
    app, api, m = trained_app(tmp_path, {**TINY, "inference": {"default_threshold": 0.0}}, images=8)
    try:
        api.post(f"/models/{m['id']}/versions/1/publish")
        data = b64(shapes_image(22)[0])
        default = api.post(f"/models/{m['id']}/detect", json={"content": data}).json()
        everything = api.post(f"/models/{m['id']}/detect", json={"content": data, "threshold": 0}).json()
        assert default["predictions"] == everything["predictions"]
        # 8 images: no validation part, so the version says so and keeps 0.5 for every label
        metrics = api.get(f"/models/{m['id']}/versions/1").json()["metrics"]
        assert metrics["validationImages"] == 0
        assert {p["threshold"] for p in metrics["perLabel"].values()} == {0.5}
        assert any("no validation part was held out" in a for a in metrics["advice"])
    finally:
        app.odconnect.close()
