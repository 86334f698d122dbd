"""Versions, training control, suggestions, schedule and connector pages in a real browser: cancel
a run, save a draft, suggest on one image and accept or reject, publish, roll back, compare two
versions, unpublish, download an export, set and delete the schedule, download the connector."""
from __future__ import annotations

import io
import zipfile

import pytest

from connector.modeling.boxes import iou_ltwh
from tests.conftest import KEY
from tests.studio.conftest import shot
from tests.studio.helpers import saved
from tests.training_data import poll

pytestmark = pytest.mark.slow


def test_cancel_a_run_and_keep_a_draft(trained_server, new_page):
    srv, api, m = trained_server
    page, console = new_page(srv)
    page.goto(f"{srv.url}/studio/#/models/{m['id']}/train")
    page.check("#preset-fast")
    page.fill("#budget", "10")
    page.click("text=Advanced")
    page.fill("#max-iterations", "5000")
    page.click("#save-draft")
    page.wait_for_selector("text=Draft saved")
    assert api.get(f"/models/{m['id']}/draft").json()["settings"]["maxIterations"] == 5000
    # a budget over an hour is asked about first; Cancel starts nothing
    runs_before = len(api.get(f"/models/{m['id']}/runs").json())
    page.fill("#budget", "600")
    page.click("#start-training")
    page.get_by_role("dialog").get_by_text("Train for 10 h").wait_for()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    assert len(api.get(f"/models/{m['id']}/runs").json()) == runs_before
    page.fill("#budget", "10")
    page.click("#start-training")
    page.wait_for_selector("#run-status .badge:text('training')", timeout=120_000)
    page.click("#cancel-run")
    page.wait_for_selector("#run-result:has-text('Run canceled')", timeout=120_000)
    runs = api.get(f"/models/{m['id']}/runs").json()
    assert runs[-1]["status"] == "canceled"
    assert page.locator("#runs tbody tr").first.locator(".badge").inner_text() == "canceled"
    # a run that made a version names it, linked to its performance, with its score
    done = next(r for r in runs if r["status"] == "succeeded")
    version = next(v for v in api.get(f"/models/{m['id']}/versions").json() if v["id"] == done["versionId"])
    row = page.locator("#runs tbody tr").filter(has=page.locator(f"td:first-child:text-is('Run {done['id']}')"))
    link = row.locator(f"a[href='#/models/{m['id']}/performance?a={version['number']}']")
    assert link.inner_text() == f"v{version['number']}"
    score = version["performanceScore"]
    assert row.locator("td").last.inner_text() == ("–" if score is None else f"{score:.1f}")
    shot(page, "07b-train-canceled")
    # the draft is still there (only a run that succeeds consumes it); it can be discarded
    page.click("nav.sidenav >> text=Versions")
    page.wait_for_selector("#draft")
    assert "fast" in page.inner_text("#draft")
    page.get_by_role("button", name="Discard draft").click()
    page.wait_for_selector("h1:text-is('Versions')")
    page.wait_for_function("() => !document.getElementById('draft')")
    assert api.get(f"/models/{m['id']}/draft").status_code == 404
    assert console.problems() == []


def _ltwh(box: dict) -> tuple:
    return box["left"], box["top"], box["width"], box["height"]


