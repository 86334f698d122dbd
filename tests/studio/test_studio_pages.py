"""The studio's pages in a real browser: sign in and 401, CSP, keyboard labeling, the grid's
thumbnails and paging, models and labels, COCO import."""
from __future__ import annotations

import io
import json
import re
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.request import urlopen

from tests.conftest import KEY
from tests.studio.conftest import shot, sign_in
from tests.studio.helpers import approved, close_to, draw_box, label_key, saved
from tests.training_data import LABELS, shapes_image, upload_shapes

STATIC = Path(__file__).resolve().parents[2] / "connector" / "studio" / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def test_studio_is_served_with_a_strict_csp_and_no_inline_code(server):
    with urlopen(server.url + "/studio/") as r:
        html = r.read().decode()
        assert r.headers["Content-Security-Policy"].startswith(CSP)
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Cache-Control"] == "no-cache"
        assert r.headers["Content-Type"].startswith("text/html")
    with urlopen(server.url + "/studio/js/main.js") as r:
        assert r.headers["Content-Type"].split(";")[0] in ("text/javascript", "application/javascript")
        assert r.headers["Content-Security-Policy"].startswith(CSP) and r.headers["ETag"]
    with urlopen(server.url + "/") as r:  # the root leads to the studio
        assert r.url.endswith("/studio/")

    class Inline(HTMLParser):
        found: list = []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if "style" in attrs or any(k.startswith("on") for k in attrs) or (tag == "script" and "src" not in attrs):
                self.found.append((tag, attrs))
            if tag == "style":
                self.found.append((tag, attrs))

    parser = Inline()
    parser.feed(html)
    assert parser.found == []
    # no module builds markup from strings or sets style attributes the CSP would block
    for path in STATIC.rglob("*.js"):
        text = path.read_text()
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, path
        assert not re.search(r"setAttribute\(\s*[\"']style", text), path
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", ""), path
        assert "https://" not in text, path


def test_every_page_renders_without_console_errors_or_csp_violations(server, new_page):
    api = server.api()
    m = api.model("shapes", LABELS)
    ids = upload_shapes(api, m, 3)
    page, console = new_page(server)
    base = f"{server.url}/studio/#/models/{m['id']}"
    for path, heading in [("images", "Images"), (f"images/{ids[0]}", "Image 1 of 3"), ("data-check", "Data check"),
                          ("train", "Train"), ("performance", "Performance"), ("versions", "Versions"),
                          ("quick-test", "Quick test"), ("predictions", "Predictions"), ("schedule", "Schedule"), ("settings", "Settings")]:
        page.goto(f"{base}/{path}")
        page.wait_for_selector(f"h1:text-is('{heading}')")
        page.wait_for_load_state("networkidle")
    page.goto(server.url + "/studio/#/connector")
    page.wait_for_selector("h1:text-is('Connector')")
    assert console.problems() == []
    # CSP violations would also be reported as securitypolicyviolation events
    page.evaluate("window.__csp = []; document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective))")
    page.goto(f"{base}/images")
    page.wait_for_selector(".tile img[src^='blob:']")
    assert page.evaluate("window.__csp || []") == []


