"""Recipe ablation: one training run per lever setting, a FIXED number of iterations each.

Time-budgeted runs get fewer iterations when other people load the shared cores; a fixed
iteration count makes the levers comparable, and s/iter shows what each costs in time.
Every run trains on the dataset's fixed train split (a validation part is carved from it by
train()) and is scored on the fixed test split.

    nice -n 19 python bench/ablation_bench.py --data ../shared/datasets/bccd --iters 200 \
        --variants base,noema --out bench/out/ablation-bccd.jsonl
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: lever name -> cfg overrides that turn it on/off relative to the preset's defaults
CROP = {"INPUT.CROP.ENABLED": True, "INPUT.CROP.TYPE": "relative_range", "INPUT.CROP.SIZE": [0.6, 0.6]}
VARIANTS: dict[str, dict] = {
    "base": {},  # the fast preset as it ships (input sizes fitted, LR 0.01, EMA; the other levers off)
    "noema": {"ODCONNECT.EMA.ENABLED": False},  # fast's recipe until 2026-11-26 (with lr005: before that)
    "giou": {"MODEL.RETINANET.BBOX_REG_LOSS_TYPE": "giou"},
    "anchors": {"ODCONNECT.FIT.ANCHORS": True},
    "crop": CROP,
    "jitter": {"INPUT.MIN_SIZE_TRAIN": (256, 288, 320, 352, 384, 416, 448)},
    "nocolour": {"ODCONNECT.AUG.BRIGHTNESS": (1.0, 1.0), "ODCONNECT.AUG.CONTRAST": (1.0, 1.0),
                 "ODCONNECT.AUG.SATURATION": (1.0, 1.0)},
    "nosize": {"ODCONNECT.FIT.INPUT_SIZE": False},  # the preset's own sizes
    "dets": {"ODCONNECT.FIT.DETECTIONS": True},
    "noval": {"ODCONNECT.VALIDATION.MIN_IMAGES": 10**9},  # every training image trains, nothing validates
    "lr005": {"SOLVER.BASE_LR": 0.005, "SOLVER.WARMUP_ITERS": 50},  # fast's recipe until 2026-11-26
    "warmup50": {"SOLVER.WARMUP_ITERS": 50},
    "batch2": {"SOLVER.IMS_PER_BATCH": 2},
}


def run_variant(name: str, overrides: dict, data: str, iters: int, seed: int, threads: int | None) -> dict:
    sys.path.insert(0, str(ROOT))
    if threads:
        import torch
        torch.set_num_threads(threads)
    from bench.train_bench import load_dataset
    from connector.modeling.predictor import load_cfg
    from connector.training import TrainRequest, train

    labels, train_records, test_records = load_dataset(Path(data))
    last = {"elapsed_s": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        request = TrainRequest(labels=labels, train=train_records, evaluation=test_records,
                               output_dir=Path(tmp) / "out", preset="fast", max_iter=iters, seed=seed,
                               device="cpu", overrides=overrides)
        t0 = time.perf_counter()
        def progress(p):
            if p["iteration"] // 25 != last.get("iteration", 0) // 25:
                print(f"  [{name}] iteration {p['iteration']}, {p['elapsed_s']:.0f} s", flush=True)
            last.update(p)

        result = train(request, progress=progress)
        wall = time.perf_counter() - t0
        cfg = load_cfg(result.config_path)  # what fitting chose is in the version's config
    m = result.metrics
    return {"variant": name, "iterations": result.iterations, "s_per_iter": last["elapsed_s"] / result.iterations,
            "wall_s": wall, "ap": m["ap"], "ap50": m["ap50"], "ap75": m["ap75"],
            "per_label": m["per_label"], "kept_iteration": result.kept_iteration,
            "score_interval": m["score_interval"], "validation": m["validation"], "thresholds": result.thresholds,
            "input_test": cfg.INPUT.MIN_SIZE_TEST, "anchor_sizes": cfg.MODEL.ANCHOR_GENERATOR.SIZES,
            "anchor_ratios": cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS, "load": os.getloadavg(),
            "threads": threads}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--variants", default="base",
                    help="comma-separated; NAME+NAME combines levers, NAME@ITERS sets its own iteration count")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (1 wastes less time spinning when the cores are oversubscribed)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "ablation.jsonl"))
    args = ap.parse_args(argv)
    ctx = mp.get_context("spawn")
    for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
        levers, _, iters = name.partition("@")
        overrides: dict = {}
        for lever in levers.split("+"):
            overrides.update(VARIANTS[lever])
        with ctx.Pool(1) as pool:
            row = pool.apply(run_variant, (name, overrides, args.data, int(iters or args.iters), args.seed,
                                             args.threads))
        row["data"] = Path(args.data).name
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
