"""Detection quality and counting through the service, on fixed splits of real photo sets.

For each dataset (a folder with coco.json and split.json) and each budget: a real app on a fresh
SQLite store gets a model, the split's train images in its training dataset and its test images
in an evaluation dataset; it trains the default preset through the API with that budget,
publishes the version, and then every test image goes through detect:

* with threshold 0, for COCO AP (pycocotools COCOeval: AP, AP50, AP75, AP50 per label);
* with no threshold, as a flow calls it, so the version's own per-label thresholds decide the
  counts: mean absolute count error per image, that error / the mean true count ("rel"), and
  the mean over images holding the label of |error| / true count ("rel/img").

Each (dataset, budget) runs in its own process. The machine's load average is printed beside
the figures: time budgets get fewer iterations when other processes compete for the cores.

    nice -n 19 python bench/quality_bench.py                       # bccd, fork-scissors; 5 and 15 min
    nice -n 19 python bench/quality_bench.py --data ../shared/datasets/bccd --budgets 5
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
KEY = "bench-key"


def load_split(folder: Path):
    """(labels, train, test): each image as (file name, bytes, width, height, [(label, x, y, w, h)])."""
    coco = json.loads((folder / "coco.json").read_text())
    split = json.loads((folder / "split.json").read_text())
    cats = sorted(coco["categories"], key=lambda c: c["id"])
    name = {c["id"]: c["name"] for c in cats}
    boxes: dict[int, list] = {}
    for a in coco["annotations"]:
        boxes.setdefault(a["image_id"], []).append((name[a["category_id"]], *map(float, a["bbox"])))
    images = {im["id"]: (im["file_name"], im["width"], im["height"], boxes.get(im["id"], [])) for im in coco["images"]}

    def part(ids):
        return [(images[i][0], (folder / images[i][0]).read_bytes(), *images[i][1:]) for i in ids]
    return [c["name"] for c in cats], part(split["train"]), part(split["test"])


class Api:
    """The app's test client with the API prefix and key (a real app: routing, validation, store)."""

    def __init__(self, app):
        self.client = app.test_client()

    def __call__(self, method: str, path: str, **kw):
        r = getattr(self.client, method)("/api/v1" + path, headers={"X-API-Key": KEY}, **kw)
        body = r.json() if r.headers.get("content-type", "").endswith("json") else None
        if r.status_code >= 400:
            raise RuntimeError(f"{method.upper()} {path}: {r.status_code} {body}")
        return body


def upload(api: Api, model_id: int, dataset_id: int, images) -> None:
    for i in range(0, len(images), 16):
        chunk = [{"name": Path(fname).name, "content": base64.b64encode(data).decode(),
                  "regions": [{"labelName": lab, "left": x / w, "top": y / h, "width": bw / w, "height": bh / h}
                              for lab, x, y, bw, bh in boxes]}
                 for fname, data, w, h, boxes in images[i:i + 16]]
        api("post", f"/models/{model_id}/datasets/{dataset_id}/images", json={"images": chunk})


def coco_scores(labels, test, detections) -> dict:
    """AP, AP50, AP75 and AP50 per label of detect's answers (threshold 0) on the test images."""
    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = {"images": [], "annotations": [], "categories": [{"id": k + 1, "name": n} for k, n in enumerate(labels)]}
    dets = []
    for i, ((_, _, w, h, boxes), preds) in enumerate(zip(test, detections)):
        gt["images"].append({"id": i + 1, "width": w, "height": h})
        for lab, x, y, bw, bh in boxes:
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i + 1, "iscrowd": 0,
                                      "category_id": labels.index(lab) + 1, "bbox": [x, y, bw, bh], "area": bw * bh})
        for p in preds:
            b = p["boundingBox"]
            dets.append({"image_id": i + 1, "category_id": labels.index(p["tagName"]) + 1, "score": p["probability"],
                         "bbox": [b["left"] * w, b["top"] * h, b["width"] * w, b["height"] * h]})
    if not dets:  # COCO's loadRes rejects an empty list; nothing found scores 0
        return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0, "per_label_ap50": {n: 0.0 for n in labels}}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(dets), iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval["precision"][0, :, :, 0, -1]  # IoU 0.5, all areas, 100 detections
    per = {n: float(prec[:, k][prec[:, k] > -1].mean()) for k, n in enumerate(labels)}
    return {"ap": float(ev.stats[0]), "ap50": float(ev.stats[1]), "ap75": float(ev.stats[2]), "per_label_ap50": per}


def count_errors(labels, test, answers) -> dict:
    out = {}
    for lab in labels:
        true = [sum(b[0] == lab for b in boxes) for _, _, _, _, boxes in test]
        pred = [next(c["count"] for c in a["counts"] if c["tagName"] == lab) for a in answers]
        err = [abs(p - t) for p, t in zip(pred, true)]
        per_image = [e / t for e, t in zip(err, true) if t]
        out[lab] = {"mae": sum(err) / len(err), "rel": sum(err) / max(sum(true), 1),
                    "rel_img": sum(per_image) / len(per_image) if per_image else None}
    return out