def test_sign_in_keeps_the_key_out_of_urls_and_a_401_shows_a_clear_page(server, new_page):
    page, console = new_page(server, signed_in=False)
    requests = []
    page.on("request", lambda r: requests.append((r.url, r.headers.get("x-api-key"))))
    page.goto(server.url + "/studio/")
    page.wait_for_selector("h1:text-is('Sign in')")
    shot(page, "01-sign-in")
    page.get_by_role("textbox", name="API key").fill("not-the-key")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("text=That key was not accepted")
    sign_in(page, server)
    assert page.evaluate("sessionStorage.getItem('odconnect.apiKey')") == KEY
    assert all(KEY not in url for url, _ in requests)
    # the key goes to the API of this origin only, in the header
    for url, key in requests:
        assert url.startswith(server.url)
        if "/api/v1/" in url and not url.endswith("/health"):
            assert key in (KEY, "not-the-key"), url
        if "/studio/" in url:
            assert key is None, url
    # the key is revoked (here: replaced by a wrong one): the next call leads to the 401 page
    page.evaluate("sessionStorage.setItem('odconnect.apiKey', 'revoked')")
    page.reload()
    page.wait_for_selector("#unauthorized")
    assert "401" in page.inner_text("#unauthorized")
    assert page.get_by_role("heading", name="Your API key was not accepted").is_visible()
    assert page.evaluate("sessionStorage.getItem('odconnect.apiKey')") is None
    shot(page, "02-unauthorized")
    sign_in(page, server)
    assert page.url.endswith("#/models")
    # from a deep link: the sign-in page leaves no history entry, so Back neither shows it nor signs out
    page.evaluate("sessionStorage.clear()")
    page.goto(server.url + "/studio/#/connector")
    page.get_by_role("textbox", name="API key").fill(KEY)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("h1:text-is('Connector')")
    page.go_back()
    page.wait_for_function("() => location.hash === '#/models'")
    page.wait_for_selector("h1:text-is('Models')")
    page.go_forward()
    page.wait_for_selector("h1:text-is('Connector')")
    assert page.evaluate("sessionStorage.getItem('odconnect.apiKey')") == KEY
    # a signed-in tab sent to the sign-in page goes on to the models, still signed in
    page.goto(server.url + "/studio/#/signin")
    page.wait_for_selector("h1:text-is('Models')")
    assert page.url.endswith("#/models") and page.evaluate("sessionStorage.getItem('odconnect.apiKey')") == KEY


def test_keyboard_labeling(server, new_page):
    api = server.api()
    m = api.model("shapes", LABELS)
    ids = upload_shapes(api, m, 3, boxes=False)
    ds = m["datasetId"]
    page, console = new_page(server)
    page.goto(f"{server.url}/studio/#/models/{m['id']}/images")
    page.locator(".tile").first.click()
    page.wait_for_selector("h1:text-is('Image 1 of 3')")
    page.wait_for_selector("#label-image[src^='blob:']")
    _, regions = shapes_image(0)
    # 2 picks "circle"; the box drawn gets it
    page.keyboard.press("2")
    with saved(page):
        draw_box(page, regions[0])
    boxes = approved(api, m["id"], ds, ids[0])
    assert len(boxes) == 1 and boxes[0]["labelName"] == "circle" and close_to(boxes[0], regions[0])
    # 1 relabels the selected box
    with saved(page):
        page.keyboard.press("1")
    assert [b["labelName"] for b in approved(api, m["id"], ds, ids[0])] == ["square"]
    # typing filters the labels; Enter picks the first match (and relabels the selected box)
    page.keyboard.type("ci")
    assert [t.split()[-1] for t in page.locator("#label-list button").all_inner_texts()] == ["circle"]
    with saved(page):
        page.keyboard.press("Enter")
    assert [b["labelName"] for b in approved(api, m["id"], ds, ids[0])] == ["circle"]
    # Shift+arrows nudge the box, staying in the image
    before = approved(api, m["id"], ds, ids[0])[0]
    with saved(page):  # a burst of nudges is saved as one request
        for _ in range(5):
            page.keyboard.press("Shift+ArrowRight")
    after = approved(api, m["id"], ds, ids[0])[0]
    assert after["left"] > before["left"] and abs(after["width"] - before["width"]) < 1e-6
    # Delete removes it, Ctrl+Z brings it back
    with saved(page):
        page.keyboard.press("Delete")
    assert approved(api, m["id"], ds, ids[0]) == []
    with saved(page):
        page.keyboard.press("Control+z")
    assert len(approved(api, m["id"], ds, ids[0])) == 1
    # Esc deselects: Delete then does nothing
    page.keyboard.press("Escape")
    page.keyboard.press("Delete")
    page.wait_for_timeout(400)
    assert len(approved(api, m["id"], ds, ids[0])) == 1
    # a box dragged past the image's edge stays inside it
    with saved(page):
        draw_box(page, {"left": 0.7, "top": 0.7, "width": 0.6, "height": 0.6})
    edge = [b for b in approved(api, m["id"], ds, ids[0]) if b["left"] > 0.6][0]
    assert edge["left"] + edge["width"] <= 1 + 1e-6 and edge["top"] + edge["height"] <= 1 + 1e-6
    # resize with a handle: the selected box's south-east handle dragged inwards
    handle = page.locator("#surface .box.selected .handle.se").bounding_box()
    page.mouse.move(handle["x"] + 4, handle["y"] + 4)
    page.mouse.down()
    page.mouse.move(handle["x"] - 40, handle["y"] - 40, steps=5)
    with saved(page):
        page.mouse.up()
    resized = [b for b in approved(api, m["id"], ds, ids[0]) if b["left"] > 0.6][0]
    assert resized["width"] < edge["width"] - 0.05 and abs(resized["left"] - edge["left"]) < 1e-6
    shot(page, "05-labeling")
    # ? lists the shortcuts of this page; while the dialog is open the keys do nothing behind it
    page.keyboard.press("?")
    dialog = page.get_by_role("dialog")
    assert "Next image" in dialog.inner_text() and "Undo" in dialog.inner_text()
    page.keyboard.press("ArrowRight")
    assert page.locator("h1").inner_text() == "Image 1 of 3"
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    # arrows: next and previous image, in the grid's order
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("h1:text-is('Image 2 of 3')")
    assert f"/images/{ids[1]}" in page.url
    # a box drawn right before a reload is kept: its save, still waiting out its delay, goes as the page hides
    draw_box(page, shapes_image(1)[1][0])
    page.reload()
    page.wait_for_selector("h1:text-is('Image 2 of 3')")
    for _ in range(50):
        if approved(api, m["id"], ds, ids[1]):
            break
        page.wait_for_timeout(100)
    assert len(approved(api, m["id"], ds, ids[1])) == 1
    page.wait_for_selector("#surface .box")
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("h1:text-is('Image 3 of 3')")
    assert page.locator("#next-image").is_disabled()
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector("h1:text-is('Image 2 of 3')")
    # Ctrl+Z works within an image: nothing to undo on this one
    page.keyboard.press("Control+z")
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector("h1:text-is('Image 1 of 3')")
    page.wait_for_function("() => document.querySelectorAll('#surface .box').length === 2")
    # a deep link to an image that is not there is the "Not found" page, not an empty labeler
    page.goto(f"{server.url}/studio/#/models/{m['id']}/images/99999")
    page.wait_for_selector("main .message.error strong:text-is('Not found')")
    assert page.locator("#next-image, #surface").count() == 0
    assert console.problems() == []