def test_suggestions_on_one_image_rejected_and_accepted(trained_server, new_page):
    srv, api, m = trained_server
    mid, ds = m["id"], m["datasetId"]
    image_id = api.get(f"/models/{mid}/datasets/{ds}/images").json()["items"][-1]["id"]
    path = f"/models/{mid}/datasets/{ds}/images/{image_id}"
    content = api.get(path + "/content").content
    approved_boxes = [(r["labelName"], _ltwh(r)) for r in api.get(path).json()["regions"] if r["approved"]]
    predictions = api.post(f"/models/{mid}/quick-test", content=content, headers={"Content-Type": "image/jpeg"},
                           params={"threshold": 0}).json()["predictions"]
    # a box that repeats an approved one is not suggested (services/images.put_suggestions)
    probs = sorted((p["probability"] for p in predictions
                    if not any(name == p["tagName"] and iou_ltwh(box, _ltwh(p["boundingBox"])) >= 0.5
                               for name, box in approved_boxes)), reverse=True)
    assert len(probs) >= 4
    page, console = new_page(srv)
    page.goto(f"{srv.url}/studio/#{path.replace('/datasets/' + str(ds), '')}?dataset={ds}")
    page.wait_for_selector("#label-image[src^='blob:']")
    approved_before = sum(r["approved"] for r in api.get(path).json()["regions"])
    cut = round(probs[3] - 0.001, 4)  # answers round probabilities; stay clear of the 4th one
    page.fill("#suggest-min", str(cut))
    page.click("#suggest-image")
    page.wait_for_selector("#surface .box.suggested rect.frame")
    pending = [r for r in api.get(path).json()["regions"] if not r["approved"]]
    assert len(pending) >= 4 and all(r["probability"] >= cut for r in pending)
    assert not [r for r in pending for name, box in approved_boxes
                if name == r["labelName"] and iou_ltwh(box, _ltwh(r)) >= 0.5]
    # drawn dashed, with the probability on the tag
    assert page.locator("#surface .box.suggested").count() == len(pending)
    assert "%" in page.locator("#surface .box.suggested text").first.text_content()
    dash = page.eval_on_selector("#surface .box.suggested rect.frame", "el => getComputedStyle(el).strokeDasharray")
    assert dash not in ("", "none")
    shot(page, "05c-labeling-suggested")
    # an undoable step first: an approved box nudged
    page.locator("#box-list li[data-suggested='false']").first.locator("button").first.click()
    with saved(page):
        page.keyboard.press("Shift+ArrowRight")
    nudged = sorted(_ltwh(r) for r in api.get(path).json()["regions"] if r["approved"])

    def server():
        regions = api.get(path).json()["regions"]
        return (sorted(_ltwh(r) for r in regions if r["approved"]),
                sorted((r["labelName"], _ltwh(r), r["probability"]) for r in regions if not r["approved"]))

    suggestions = sorted((r["labelName"], _ltwh(r), r["probability"]) for r in pending)
    rejected = page.locator("#box-list li[data-suggested='true']").first.locator("button").first.inner_text()
    with saved(page):
        page.locator("#box-list li[data-suggested='true']").first.get_by_role("button", name="Reject").click()
    assert len(server()[1]) == len(pending) - 1
    # Ctrl+Z brings the rejected suggestion back (stored again, with its probability), not the nudge;
    # Ctrl+Y rejects it again, and Ctrl+Z once more brings it back
    for key, waiting in (("Control+z", len(pending)), ("Control+y", len(pending) - 1), ("Control+z", len(pending))):
        with saved(page):
            page.keyboard.press(key)
        boxes, waiting_now = server()
        assert boxes == nudged and len(waiting_now) == waiting
    assert waiting_now == suggestions
    assert page.locator("#surface .box.suggested").count() == len(pending)
    assert rejected in page.locator("#box-list li[data-suggested='true']").all_inner_texts()[-1]
    with saved(page):
        page.click("#accept-all")
    regions = api.get(path).json()["regions"]
    assert all(r["approved"] for r in regions) and len(regions) == approved_before + len(pending)
    # Ctrl+Z after accepting: the boxes are suggestions again (the same ids), the approved ones as they were
    ids = {r["id"] for r in regions}
    with saved(page):
        page.keyboard.press("Control+z")
    assert server() == (nudged, suggestions) and {r["id"] for r in api.get(path).json()["regions"]} == ids
    assert page.locator("#surface .box.suggested").count() == len(pending)
    # the Redo button accepts them again
    with saved(page):
        page.click("#redo")
    assert api.get(path).json()["regions"] == regions
    assert console.problems() == []


