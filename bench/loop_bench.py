"""The improvement loop on real photos: label a few, train, let the model label the rest, review,
retrain, and compare with labeling everything by hand.

Steps, on ../shared/datasets/fork-scissors (its fixed split: 30 training photos, 10 test photos):

  1. a person boxes `--per-label` training photos per label (5: the data check's minimum); the
     other training photos are uploaded without boxes; the 10 test photos, boxed, form the model's
     evaluation dataset, so every score below is on the same 10 photos;
  2. train (`--budget` minutes of the default preset);
  3. suggest boxes for the unlabeled photos (the dataset suggestion job,
     POST /models/{m}/datasets/{d}/suggest), then accept every suggestion with probability above
     `--approve-above` and reject the rest (POST .../suggestions/review);
  4. retrain on what is now approved;
  5. (`--full`) for reference, train on all 30 photos boxed by hand.

It prints the score after each step, and for the photos the model labeled: how many boxes a person
would have drawn by hand, how many suggestions were accepted, how many of those match a true box
(IoU >= 0.5, same label), and how many true boxes are still missing (a person draws them).

Usage: python bench/loop_bench.py [--budget 5] [--per-label 5] [--approve-above 0.8] [--full]
Runs a real `odconnect serve` on loopback with a fresh store. Run it with `nice -n 19`.
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets" / "fork-scissors"
sys.path.insert(0, str(ROOT))

from bench.detect_bench import KEY, start_server, stop_server  # noqa: E402  (same server set-up)


def iou(a, b) -> float:
    ax0, ay0, ax1, ay1 = a["left"], a["top"], a["left"] + a["width"], a["top"] + a["height"]
    bx0, by0, bx1, by1 = b["left"], b["top"], b["left"] + b["width"], b["top"] + b["height"]
    iw, ih = min(ax1, bx1) - max(ax0, bx0), min(ay1, by1) - max(ay0, by0)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter)


def photos() -> tuple[list[dict], list[dict]]:
    """(train, test) photos of the fixed split: name, bytes, true boxes (Custom Vision shape)."""
    from connector.modeling.boxes import pixels_to_fraction
    coco = json.loads((SHARED / "coco.json").read_text())
    split = json.loads((SHARED / "split.json").read_text())
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    out = {}
    for img in coco["images"]:
        boxes = [{"labelName": cats[a["category_id"]],
                  **pixels_to_fraction(x, y, x + w, y + h, img["width"], img["height"])}
                 for a in coco["annotations"] if a["image_id"] == img["id"] for x, y, w, h in [a["bbox"]]]
        out[img["id"]] = {"id": img["id"], "name": Path(img["file_name"]).name,
                          "data": (SHARED / img["file_name"]).read_bytes(), "boxes": boxes}
    return [out[i] for i in split["train"]], [out[i] for i in split["test"]]


class Loop:
    def __init__(self, client, budget: float):
        self.client, self.budget = client, budget

    def call(self, method, path, body=None, ok=(200, 201, 202)):
        status, headers, answer = self.client.call(method, path, body)
        if status not in ok:
            raise RuntimeError(f"{method} {path}: {status} {answer}")
        return status, {k.lower(): v for k, v in headers.items()}, answer

    def upload(self, model_id, dataset_id, items, with_boxes: bool) -> dict[str, int]:
        """Upload photos; returns name -> image id."""
        ids = {}
        for i in range(0, len(items), 8):
            chunk = [{"name": p["name"], "content": base64.b64encode(p["data"]).decode(),
                      "regions": p["boxes"] if with_boxes else []} for p in items[i:i + 8]]
            _, _, report = self.call("POST", f"/models/{model_id}/datasets/{dataset_id}/images", {"images": chunk})
            ids.update({r["name"]: r["imageId"] for r in report["results"]})
        return ids

    def wait(self, location: str, what: str) -> dict:
        path = location.split("/api/v1", 1)[1]
        while True:
            status, _, body = self.call("GET", path)
            if status == 200 and body.get("status") not in ("queued", "running", "training"):
                if body.get("status") in ("failed", "canceled", "cancelled"):
                    raise RuntimeError(f"{what} ended {body.get('status')}: {body}")
                return body
            time.sleep(2)

    def train(self, model_id, eval_id) -> tuple[float, float]:
        """(score, minutes) of a new version."""
        started = time.time()
        _, headers, _ = self.call("POST", f"/models/{model_id}/train",
                                  {"budgetMinutes": self.budget, "evaluationDatasetId": eval_id})
        run = self.wait(headers["location"], "training")
        return run["performanceScore"], (time.time() - started) / 60


class Rows(list):
    """The table's rows, each printed as soon as its step is done (a failed later step keeps them)."""

    def append(self, r: dict) -> None:
        if not self:
            print("| step | photos with boxes | boxes drawn by hand | suggestions accepted | AP50 on the 10 test photos "
                  "| minutes |")
            print("|---|---|---|---|---|---|")
        score = "-" if r["score"] is None else f"{r['score']:.1f}"
        print(f"| {r['step']} | {r['boxed']} | {r['drawn']} | {r['accepted']} | {score} | {r['minutes']:.1f} |",
              flush=True)
        super().append(r)