def test_grid_pages_lazily_through_thumbnails_only(server, new_page):
    api = server.api()
    m = api.model("many", LABELS)
    # 130 small distinct images: three pages of 60
    import base64
    from tests.conftest import png_bytes
    images = [{"name": f"img-{i:03d}.jpg", "content": base64.b64encode(png_bytes(320, 256, fmt="JPEG", seed=i)).decode()}
              for i in range(130)]
    for start in range(0, 130, 25):
        r = api.post(f"/models/{m['id']}/datasets/{m['datasetId']}/images", json={"images": images[start:start + 25]})
        assert r.status_code == 201, r.text
    page, console = new_page(server, viewport=(1280, 800))
    seen = []
    page.on("request", lambda req: seen.append(req.url))
    page.goto(f"{server.url}/studio/#/models/{m['id']}/images")
    page.wait_for_selector("#page-info:text('Page 1 of 3')")
    page.wait_for_load_state("networkidle")
    thumbs = [u for u in seen if "/thumbnail" in u]
    # only the tiles in (or near) view are fetched, not the whole page of 60
    assert 6 <= len(thumbs) < 60, len(thumbs)
    assert page.locator(".tile img[src^='blob:']").count() == len(set(thumbs))
    shot(page, "03-images-grid")
    page.mouse.wheel(0, 5000)
    page.wait_for_load_state("networkidle")
    page.wait_for_function("() => document.querySelectorAll('.tile img[src^=\"blob:\"]').length === 60")
    page.click("#page-next")
    page.wait_for_selector("#page-info:text('Page 2 of 3')")
    assert "page=2" in page.url
    page.keyboard.press("PageDown")
    page.wait_for_selector("#page-info:text('Page 3 of 3')")
    assert page.locator(".tile").count() == 10
    page.fill("#page-jump", "1")
    page.keyboard.press("Enter")
    page.wait_for_selector("#page-info:text('Page 1 of 3')")
    page.wait_for_load_state("networkidle")
    assert not [u for u in seen if u.split("?")[0].endswith("/content")], "the grid loaded a full-size image"
    assert all("size=256" in u for u in seen if "/thumbnail" in u)
    # filters go to the API and into the address
    page.select_option("#filter-state", "labeled")
    page.wait_for_selector("text=No image matches these filters.")
    assert "state=labeled" in page.url
    # the labeler walks "Unlabeled" without skipping: the images labeled on the way leave the filter,
    # and the next page is read after the last image still listed, not at its old offset
    ds = m["datasetId"]
    ids = [i["id"] for i in api.get(f"/models/{m['id']}/datasets/{ds}/images", params={"pageSize": 256}).json()["items"]]
    page.goto(f"{server.url}/studio/#/models/{m['id']}/images/{ids[58]}?dataset={ds}&state=unlabeled&i=58")
    page.wait_for_selector("#image-position:text-is('59 / 130')")
    box = {"labelName": LABELS[0], "left": 0.1, "top": 0.1, "width": 0.3, "height": 0.3}
    for image_id in ids[:2]:  # labeled earlier on the walk
        r = api.put(f"/models/{m['id']}/datasets/{ds}/images/{image_id}/regions", json={"regions": [box]})
        assert r.status_code == 200, r.text
    page.keyboard.press("1")
    with saved(page):
        draw_box(page, box)
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("#image-position:text-is('60 / 130')")
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("#image-position:text-is('61 / 130')")
    assert f"/images/{ids[60]}?" in page.url
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector("#image-position:text-is('60 / 130')")
    assert f"/images/{ids[59]}?" in page.url
    assert console.problems() == []


