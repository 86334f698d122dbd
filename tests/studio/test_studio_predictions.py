"""Learning from production in a real browser: turn capture on in the Predictions page, let detect
keep photos, review them (approve into training, fix boxes in the labeling page, discard, delete
all), read the monitoring panel; and the schedule page's last firings with the gate's decisions.

The module trains its own model (the session's shared one stays unpublished for the other
modules): version 1 published by its run's `always` policy, version 2 gated `ifBetter`, so the
history holds a real comparison of two scores.
"""
from __future__ import annotations

import datetime as dt
import re
import time

import pytest
from sqlalchemy import select

from connector.services import monitoring
from model_store.schema import Version

from tests.conftest import b64
from tests.studio.conftest import Server, shot
from tests.studio.helpers import saved
from tests.test_inference_api import INFER
from tests.training_data import LABELS, poll, shapes_image, upload_shapes

pytestmark = pytest.mark.slow

# INFER's small images on the `fast` preset (pretrained backbone) with a steep learning rate: 8
# iterations (about 20 s) give drawn shapes probabilities of 0.2-0.6, so a threshold of 0.3 keeps
# a few boxes per photo as suggestions, as a real model would. The raw weights: an average over
# 8 steps would still be mostly the initial ones.
CONFIG = {**INFER, "training": {**INFER["training"], "default_preset": "fast", "overrides": {
    **INFER["training"]["overrides"], "SOLVER.IMS_PER_BATCH": 4, "SOLVER.BASE_LR": 0.02, "SOLVER.WARMUP_ITERS": 2,
    "ODCONNECT.EMA.ENABLED": False}}}
ITERATIONS = 8
THRESHOLD = 0.3


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("predictions") / "store", **CONFIG)
    api = srv.api()
    m = api.model("shapes", LABELS)
    upload_shapes(api, m, 12)
    for policy in ("always", "ifBetter"):
        r = api.post(f"/models/{m['id']}/train", json={"maxIterations": ITERATIONS, "seed": 1, "publish": policy})
        assert r.status_code == 202, r.text
        assert poll(api, r.headers["Location"], timeout=900)["status"] == "succeeded"
    assert api.get(f"/models/{m['id']}/versions/published").status_code == 200
    yield srv, api, m
    srv.close()


def detect(api, m, seed: int, run_id: str) -> dict:
    r = api.post(f"/models/{m['id']}/detect", json={"content": b64(shapes_image(seed)[0])},
                 params={"threshold": THRESHOLD}, headers={"x-ms-workflow-run-id": run_id})
    assert r.status_code == 200, r.text
    return r.json()


def captures(api, m) -> list[dict]:
    return api.get(f"/models/{m['id']}/captures", params={"pageSize": 256}).json()["items"]


def suggestions(image: dict) -> int:
    return sum(not r["approved"] for r in image["regions"])


def close_pct(text: str, share: float) -> bool:
    """A percentage the page shows (rounded to a whole number) matches a share from the API."""
    return abs(float(re.search(r"(\d+)%", text).group(1)) - share * 100) <= 0.5 + 1e-9


def dismiss_toasts(page):
    """Close the messages in the corner (as a person would) so that screenshots show the page."""
    # their own close buttons, all at once: a message may time out meanwhile
    page.evaluate("() => document.querySelectorAll('.toast .toast-close').forEach((b) => b.click())")
    page.wait_for_function("() => !document.querySelector('.toast')")


def tiles(page):
    return page.locator("#capture-grid .tile[data-image-id]")


def wait_tiles(page, n: int):
    page.wait_for_function("n => document.querySelectorAll('#capture-grid .tile[data-image-id]').length === n", arg=n)