def run_one(data: str, budget: float, preset: str | None, overrides: dict | None = None) -> dict:
    sys.path.insert(0, str(ROOT))
    from connector.app import create_app
    from connector.config import load_config

    folder = Path(data)
    labels, train, test = load_split(folder)
    root = Path(tempfile.mkdtemp(prefix="odc-quality-"))
    config = load_config(environ={}, overrides={"storage": {"root": str(root)}, "security": {"api_keys": [KEY]},
                                                "training": {"overrides": overrides or {}}})
    app = create_app(config)
    try:
        api = Api(app)
        model = api("post", "/models", json={"name": folder.name, "labels": labels})
        training = api("get", f"/models/{model['id']}/datasets")[0]["id"]
        evaluation = api("post", f"/models/{model['id']}/datasets", json={"name": "test", "kind": "evaluation"})["id"]
        upload(api, model["id"], training, train)
        upload(api, model["id"], evaluation, test)
        load_start = os.getloadavg()
        body = {"budgetMinutes": budget, "evaluationDatasetId": evaluation, **({"preset": preset} if preset else {})}
        run = api("post", f"/models/{model['id']}/train", json=body)
        t0 = time.perf_counter()
        while run["status"] in ("queued", "training"):
            time.sleep(2)
            run = api("get", f"/models/{model['id']}/runs/{run['id']}")
        wall = time.perf_counter() - t0
        if run["status"] != "succeeded":
            raise RuntimeError(f"run {run['status']}: {run.get('reason')}")
        load_end = os.getloadavg()
        version = api("post", f"/models/{model['id']}/versions/{run['version']}/publish")["published"]
        v = api("get", f"/models/{model['id']}/versions/{version}")
        everything, answers = [], []
        for fname, data_bytes, *_ in test:
            content = {"content": base64.b64encode(data_bytes).decode(), "name": Path(fname).name}
            everything.append(api("post", f"/models/{model['id']}/detect", json={**content, "threshold": 0})["predictions"])
            answers.append(api("post", f"/models/{model['id']}/detect", json=content))
        return {"dataset": folder.name, "budget": budget, "preset": v["settings"].get("preset"),
                "iterations": v["iterations"], "kept": v["metrics"].get("keptIteration"),
                "s_per_iter": budget * 60 / max(v["iterations"], 1), "run_wall_s": wall,
                **coco_scores(labels, test, everything), "counts": count_errors(labels, test, answers),
                "thresholds": {n: m["threshold"] for n, m in v["metrics"]["perLabel"].items()},
                "score": v["metrics"]["score"], "interval": v["metrics"].get("scoreInterval"),
                "validation_images": v["metrics"].get("validationImages"), "advice": v["metrics"]["advice"],
                "load_start": load_start, "load_end": load_end}
    finally:
        app.odconnect.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=f"{SHARED / 'bccd'},{SHARED / 'fork-scissors'}")
    ap.add_argument("--budgets", default="5,15", help="minutes, comma-separated")
    ap.add_argument("--preset", default=None, help="default: the service's default preset")
    ap.add_argument("--overrides", default="{}",
                    help='detectron2 config keys for every run, as JSON (training.overrides), e.g. \'{"SOLVER.BASE_LR": 0.01}\'')
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "quality.jsonl"))
    args = ap.parse_args(argv)
    folders = [d.strip() for d in args.data.split(",") if d.strip()]
    missing = [d for d in folders if not (Path(d) / "split.json").is_file()]
    if missing:
        print(f"dataset not found: {missing}", file=sys.stderr)
        return 2
    print(f"{os.cpu_count()} CPUs; load average at start {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    rows = []
    ctx = mp.get_context("spawn")
    for folder in folders:
        for budget in (float(b) for b in args.budgets.split(",")):
            print(f"{Path(folder).name}, {budget:g} min ...", flush=True)
            with ctx.Pool(1) as pool:
                row = pool.apply(run_one, (folder, budget, args.preset, json.loads(args.overrides)))
            row["overrides"] = json.loads(args.overrides)
            rows.append(row)
            print(json.dumps(row), flush=True)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "a") as fh:
                fh.write(json.dumps(row) + "\n")
    print()
    print("| dataset | min | iters | s/iter | AP | AP50 | AP75 | AP50 per label | count error per label: "
          "MAE / rel / rel/img @ threshold | score (90% interval) | load 1-min start/end |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        per = ", ".join(f"{n} {v:.3f}" for n, v in r["per_label_ap50"].items())
        counts = ", ".join(f"{n} {c['mae']:.2f} / {c['rel']:.0%} / "
                           f"{'-' if c['rel_img'] is None else format(c['rel_img'], '.0%')} @ {r['thresholds'][n]:.2f}"
                           for n, c in r["counts"].items())
        iv = r["interval"] or {}
        print(f"| {r['dataset']} | {r['budget']:g} | {r['iterations']} | {r['s_per_iter']:.2f} | {r['ap']:.3f} | "
              f"{r['ap50']:.3f} | {r['ap75']:.3f} | {per} | {counts} | {r['score']:g} ({iv.get('low', '-')}-"
              f"{iv.get('high', '-')}) | {r['load_start'][0]:.1f} / {r['load_end'][0]:.1f} |")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