def test_models_create_rename_and_labels(server, new_page):
    page, console = new_page(server)
    api = server.api()
    page.click("#create-model")
    page.get_by_label("Name", exact=True).fill("cutlery")
    page.get_by_label("Labels").fill("fork, knife")
    page.get_by_role("dialog").get_by_role("button", name="Create").click()
    page.wait_for_selector("h1:text-is('Images')")
    model = api.get("/models/cutlery").json()
    assert [l["name"] for l in model["labels"]] == ["fork", "knife"]
    page.click("nav.sidenav >> text=Settings")
    page.wait_for_selector("h1:text-is('Settings')")
    page.get_by_label("Name of label knife").fill("spoon")
    page.locator("#label-rows li").nth(1).get_by_role("button", name="Rename").click()
    page.wait_for_selector("input[aria-label='Name of label spoon']")
    page.get_by_label("Add labels").fill("scissors")
    page.get_by_role("button", name="Add", exact=True).click()
    page.wait_for_selector("input[aria-label='Name of label scissors']")
    assert [l["name"] for l in api.get(f"/models/{model['id']}/labels").json()] == ["fork", "spoon", "scissors"]
    # a label added by mistake goes, with its boxes, after a confirmation
    page.get_by_role("button", name="Delete label scissors").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.wait_for_selector("text=Deleted scissors and its 0 boxes.")
    page.wait_for_selector("input[aria-label='Name of label scissors']", state="detached")  # the page re-read
    assert [l["name"] for l in api.get(f"/models/{model['id']}/labels").json()] == ["fork", "spoon"]
    page.get_by_label("Name", exact=True).fill("silverware")
    page.get_by_role("button", name="Save").click()
    page.wait_for_selector(".sidenav-model strong:text-is('silverware')")
    shot(page, "09-settings")
    page.goto(server.url + "/studio/#/models")
    row = page.locator("#models-table tbody tr", has_text="silverware")
    assert "fork" in row.inner_text() and "spoon" in row.inner_text()
    shot(page, "04-models")
    page.click("nav.sidenav >> text=Settings") if page.locator("nav.sidenav").is_visible() else None
    page.goto(f"{server.url}/studio/#/models/{model['id']}/settings")
    page.get_by_role("button", name="Archive model").click()
    page.get_by_role("dialog").get_by_role("button", name="Archive").click()
    page.wait_for_selector("h1:text-is('Models')")
    assert page.locator("#models-table").count() == 0
    assert api.get(f"/models/{model['id']}").json()["archived"] is True
    # shown with the archived ones, it has no dead link but a Restore, which brings it back whole
    page.goto(server.url + "/studio/#/models?archived=1")
    row = page.locator("#models-table tbody tr", has_text="silverware")
    assert row.locator("a").count() == 0
    row.get_by_role("button", name="Restore silverware").click()
    page.wait_for_selector("h1:text-is('Images')")
    assert api.get(f"/models/{model['id']}").json()["archived"] is False
    assert console.problems() == []