def test_predictions_capture_review_and_monitoring(published, new_page):
    srv, api, m = published
    mid, train_ds = m["id"], m["datasetId"]
    page, console = new_page(srv)
    page.goto(f"{srv.url}/studio/#/models/{mid}/predictions")
    page.wait_for_selector("h1:text-is('Predictions')")
    # off at first: the page says capture is opt-in and opens its setting
    assert "opt-in" in page.inner_text("#privacy-note") and "capture off" in page.inner_text("#capture-state")
    assert page.locator("#capture-card").is_visible() and page.is_checked("#capture-off")
    page.wait_for_selector("#capture-grid .empty:has-text('Turn capture on')")

    # a band upside down is refused with the reason, and nothing changes
    page.check("#capture-uncertain")
    page.fill("#band-low", "0.8")
    page.fill("#band-high", "0.2")
    page.click("#save-capture")
    page.wait_for_selector(".toast.error:has-text('bandLow < bandHigh')")
    assert api.get(f"/models/{mid}/capture").json()["mode"] == "off"
    page.fill("#band-low", "0.3")
    page.fill("#band-high", "0.7")
    page.check("#capture-all")
    page.fill("#max-images", "50")
    page.click("#save-capture")
    page.wait_for_selector("#capture-state:has-text('capture on: all')")
    setting = api.get(f"/models/{mid}/capture").json()
    assert setting["mode"] == "all" and setting["maxImages"] == 50 and setting["retentionDays"] == 30

    answers = [detect(api, m, 3000 + i, f"run-{i}") for i in range(4)]
    assert srv.app.odconnect.production.wait_idle(60)
    kept = captures(api, m)
    assert len(kept) == 4 and {i["capture"]["correlationId"] for i in kept} == {f"run-{i}" for i in range(4)}
    page.click("#refresh-button")
    wait_tiles(page, 4)
    page.wait_for_function("() => [...document.querySelectorAll('#capture-grid .tile img')].every(i => i.src.startsWith('blob:'))")
    assert page.inner_text("#capture-total") == "4 images"
    # each tile: its suggestions (the version's boxes) and its top probability, newest first
    for tile, item in zip(tiles(page).all(), kept):
        assert tile.get_attribute("data-image-id") == str(item["id"])
        assert tile.locator(".counts .badge").first.inner_text() == (f"{suggestions(item)}?" if suggestions(item) else "0")
        assert close_pct(tile.locator(".top").inner_text(), item["capture"]["topProbability"])
    assert sum(suggestions(i) for i in kept) >= sum(len(a["predictions"]) for a in answers) > 0
    assert page.locator("#capture-card").is_hidden()  # saved with capture on: the review is in view
    dismiss_toasts(page)
    shot(page, "17-predictions")

    # approve the newest into the training dataset: it moves with every box approved
    first = kept[0]
    tiles(page).nth(0).locator("input[type=checkbox]").check()
    assert page.inner_text("#selected-count") == "1 selected"
    page.select_option("#approve-dataset", str(train_ds))
    page.click("#approve-button")
    page.wait_for_selector(".toast:has-text('1 image moved into training')")
    wait_tiles(page, 3)
    moved = api.get(f"/models/{mid}/datasets/{train_ds}/images/{first['id']}").json()
    assert len(moved["regions"]) == suggestions(first) and all(r["approved"] for r in moved["regions"])
    assert first["id"] not in {i["id"] for i in captures(api, m)}

    # fix one in the labeling page: the production dataset opens there, its suggestions dashed
    fix = captures(api, m)[0]
    tiles(page).nth(0).locator("a.thumb-link").click()
    page.wait_for_selector("#label-image[src^='blob:']")
    assert page.locator("#surface .box.suggested").count() == suggestions(fix) > 0
    assert page.get_attribute("nav.sidenav a[aria-current=page]", "href").endswith("/predictions")
    rejected = 0
    if suggestions(fix) > 1:  # a wrong box goes, the rest are accepted
        with saved(page):
            page.locator("#box-list li[data-suggested='true']").last.get_by_role("button", name="Reject").click()
        rejected = 1
    with saved(page):
        page.click("#accept-all")
    fixed = api.get(f"/models/{mid}/datasets/{fix['datasetId']}/images/{fix['id']}").json()
    assert len(fixed["regions"]) == suggestions(fix) - rejected and all(r["approved"] for r in fixed["regions"])
    dismiss_toasts(page)
    shot(page, "17c-predictions-fix-boxes")
    page.click("text=← Predictions")
    page.wait_for_selector("h1:text-is('Predictions')")
    wait_tiles(page, 3)
    assert tiles(page).nth(0).locator(".badge.success").inner_text() == str(len(fixed["regions"]))
    assert tiles(page).nth(0).locator(".badge.warning").count() == 0  # nothing left to review on it

    # discard one (after a confirm)
    gone = captures(api, m)[-1]
    page.locator(f"#capture-grid .tile[data-image-id='{gone['id']}'] input[type=checkbox]").check()
    page.click("#discard-button")
    page.get_by_role("dialog").get_by_role("button", name="Discard").click()
    wait_tiles(page, 2)
    assert gone["id"] not in {i["id"] for i in captures(api, m)}
    assert api.get(f"/models/{mid}/datasets/{gone['datasetId']}/images/{gone['id']}").status_code == 404

    # monitoring: today's requests, no-detection rate and mean top probability, as the API has them
    mon = api.get(f"/models/{mid}/monitoring").json()
    today = mon["figures"][0]
    assert today["requests"] == 4 and len(mon["figures"]) == 1
    totals = page.inner_text("#monitoring-totals")
    assert re.search(r"Requests\s+4", totals)
    assert close_pct(re.search(r"No detection\s+(\d+%)", totals).group(1), today["noDetectionRate"])
    assert f"{today['meanTopProbability']:.2f}" in totals
    row = page.locator("#monitoring-days tbody tr").first.inner_text()
    assert today["day"] in row and f"{today['meanTopProbability']:.2f}" in row
    # too few images for the drift test: said, not flagged; the baseline to compare with is shown
    assert today["drift"]["note"] and today["drift"]["note"] in row and not today["drift"]["needsAttention"]
    baseline = mon["baselines"][0]
    assert f"On its {baseline['images']} evaluation images, version {baseline['version']}" in page.inner_text("#baseline")
    assert page.locator("#attention").count() == 0
    # the drift check, run by the service with a threshold every day passes, makes a real event:
    # its reason shows as needing attention
    ctx = srv.app.odconnect
    lenient = {**ctx.config["monitoring"], "drift_alpha": 1.01, "drift_min_images": 1, "min_baseline_images": 1}
    with ctx.store.transaction() as s:
        version_id = s.scalar(select(Version.id).where(Version.model_id == mid, Version.number == today["version"]))
    assert len(monitoring.check_drift(ctx.store, lenient, [(mid, version_id, dt.date.fromisoformat(today["day"]))])) == 1
    page.select_option("#monitoring-days-select", "30")
    page.wait_for_selector("#attention")
    reason = api.get(f"/models/{mid}/monitoring").json()["attention"][0]["reason"]
    assert "Kolmogorov-Smirnov" in reason and reason in page.inner_text("#attention")
    dismiss_toasts(page)
    page.locator("#monitoring").scroll_into_view_if_needed()
    shot(page, "17b-predictions-monitoring")

    # delete all, after a confirm
    page.click("#delete-all")
    page.get_by_role("dialog").get_by_role("button", name="Delete all").click()
    page.wait_for_selector("#capture-grid .empty")
    assert captures(api, m) == [] and api.get(f"/models/{mid}/capture").json()["images"] == 0
    assert console.problems() == []


