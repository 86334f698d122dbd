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

PRESET = "fast"  # the recipe every variant changes one lever of

#: lever name -> cfg overrides that turn it on/off relative to the preset's defaults
CROP = {"INPUT.CROP.ENABLED": True, "INPUT.CROP.TYPE": "relative_range", "INPUT.CROP.SIZE": [0.6, 0.6]}
VARIANTS: dict[str, dict] = {
    "base": {},  # the fast preset as it ships (input sizes fitted, LR 0.01, batches of 2, EMA, Soft-NMS; the rest off)
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
    "lr02": {"SOLVER.BASE_LR": 0.02},
    "px40": {"ODCONNECT.FIT.SMALL_OBJECT_PX": 40},  # larger inputs for small objects (bccd: 480, trained 352-480)
    "batch2": {"SOLVER.IMS_PER_BATCH": 2},  # fast's batch since 2026-11-26 (the same as base now)
    "batch1": {"SOLVER.IMS_PER_BATCH": 1},  # twice batch2's steps: give it twice base's iterations
    "batch4": {"SOLVER.IMS_PER_BATCH": 4},  # fast's batch until then: give it half base's iterations
    "atss": {"ODCONNECT.ASSIGNER": "atss"},
    "greedy": {"ODCONNECT.SOFT_NMS_SIGMA": 0.0},  # fast's greedy NMS until 2026-11-26
    "freeze1": {"MODEL.EFFNET.FREEZE_AT": 1},  # train the stride-4 stage too (microscopes are not ImageNet)
    "convs4": {"MODEL.RETINANET.NUM_CONVS": 4},  # the model zoo's head depth
    "gn": {"MODEL.RETINANET.NORM": "GN"},  # GroupNorm in the head's convs (as FCOS and ATSS heads have)
}


def _probe_hook(labels, val_records, test_records, at=(0.5, 0.75)):
    """A hook that scores the weights a run would keep (its EMA copy) at the best-checkpoint
    hook's snapshot points and at the end, on the validation part AND the test split: which
    snapshot validation prefers, and whether the test images agree."""
    from detectron2.engine.train_loop import HookBase

    from connector.training.api import evaluate_model
    from connector.training.hooks import _inference_model

    class Probe(HookBase):
        def __init__(self):
            self.pending, self.rows = sorted(at), []

        def _score(self, iteration):
            model = _inference_model(self.trainer)
            row = {"iteration": iteration}
            for part, records in (("val", val_records), ("test", test_records)):
                m = evaluate_model(self.trainer.cfg, model, records, labels)
                row.update({f"{part}_ap50": m["ap50"], f"{part}_ap": m["ap"]})
            self.rows.append(row)
            print(f"  [probe] {row}", flush=True)

        def after_step(self):
            done = (self.trainer.iter + 1) / self.trainer.max_iter
            if self.pending and done >= self.pending[0]:
                self.pending = [f for f in self.pending if f > done]
                self._score(self.trainer.iter + 1)

        def after_train(self):
            self._score(self.trainer.iter)  # train() has counted the last iteration already

    return Probe()


def run_variant(name: str, overrides: dict, data: str, iters: int, seed: int, threads: int | None,
                keep: str | None = None, probe: bool = False) -> dict:
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
        out = Path(keep) / f"{Path(data).name}-{name}" if keep else Path(tmp) / "out"
        request = TrainRequest(labels=labels, train=train_records, evaluation=test_records,
                               output_dir=out, preset=PRESET, max_iter=iters, seed=seed,
                               device="cpu", overrides=overrides)
        t0 = time.perf_counter()
        def progress(p):
            if p["iteration"] // 25 != last.get("iteration", 0) // 25:
                print(f"  [{name}] iteration {p['iteration']}, {p['elapsed_s']:.0f} s", flush=True)
            last.update(p)

        hooks = []
        if probe:
            from connector.training.api import _apply_overrides, split_validation
            from connector.training.presets import build_cfg
            cfg0 = build_cfg(PRESET, len(labels), "cpu")
            _apply_overrides(cfg0, overrides)  # a variant may change the validation settings
            # the same part train() carves (same records, settings and seed)
            _, val_records = split_validation(list(train_records), len(labels), cfg0.ODCONNECT.VALIDATION, seed)
            hooks.append(_probe_hook(labels, val_records, test_records))
        result = train(request, progress=progress, extra_hooks=hooks)
        if probe and {r.image_id for r in val_records} != set(result.validation_image_ids):
            raise RuntimeError("the probe scored another validation part than train() used")
        wall = time.perf_counter() - t0
        cfg = load_cfg(result.config_path)  # what fitting chose is in the version's config
    m = result.metrics
    return {"variant": name, "iterations": result.iterations, "s_per_iter": last["elapsed_s"] / result.iterations,
            "wall_s": wall, "ap": m["ap"], "ap50": m["ap50"], "ap75": m["ap75"],
            "per_label": m["per_label"], "kept_iteration": result.kept_iteration,
            "score_interval": m["score_interval"], "validation": m["validation"], "thresholds": result.thresholds,
            "input_test": cfg.INPUT.MIN_SIZE_TEST, "anchor_sizes": cfg.MODEL.ANCHOR_GENERATOR.SIZES,
            "anchor_ratios": cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS, "load": os.getloadavg(),
            "threads": threads, "probe": hooks[0].rows if hooks else None}


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
    ap.add_argument("--probe", action="store_true",
                    help="also score the snapshots the best-checkpoint hook compares (and the final "
                         "weights) on the validation part and the test split")
    ap.add_argument("--keep", default=None, metavar="DIR",
                    help="keep each variant's version (weights, config.yaml) in DIR/DATASET-VARIANT, "
                         "e.g. to score it again at other test-time settings")
    args = ap.parse_args(argv)
    ctx = mp.get_context("spawn")
    for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
        levers, _, iters = name.partition("@")
        overrides: dict = {}
        for lever in levers.split("+"):
            overrides.update(VARIANTS[lever])
        with ctx.Pool(1) as pool:
            row = pool.apply(run_variant, (name, overrides, args.data, int(iters or args.iters), args.seed,
                                             args.threads, args.keep, args.probe))
        row["data"] = Path(args.data).name
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
