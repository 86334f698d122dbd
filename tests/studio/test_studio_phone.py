"""The studio on a 390-px phone: the models list as cards; quick test with the camera input, paste
and a tap-sized layout; the versions as cards with every action on screen; the model's tab strip
scrolled to the current page; and a box drawn with a finger (real touch events, through
Chromium's DevTools input)."""
from __future__ import annotations

import base64

import pytest

from tests.studio.conftest import shot, sign_in
from tests.studio.helpers import approved, saved
from tests.training_data import shapes_image

pytestmark = pytest.mark.slow

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}

PASTE = """(b64) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], "pasted.jpg", { type: "image/jpeg" }));
  document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
}"""


# whether the current page's tab lies in the visible part of the model's tab strip (which scrolls
# sideways on a phone: it must, for the test to say anything)
TAB_IN_VIEW = """() => {
  const strip = document.querySelector("#sidenav ul");
  const box = strip.getBoundingClientRect();
  const tab = strip.querySelector("[aria-current='page']").getBoundingClientRect();
  return { scrolls: strip.scrollWidth > strip.clientWidth, inView: tab.left >= box.left - 0.5 && tab.right <= box.right + 0.5 };
}"""


@pytest.fixture
def trained(trained_server):
    return trained_server


def on_screen(box, width=390):
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width


def current_tab_in_view(page) -> bool:
    state = page.evaluate(TAB_IN_VIEW)
    assert state["scrolls"], "the tab strip fits the screen: the check says nothing"
    return state["inView"]


def test_quick_test_on_a_phone(trained, browser):
    srv, api, m = trained
    context = browser.new_context(**PHONE)
    unpublished = False
    try:
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        sign_in(page, srv)
        # the models list: a card per model, every cell on the screen (no table to scroll sideways)
        cells = page.locator("#models-table tbody td")
        assert cells.count() >= 6 and all(on_screen(c.bounding_box()) for c in cells.all())
        page.goto(f"{srv.url}/studio/#/models/{m['id']}/quick-test")
        page.wait_for_selector("#qt-drop")
        assert current_tab_in_view(page)  # "Quick test" is past the screen's right edge in the strip
        assert "Ctrl+V" not in page.inner_text("#qt-drop")  # a keyboard hint, on a touch screen
        file_input = page.locator("#qt-file")
        assert file_input.get_attribute("capture") == "environment" and file_input.get_attribute("accept") == "image/*"
        pick = page.locator("#qt-pick").bounding_box()
        assert pick["height"] >= 32 and pick["x"] >= 0 and pick["x"] + pick["width"] <= 390
        data, _ = shapes_image(30)
        file_input.set_input_files({"name": "camera.jpg", "mimeType": "image/jpeg", "buffer": data})
        page.wait_for_selector("#qt-status:text('candidate boxes')")
        page.locator("#qt-threshold").fill("0")
        expected = api.post(f"/models/{m['id']}/quick-test", json={"content": base64.b64encode(data).decode()},
                            params={"threshold": 0, "maxResults": 100}).json()["predictions"]
        assert page.locator("#qt-boxes g.det").count() == len(expected) > 0
        # nothing wider than the screen: no sideways scrolling
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        stage = page.locator("#qt-stage").bounding_box()
        assert stage["width"] <= 390 and stage["x"] >= 0
        page.locator("#qt-threshold").fill("0.02")
        kept = [p for p in expected if p["probability"] >= 0.02]
        assert page.locator("#qt-boxes g.det").count() == len(kept)
        shot(page, "13-quick-test-phone")
        # a pasted image is tested too
        other, _ = shapes_image(31)
        page.evaluate(PASTE, base64.b64encode(other).decode())
        page.wait_for_function("() => document.getElementById('qt-status').textContent.includes('candidate boxes')"
                               " && document.getElementById('qt-image').naturalWidth > 0")
        # versions: a card each, every action and download button on the screen and tap-sized; the
        # prediction URL of the published version wraps (the shared model is left unpublished)
        unpublished = api.get(f"/models/{m['id']}/versions/published").status_code == 404
        if unpublished:
            api.post(f"/models/{m['id']}/versions/1/publish")
        page.locator("#sidenav a", has_text="Versions").tap()
        page.wait_for_selector("#versions tbody tr")
        page.wait_for_selector("#prediction-url")
        buttons = page.locator("#versions tbody button")
        assert buttons.count() >= 4
        for b in buttons.all():
            box = b.bounding_box()
            assert on_screen(box) and box["height"] >= 32, (b.inner_text(), box)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        assert current_tab_in_view(page)
        shot(page, "10c-versions-phone")
        # the tab at the far end, tapped: the strip that comes with its page shows it too
        page.locator("#sidenav a", has_text="Settings").tap()
        page.wait_for_selector("h1:text-is('Settings')")
        assert current_tab_in_view(page)
        # each label's name, Rename and Delete on one line
        row = page.locator(".label-row").first
        name, delete = row.locator("input[type=text]").bounding_box(), row.locator("button.danger").bounding_box()
        assert abs(name["y"] - delete["y"]) < name["height"] and on_screen(delete), (name, delete)
        assert errors == []
    finally:
        if unpublished:
            api.post(f"/models/{m['id']}/unpublish")
        context.close()


def test_a_box_drawn_with_a_finger(trained, browser):
    srv, api, m = trained
    context = browser.new_context(**PHONE)
    try:
        page = context.new_page()
        sign_in(page, srv)
        ds = m["datasetId"]
        image_id = api.get(f"/models/{m['id']}/datasets/{ds}/images").json()["items"][0]["id"]
        page.goto(f"{srv.url}/studio/#/models/{m['id']}/images/{image_id}")
        page.wait_for_selector("#label-image[src^='blob:']")
        # the labels come first, one row of chips above the picture, each on the screen
        chips = page.locator(".label-list button")
        stage = page.locator("#stage").bounding_box()
        assert chips.count() >= 2 and all(on_screen(c.bounding_box()) and c.bounding_box()["y"] < stage["y"]
                                          for c in chips.all())
        before = len(approved(api, m["id"], ds, image_id))
        r = page.locator("#surface").bounding_box()
        cdp = context.new_cdp_session(page)
        x0, y0 = r["x"] + r["width"] * 0.1, r["y"] + r["height"] * 0.6
        x1, y1 = r["x"] + r["width"] * 0.35, r["y"] + r["height"] * 0.9
        page.keyboard.press("Escape")
        with saved(page):
            cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y0}]})
            for k in range(1, 6):
                f = k / 5
                cdp.send("Input.dispatchTouchEvent", {"type": "touchMove",
                                                      "touchPoints": [{"x": x0 + (x1 - x0) * f, "y": y0 + (y1 - y0) * f}]})
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        boxes = approved(api, m["id"], ds, image_id)
        assert len(boxes) == before + 1
        new = [b for b in boxes if abs(b["left"] - 0.1) < 0.02]
        assert new and abs(new[0]["top"] - 0.6) < 0.02 and abs(new[0]["width"] - 0.25) < 0.02
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        shot(page, "14-labeling-phone")
    finally:
        context.close()
