"""Training quality vs time budget on ../shared/datasets/fork-scissors.

One training run per preset, with a budget of the largest time given; snapshots of the model
are evaluated on the fixed test split whenever the training clock passes one of the budgets.
The clock is paused while a snapshot is evaluated, so evaluation time never counts as training
time. Each preset runs in its own process, so "peak RSS" is that preset's own peak.

    python bench/train_bench.py                       # presets fast,scratch; budgets 2,5,10 min
    python bench/train_bench.py --presets scratch --budgets 0.5
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "fork-scissors"


def load_dataset(folder: Path):
    from connector.training import ImageRecord

    coco = json.loads((folder / "coco.json").read_text())
    split = json.loads((folder / "split.json").read_text())
    cats = sorted(coco["categories"], key=lambda c: c["id"])
    index = {c["id"]: i for i, c in enumerate(cats)}
    boxes: dict[int, list] = {}
    for a in coco["annotations"]:
        boxes.setdefault(a["image_id"], []).append((index[a["category_id"]], *map(float, a["bbox"])))
    records = {
        im["id"]: ImageRecord(im["id"], str(folder / im["file_name"]), im["width"], im["height"],
                              tuple(boxes.get(im["id"], ())))
        for im in coco["images"]
    }
    return ([c["name"] for c in cats], [records[i] for i in split["train"]],
            [records[i] for i in split["test"]])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run_preset(preset: str, budgets_min: list[float], data: str, seed: int, device: str | None) -> list[dict]:
    from detectron2.engine.train_loop import HookBase

    from connector.training import TrainRequest, train
    from connector.training.api import evaluate_model
    from connector.training.hooks import Clock

    labels, train_records, test_records = load_dataset(Path(data))
    clock = Clock()
    rows: list[dict] = []

    def row(minutes, iterations, metrics, train_s):
        return {"preset": preset, "minutes": minutes, "iterations": iterations,
                "ap50": metrics["ap50"], "ap": metrics["ap"],
                "s_per_iter": train_s / iterations if iterations else None, "peak_rss_mb": peak_rss_mb()}

    class Snapshots(HookBase):
        def __init__(self, at_minutes):
            self.pending = sorted(at_minutes)

        def after_step(self):
            while self.pending and clock.elapsed() >= self.pending[0] * 60:
                minutes = self.pending.pop(0)
                done = self.trainer.iter + 1
                elapsed = clock.elapsed()
                with clock.paused():
                    metrics = evaluate_model(self.trainer.cfg, self.trainer.model, test_records, labels)
                    rows.append(row(minutes, done, metrics, elapsed))
                    print(f"  [{preset}] {minutes:g} min: iter {done}, AP50 {metrics['ap50']}", flush=True)

    budgets = sorted(budgets_min)
    with tempfile.TemporaryDirectory() as tmp:
        request = TrainRequest(labels=labels, train=train_records, evaluation=test_records,
                               output_dir=Path(tmp) / preset, preset=preset,
                               budget_seconds=budgets[-1] * 60, seed=seed, device=device)
        last = [0.0]
        result = train(request, progress=lambda p: last.__setitem__(0, p["elapsed_s"]),
                       extra_hooks=[Snapshots(budgets[:-1])], clock=clock)
    final_minutes = budgets[-1] if result.stopped_by == "budget" else round(last[0] / 60, 2)
    rows.append(row(final_minutes, result.iterations, result.metrics, last[0]))
    if result.stopped_by != "budget":
        print(f"  [{preset}] reached MAX_ITER at {last[0] / 60:.1f} min (before the largest budget)")
    return rows


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="fast,scratch")
    ap.add_argument("--budgets", default="2,5,10", help="minutes of training time, comma-separated")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--separate", action="store_true",
                    help="one run per budget (each with its own LR schedule) instead of snapshots of one run")
    args = ap.parse_args(argv)
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    budgets = sorted(float(b) for b in args.budgets.split(","))
    if not (Path(args.data) / "coco.json").is_file():
        print(f"dataset not found: {args.data}", file=sys.stderr)
        return 2

    mode = ("one run per preset and budget" if args.separate
            else f"one run per preset, snapshots at {budgets} min of training time")
    print(f"fork-scissors, {mode} (evaluation excluded from the clock), test split of split.json")
    print(f"torch threads: default; {os.cpu_count()} CPUs; load average at start: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    rows: list[dict] = []
    ctx = mp.get_context("spawn")
    for preset in presets:
        t0 = time.perf_counter()
        print(f"{preset}: training ...", flush=True)
        try:
            for group in ([[b] for b in budgets] if args.separate else [budgets]):
                with ctx.Pool(1) as pool:  # own process: clean peak RSS per preset
                    rows += pool.apply(run_preset, (preset, group, args.data, args.seed, args.device))
        except Exception as exc:  # noqa: BLE001 - report and go on with the next preset
            print(f"{preset}: FAILED: {type(exc).__name__}: {exc}", flush=True)
        print(f"{preset}: done in {(time.perf_counter() - t0) / 60:.1f} min wall", flush=True)

    header = (f"{'preset':<10} {'minutes':>7} {'iters':>6} {'AP50':>6} {'AP':>6} {'s/iter':>7} "
              f"{'peakRSS MB':>10}")
    print(f"\nload average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
          "(values above the CPU count mean other processes competed for the cores)")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['preset']:<10} {r['minutes']:>7g} {r['iterations']:>6} {_fmt(r['ap50'], '6.3f')} "
              f"{_fmt(r['ap'], '6.3f')} {_fmt(r['s_per_iter'], '7.2f')} {r['peak_rss_mb']:>10.0f}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