def run_loop(args) -> list[dict]:
    train_photos, test_photos = photos()
    labels = sorted({b["labelName"] for p in train_photos for b in p["boxes"]})
    by_label = {name: [p for p in train_photos if p["boxes"][0]["labelName"] == name] for name in labels}
    seeded = [p for name in labels for p in by_label[name][:args.per_label]]
    rest = [p for p in train_photos if p not in seeded]

    root = Path(tempfile.mkdtemp(prefix="odc-loop-"))
    config = root / "config.yaml"
    config.write_text(json.dumps({"storage": {"root": str(root / "data")}, "security": {"api_keys": [KEY]}}))
    server, client = start_server(config)
    rows = Rows()
    try:
        loop = Loop(client, args.budget)
        _, _, model = loop.call("POST", "/models", {"name": "cutlery", "labels": labels})
        mid = model["id"]
        train_ds = loop.call("GET", f"/models/{mid}/datasets")[2][0]["id"]
        eval_ds = loop.call("POST", f"/models/{mid}/datasets", {"name": "test", "kind": "evaluation"})[2]["id"]
        loop.upload(mid, eval_ds, test_photos, with_boxes=True)
        loop.upload(mid, train_ds, seeded, with_boxes=True)
        rest_ids = loop.upload(mid, train_ds, rest, with_boxes=False)
        drawn = sum(len(p["boxes"]) for p in seeded)

        score, minutes = loop.train(mid, eval_ds)
        rows.append({"step": f"train on {len(seeded)} photos boxed by hand", "boxed": len(seeded),
                     "drawn": drawn, "accepted": 0, "score": score, "minutes": minutes})

        started = time.time()
        _, headers, _ = loop.call("POST", f"/models/{mid}/datasets/{train_ds}/suggest", {"images": "unlabeled"})
        loop.wait(headers["location"], "the suggestion job")
        _, _, review = loop.call("POST", f"/models/{mid}/datasets/{train_ds}/suggestions/review",
                                 {"approveAbove": args.approve_above, "rejectRest": True})
        suggest_minutes = (time.time() - started) / 60
        truth = {p["name"]: p["boxes"] for p in rest}
        accepted = correct = labeled = 0
        for name, image_id in rest_ids.items():
            image = loop.call("GET", f"/models/{mid}/datasets/{train_ds}/images/{image_id}")[2]
            kept = [r for r in image["regions"] if r["approved"]]
            accepted += len(kept)
            labeled += bool(kept)  # an image without approved boxes does not train
            unmatched = list(truth[name])
            for r in kept:
                match = next((t for t in unmatched if t["labelName"] == r["labelName"] and iou(r, t) >= 0.5), None)
                if match is not None:
                    unmatched.remove(match)
                    correct += 1
        by_hand = sum(len(b) for b in truth.values())
        rows.append({"step": f"suggest {len(rest)} photos, accept above {args.approve_above:g}",
                     "boxed": labeled, "drawn": 0, "accepted": accepted, "score": None,
                     "minutes": suggest_minutes, "by_hand": by_hand, "correct": correct,
                     "missing": by_hand - correct, "review": review, "truth": truth})

        score, minutes = loop.train(mid, eval_ds)
        rows.append({"step": "retrain on hand + accepted boxes", "boxed": len(seeded) + labeled,
                     "drawn": drawn, "accepted": accepted, "score": score, "minutes": minutes})

        if args.full:
            _, _, full = loop.call("POST", "/models", {"name": "cutlery-by-hand", "labels": labels})
            fid = full["id"]
            fds = loop.call("GET", f"/models/{fid}/datasets")[2][0]["id"]
            fev = loop.call("POST", f"/models/{fid}/datasets", {"name": "test", "kind": "evaluation"})[2]["id"]
            loop.upload(fid, fev, test_photos, with_boxes=True)
            loop.upload(fid, fds, train_photos, with_boxes=True)
            score, minutes = loop.train(fid, fev)
            rows.append({"step": f"reference: all {len(train_photos)} boxed by hand", "boxed": len(train_photos),
                         "drawn": sum(len(p["boxes"]) for p in train_photos), "accepted": 0,
                         "score": score, "minutes": minutes})
    finally:
        stop_server(server)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=5.0, help="training minutes per version (default 5)")
    parser.add_argument("--per-label", type=int, default=5, help="photos per label boxed by hand (default 5)")
    parser.add_argument("--approve-above", type=float, default=0.8, help="accept suggestions above (default 0.8)")
    parser.add_argument("--full", action="store_true", help="also train on every photo boxed by hand")
    args = parser.parse_args()
    if not (SHARED / "coco.json").exists():
        print(f"needs the fork-scissors photos in {SHARED}", file=sys.stderr)
        return 2
    rows = run_loop(args)
    s = next(r for r in rows if "by_hand" in r)
    print(f"\nOn the {len(s['truth'])} photos the model labeled: {s['by_hand']} boxes a person would have drawn; "
          f"{s['accepted']} suggestions accepted, {s['correct']} of them on a true box (IoU >= 0.5), "
          f"{s['accepted'] - s['correct']} wrong; {s['missing']} true boxes still to draw by hand.")
    print(f"review answer: {json.dumps(s['review'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
