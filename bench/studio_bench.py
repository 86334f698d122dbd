"""Studio speed in a real headless Chromium against a real server on loopback: how long each page
takes to be ready (a cold load, then in-app navigation), how long the next image takes to open for
labeling (prefetched), and what the grid of a 1,000-image dataset loads (thumbnails only).

"Ready" is the studio's own `studio:view-ready` mark: the view has its data and is drawn.
Usage: python bench/studio_bench.py [--images 1000] [--steps 20]
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from detect_bench import KEY, percentile, start_server, stop_server  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
PAGES = ["images", "data-check", "train", "performance", "versions", "quick-test", "schedule", "settings"]


def photo(seed: int, size=(1024, 768)) -> bytes:
    rnd = random.Random(seed)
    img = Image.new("RGB", size, (rnd.randrange(256), 110, 150))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = rnd.randrange(size[0] - 200), rnd.randrange(size[1] - 200)
        draw.rectangle([x, y, x + rnd.randrange(30, 200), y + rnd.randrange(30, 200)],
                       fill=tuple(rnd.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def ready_ms(page) -> float:
    page.wait_for_function("() => performance.getEntriesByName('studio:view-ready').length > 0")
    return page.evaluate("() => performance.getEntriesByName('studio:view-ready').at(-1).startTime")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=20, help="next-image steps to time")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="odc-studio-bench-"))
    config = root / "config.yaml"
    config.write_text(json.dumps({"storage": {"root": str(root / "data")}, "security": {"api_keys": [KEY]}}))
    server, client = start_server(config)
    base = client.base.removesuffix("/api/v1")
    try:
        model = client.call("POST", "/models", {"name": "bench", "labels": ["a", "b", "c"]})[2]
        mid = model["id"]
        ds = client.call("GET", f"/models/{mid}/datasets")[2][0]["id"]
        distinct = [photo(i) for i in range(50)]
        for start in range(0, args.images, 50):
            batch = [{"name": f"img-{start + i:05d}.jpg",
                      # distinct bytes per image (the store keeps one copy of equal files)
                      "content": base64.b64encode(distinct[i] + (start + i).to_bytes(4, "big")).decode()}
                     for i in range(min(50, args.images - start))]
            status, _, body = client.call("POST", f"/models/{mid}/datasets/{ds}/images", {"images": batch})
            assert status == 201 and body["created"] == len(batch), body

        rows = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            page.goto(base + "/studio/#/signin")
            page.evaluate(f"sessionStorage.setItem('odconnect.apiKey', {json.dumps(KEY)})")
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            for name in PAGES:  # cold: a full page load straight into the view
                page.goto(f"{base}/studio/#/models/{mid}/{name}")
                page.reload()
                rows.append((f"{name} (page load)", ready_ms(page)))
            for name in PAGES:  # warm: in-app navigation from another view
                page.evaluate("() => performance.clearMarks('studio:view-ready')")
                t0 = page.evaluate("() => performance.now()")
                page.evaluate(f"() => {{ location.hash = '#/models/{mid}/{name}'; }}")
                rows.append((f"{name} (navigation)", ready_ms(page) - t0))

            # the grid of a big dataset: what it fetched
            requests.clear()
            page.goto(f"{base}/studio/#/models/{mid}/images")
            page.reload()
            page.wait_for_load_state("networkidle")
            thumbs = [u for u in requests if "/thumbnail" in u]
            full = [u for u in requests if u.split("?")[0].endswith("/content")]

            # next image, prefetched: from the key press to the image drawn with its boxes
            page.locator(".tile").first.click()
            page.wait_for_selector("#label-image[src^='blob:']")
            page.wait_for_timeout(500)
            steps = []
            for _ in range(args.steps):
                page.evaluate("""() => { performance.clearMarks('studio:image-open');
                    window.__t = null; document.addEventListener('keydown', e => { window.__t = e.timeStamp; }, { once: true }); }""")
                page.keyboard.press("ArrowRight")
                page.wait_for_function("() => performance.getEntriesByName('studio:image-open').length > 0")
                steps.append(page.evaluate("() => performance.getEntriesByName('studio:image-open')[0].startTime - window.__t"))
                page.wait_for_timeout(150)  # a person looks at the image before moving on
            browser.close()

        print(f"\nStudio, {args.images} images of 1024x768 px, Chromium headless, loopback\n")
        print("| page | ready ms |\n|---|---|")
        for name, ms in rows:
            print(f"| {name} | {ms:.0f} |")
        print(f"\n| next image (prefetched) | p50 {statistics.median(steps):.0f} ms | p95 {percentile(steps, 95):.0f} ms "
              f"| max {max(steps):.0f} ms | n={len(steps)} |")
        print(f"| grid of {args.images} images, first screen | {len(thumbs)} thumbnail requests "
              f"| {len(full)} full-size image requests |")
    finally:
        stop_server(server)


if __name__ == "__main__":
    main()