def test_coco_zip_import_shows_its_report(server, new_page, tmp_path):
    api = server.api()
    m = api.model("shapes", LABELS)
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "triangle"}]}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(3):
            data, regions = shapes_image(10 + i * 2)  # even seeds: one square each
            zf.writestr(f"images/s{i}.jpg", data)
            coco["images"].append({"id": i + 1, "file_name": f"images/s{i}.jpg", "width": 256, "height": 256})
            r = regions[0]
            coco["annotations"].append({"id": i + 1, "image_id": i + 1, "category_id": 1,
                                        "bbox": [r["left"] * 256, r["top"] * 256, r["width"] * 256, r["height"] * 256]})
        coco["annotations"].append({"id": 9, "image_id": 1, "category_id": 2, "bbox": [1, 1, 20, 20]})
        zf.writestr("coco.json", json.dumps(coco))
    path = tmp_path / "set.zip"
    path.write_bytes(buf.getvalue())
    page, console = new_page(server)
    page.goto(f"{server.url}/studio/#/models/{m['id']}/images")
    page.click("#import-button")
    page.get_by_label("Images (zip)").set_input_files(str(path))
    page.get_by_role("dialog").get_by_role("button", name="Import").click()
    page.wait_for_selector("#import-report")
    report = page.inner_text("#import-report")
    assert "Images added\n3" in report and "triangle" in report
    page.wait_for_selector("#image-total:text('3 images')")
    assert api.get(f"/models/{m['id']}/datasets/{m['datasetId']}").json()["imageCount"] == 3
    shot(page, "03b-coco-import")
    # every format the API reads is offered: a YOLO zip, its class names beside it
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        data, regions = shapes_image(31)
        zf.writestr("images/y.jpg", data)
        r = regions[0]
        zf.writestr("labels/y.txt", f"1 {r['left'] + r['width'] / 2} {r['top'] + r['height'] / 2} {r['width']} {r['height']}\n")
    (tmp_path / "yolo.zip").write_bytes(buf.getvalue())
    (tmp_path / "classes.txt").write_text("square\ntriangle\n")
    page.click("#import-button")
    page.get_by_label("Format").select_option("yolo")
    assert page.get_by_role("option", name="A COCO folder on the server").is_disabled()
    page.get_by_label("Images (zip)").set_input_files(str(tmp_path / "yolo.zip"))
    page.get_by_label("Annotations (optional)").set_input_files(str(tmp_path / "classes.txt"))
    page.get_by_role("dialog").get_by_role("button", name="Import").click()
    page.wait_for_selector("#image-total:text('4 images')")
    assert "Images added\n1" in page.inner_text("#import-report")
    items = api.get(f"/models/{m['id']}/datasets/{m['datasetId']}/images", params={"pageSize": 10}).json()["items"]
    assert sorted(r["labelName"] for i in items for r in i["regions"]).count("triangle") == 2  # one from COCO, one from YOLO
    assert console.problems() == []


def test_data_check_advice_opens_the_images_with_a_box_drawn_twice(server, new_page):
    api = server.api()
    m = api.model("twice", LABELS)
    upload_shapes(api, m, 2)
    more = api.post(f"/models/{m['id']}/datasets", json={"name": "more", "kind": "training"}).json()["id"]
    ids = upload_shapes(api, m, 2, start=10, dataset_id=more)
    label = LABELS[0]
    twice = {"labelName": label, "left": 0.3, "top": 0.3, "width": 0.3, "height": 0.3}
    for image_id in ids:  # the same box twice on both images of the second dataset
        r = api.put(f"/models/{m['id']}/datasets/{more}/images/{image_id}/regions", json={"regions": [twice, twice]})
        assert r.status_code == 200, r.text
    page, console = new_page(server)
    page.goto(f"{server.url}/studio/#/models/{m['id']}/data-check")
    advice = page.locator("#warnings li[data-code='DuplicateBoxes']")
    advice.wait_for()
    assert advice.locator("p").first.inner_text().startswith(f"2 boxes of '{label}' in 2 images")
    links = advice.locator(".warning-images a")
    assert [links.nth(i).inner_text() for i in range(links.count())] == [f"image {i}" for i in ids]
    shot(page, "06b-data-check-boxed-twice")
    links.nth(1).click()
    page.wait_for_selector("h1:text-is('Image 2 of 2')")
    assert f"#/models/{m['id']}/images/{ids[1]}?dataset={more}" in page.url
    assert page.locator("#surface .box").count() == 2
    assert console.problems() == []