def gate_decided(api, model_id: int, run_id: int, timeout: float = 120) -> dict:
    """The history entry of a gated run once the gate has decided (it publishes after the run
    has succeeded, so the run's status comes first)."""
    deadline = time.time() + timeout
    while True:
        entry = next(e for e in api.get(f"/models/{model_id}/schedule/history").json() if e["runId"] == run_id)
        if entry["outcome"] != "training":
            return entry
        assert time.time() < deadline, f"the gate of run {run_id} did not decide"
        time.sleep(0.1)


def test_schedule_shows_the_last_firings_and_the_gate(published, new_page):
    srv, api, m = published
    mid = m["id"]
    page, console = new_page(srv)
    page.goto(f"{srv.url}/studio/#/models/{mid}/schedule")
    page.wait_for_selector("#schedule-history")
    # the two gated runs of the fixture, newest first
    rows = page.locator("#schedule-history tbody tr")
    assert rows.count() == 2
    assert [rows.nth(i).get_attribute("data-outcome") for i in (0, 1)] == [
        e["outcome"] for e in api.get(f"/models/{mid}/schedule/history").json()]
    assert rows.nth(1).get_attribute("data-outcome") == "published"
    # a schedule that publishes if better, set in the page
    page.fill("#cron", "0 4 * * *")
    page.select_option("#publish", "ifBetter")
    page.fill("#publish-margin", "-100")  # any score publishes: the run's outcome is known
    page.click("#save-schedule")
    page.wait_for_selector("#schedule-state dd:has-text('If better (margin -100)')")
    schedule = api.get(f"/models/{mid}/schedule").json()
    assert schedule["publish"] == "ifBetter" and schedule["publishMargin"] == -100
    # it fires (the scheduler's own firing, by hand): new data trains and the gate publishes;
    # then nothing new: skipped
    upload_shapes(api, m, 1, start=900)
    started = srv.app.odconnect.scheduler.fire(mid)
    run_id = int(re.fullmatch(r"started run (\d+)", started).group(1))
    assert poll(api, f"/api/v1/models/{mid}/runs/{run_id}", timeout=300)["status"] == "succeeded"
    gate_decided(api, mid, run_id)
    assert srv.app.odconnect.scheduler.fire(mid).startswith("skipped: no new data")
    history = api.get(f"/models/{mid}/schedule/history").json()
    fired = history[1]
    assert fired["trigger"] == "schedule" and fired["outcome"] == "published"
    assert fired["newScore"] is not None and fired["publishedScore"] is not None
    # the open page follows the firings by itself, no reload
    page.wait_for_selector("#schedule-history tbody tr:nth-child(4)", timeout=30000)
    rows = page.locator("#schedule-history tbody tr")
    assert [rows.nth(i).get_attribute("data-outcome") for i in range(4)] == [e["outcome"] for e in history]
    skipped, gated = rows.nth(0).inner_text(), rows.nth(1).inner_text()
    assert "skipped" in skipped and "no new data" in skipped
    assert "+-" not in gated  # a loss reads as one signed number
    assert "published" in gated and f"v{fired['version']}" in gated and f"v{fired['publishedVersion']}" in gated
    assert rows.nth(1).locator(".new-score").inner_text().startswith(f"{fired['newScore']:.1f}")
    assert rows.nth(1).locator(".published-score").inner_text() == f"{fired['publishedScore']:.1f}"
    assert f"compared on {fired['comparedOn']['images']}" in gated
    # and so does the state card: when it last fired and what came of it
    state = api.get(f"/models/{mid}/schedule").json()
    assert state["lastFired"] and state["lastOutcome"]
    page.wait_for_function("t => document.querySelector('#schedule-state .last-outcome')?.textContent === t",
                           arg=state["lastOutcome"], timeout=30000)
    assert page.inner_text("#schedule-state .last-fired").strip() not in ("", "–")
    page.locator("#schedule-history").scroll_into_view_if_needed()
    shot(page, "15b-schedule-history")
    assert console.problems() == []