def test_publish_roll_back_unpublish_and_export(trained_server, new_page):
    srv, api, m = trained_server
    mid = m["id"]
    versions = api.get(f"/models/{mid}/versions").json()
    if len(versions) < 2:
        r = api.post(f"/models/{mid}/train", json={"preset": "fast", "maxIterations": 2, "seed": 2})
        assert poll(api, r.headers["Location"], timeout=600)["status"] == "succeeded"
    last = api.get(f"/models/{mid}/versions").json()[-1]["number"]
    page, console = new_page(srv)
    page.goto(f"{srv.url}/studio/#/models/{mid}/versions")
    row = lambda n: page.locator(f"#versions tr[data-version='{n}']")  # noqa: E731
    row(last).locator("button[data-action='publish']").click()
    row(last).locator(".badge:text('published')").wait_for()
    assert api.get(f"/models/{mid}/versions/published").json()["number"] == last
    # an older version offers a roll back
    back = row(1).locator("button[data-action='publish']")
    assert back.inner_text() == "Roll back to this"
    back.click()
    row(1).locator(".badge:text('published')").wait_for()
    assert api.get(f"/models/{mid}/versions/published").json()["number"] == 1
    # where flows call it, as Custom Vision's prediction URL; the key stays a placeholder
    from urllib.parse import quote
    assert page.inner_text("#prediction-url") == f"{srv.url}/api/v1/models/{quote(m['name'])}/detect"
    sample = page.inner_text("#prediction-sample")
    assert "X-API-Key: <your key>" in sample and KEY not in page.content()
    # each published version says what serves it, and why on hover
    served = api.get(f"/models/{mid}/versions/1").json()["engine"]
    chip = row(1).locator(f".badge[data-engine='{served['name']}']")
    chip.wait_for()
    assert chip.text_content() == "served by " + served["name"] + (" int8" if served["precision"] == "int8" else "")
    assert chip.get_attribute("title") == served["reason"]
    shot(page, "10b-versions-rolled-back")
    # the export downloads as a zip with the config and the weights
    with page.expect_download() as info:
        row(1).get_by_role("button", name="Detectron2 zip").click()
    names = zipfile.ZipFile(io.BytesIO(open(info.value.path(), "rb").read())).namelist()
    assert "config.yaml" in names and "model_final.pth" in names
    assert info.value.suggested_filename == "shapes-v1.zip"
    # two versions side by side
    page.goto(f"{srv.url}/studio/#/models/{mid}/performance?a={last}&b=1")
    page.wait_for_selector("#compare")
    text = page.inner_text("#compare")
    a, b = (api.get(f"/models/{mid}/versions/{n}").json() for n in (last, 1))
    assert f"Version {last}" in text and "Version 1" in text
    assert f"{a['performanceScore']:.1f}" in text and f"{b['performanceScore']:.1f}" in text
    assert page.locator("#compare table").first.locator("tbody tr").count() >= 6
    shot(page, "08b-performance-compare")
    page.goto(f"{srv.url}/studio/#/models/{mid}/versions")
    row(1).locator("button[data-action='unpublish']").click()
    page.get_by_role("dialog").get_by_role("button", name="Unpublish").click()
    page.wait_for_selector("text=No version is published")
    assert api.get(f"/models/{mid}").json()["publishedVersionId"] is None
    assert console.problems() == []


def test_schedule_and_connector(trained_server, new_page):
    srv, api, m = trained_server
    page, console = new_page(srv)
    page.goto(f"{srv.url}/studio/#/models/{m['id']}/schedule")
    page.wait_for_selector("#schedule-state:text('No schedule')")
    page.fill("#cron", "0 3 * * 1")
    page.uncheck("#only-new")
    page.click("#save-schedule")
    page.wait_for_selector("#schedule-state dd:has-text('enabled')")
    schedule = api.get(f"/models/{m['id']}/schedule").json()
    assert schedule["cron"] == "0 3 * * 1" and schedule["onlyIfNewData"] is False and schedule["enabled"] is True
    assert schedule["nextRun"] and page.inner_text("#schedule-state").count("–") <= 2  # next run shown
    shot(page, "15-schedule")
    page.fill("#cron", "every day")
    page.click("#save-schedule")
    page.wait_for_selector(".toast.error:has-text('not valid')")
    assert api.get(f"/models/{m['id']}/schedule").json()["cron"] == "0 3 * * 1"  # a bad cron changes nothing
    # error toasts: at most 3 on screen (the oldest makes way), and each goes by itself after a while
    page.clock.install()
    for n in range(2, 5):
        page.fill("#cron", f"every {n} days")
        page.click("#save-schedule")
        page.wait_for_selector(f".toast.error:has-text('every {n} days')")
    assert page.locator(".toast").count() == 3 and page.locator(".toast:has-text(\"'every day'\")").count() == 0
    page.clock.fast_forward(9000)
    page.wait_for_function("() => !document.querySelector('.toast')")
    page.click("#delete-schedule")
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.wait_for_selector("#schedule-state:text('No schedule')")
    assert api.get(f"/models/{m['id']}/schedule").status_code == 404
    # the connector package downloads without the key; the page says how to import it
    page.click("text=Connector")
    page.wait_for_selector("h1:text-is('Connector')")
    with page.expect_download() as info:
        page.click("#connector-download")
    names = zipfile.ZipFile(info.value.path()).namelist()
    assert "apiDefinition.swagger.json" in names and "apiProperties.json" in names
    assert "Import an OpenAPI file" in page.inner_text("main")
    shot(page, "16-connector")
    assert console.problems() == []
