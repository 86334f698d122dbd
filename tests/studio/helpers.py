"""What the studio tests do in a page: drop files, draw boxes with the mouse, read the boxes back."""
from __future__ import annotations

import base64

from tests.training_data import LABELS, shapes_image

DROP_FILES = """([selector, files]) => {
  const dt = new DataTransfer();
  for (const f of files) {
    const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
    dt.items.add(new File([bytes], f.name, { type: f.type }));
  }
  const target = document.querySelector(selector);
  for (const type of ["dragenter", "dragover", "drop"]) {
    target.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
  }
}"""


def drop_files(page, selector: str, files: list[tuple[str, bytes, str]]):
    """Drag-and-drop files onto an element, as a file manager does (a real DataTransfer of Files)."""
    page.evaluate(DROP_FILES, [selector, [{"name": n, "b64": base64.b64encode(d).decode(), "type": t}
                                          for n, d, t in files]])


def shape_files(seeds) -> list[tuple[str, bytes, str]]:
    return [(f"shape-{s}.jpg", shapes_image(s)[0], "image/jpeg") for s in seeds]


def draw_box(page, region: dict, selector: str = "#surface"):
    """Drag with the mouse from the box's top-left corner to its bottom-right corner."""
    r = page.locator(selector).bounding_box()
    x0 = r["x"] + region["left"] * r["width"]
    y0 = r["y"] + region["top"] * r["height"]
    x1 = x0 + region["width"] * r["width"]
    y1 = y0 + region["height"] * r["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
    page.mouse.move(x1, y1, steps=4)
    page.mouse.up()


def label_key(name: str) -> str:
    return str(LABELS.index(name) + 1)


def draw_labeled(page, region: dict):
    """Esc (a drag on the selected box would move it, and 1-9 would relabel it), the label's key,
    then the box drawn with the mouse."""
    page.keyboard.press("Escape")
    page.keyboard.press(label_key(region["labelName"]))
    draw_box(page, region)


class saved:
    """`with saved(page): <an edit>` waits until the edit's save has finished through the API."""

    def __init__(self, page):
        self.page = page

    def __enter__(self):
        self.before = int(self.page.get_attribute("#save-state", "data-saves") or 0)

    def __exit__(self, *exc):
        if exc[0] is None:
            self.page.wait_for_function(
                "n => { const el = document.getElementById('save-state');"
                " return Number(el.dataset.saves) > n && el.textContent === 'Saved'; }", arg=self.before)


def approved(api, model_id, dataset_id, image_id) -> list[dict]:
    body = api.get(f"/models/{model_id}/datasets/{dataset_id}/images/{image_id}").json()
    return [r for r in body["regions"] if r["approved"]]


def close_to(a: dict, b: dict, tol: float = 0.02) -> bool:
    return all(abs(a[k] - b[k]) <= tol for k in ("left", "top", "width", "height"))
