"""Training on phone-size photos: what decoding a large JPEG at reduced scale buys in a budget.

The photos of a dataset (fork-scissors' by default) are enlarged to a phone camera's size and
saved as JPEG; then the same budgeted `fast` training runs twice, each in its own process: once
decoding every picture in full (as before), once at libjpeg's reduced scale (what training does
now, see `dataset.train_decode_side`). It prints iterations in the budget, seconds per iteration,
the mapper's time per picture and the evaluation's time and AP on the test split.

    python bench/photo_size_bench.py                       # 4032x3024, 90 s each
    python bench/photo_size_bench.py --size 2016x1512 --budget 60
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from train_bench import DEFAULT_DATA, load_dataset  # noqa: E402


def enlarge(records, size: tuple[int, int], folder: Path):
    """The records with their pictures enlarged to ``size`` (JPEG, quality 90) and boxes scaled."""
    import dataclasses

    from PIL import Image

    out = []
    for r in records:
        sx, sy = size[0] / r.width, size[1] / r.height
        path = folder / f"{r.image_id}.jpg"
        with Image.open(r.path) as img:
            img.convert("RGB").resize(size, Image.BICUBIC).save(path, quality=90)
        boxes = tuple((label, x * sx, y * sy, w * sx, h * sy) for label, x, y, w, h in r.boxes)
        out.append(dataclasses.replace(r, path=str(path), width=size[0], height=size[1], boxes=boxes))
    return out


def run(mode: str, data: str, size: tuple[int, int], budget: float, queue) -> None:
    import torch

    from connector.training import TrainRequest, api, dataset, train

    torch.set_num_threads(2)
    if mode == "full":  # the decode before this change: every pixel, in training and evaluation
        dataset.train_decode_side = lambda cfg: None
        full = api.load_rgb_array
        api.load_rgb_array = lambda path, min_side=None: full(path)
    mapper_s = []
    real_call = dataset.TrainMapper.__call__

    def timed(self, d):
        t = time.perf_counter()
        out = real_call(self, d)
        mapper_s.append(time.perf_counter() - t)
        return out

    dataset.TrainMapper.__call__ = timed
    labels, train_records, test_records = load_dataset(Path(data))
    with tempfile.TemporaryDirectory() as tmp:
        train_records = enlarge(train_records, size, Path(tmp))
        test_records = enlarge(test_records, size, Path(tmp))
        request = TrainRequest(labels=labels, train=train_records, evaluation=test_records,
                               output_dir=Path(tmp) / "out", preset="fast", budget_seconds=budget, seed=0)
        elapsed = [0.0]
        result = train(request, progress=lambda p: elapsed.__setitem__(0, p["elapsed_s"]))
    queue.put({"mode": mode, "iterations": result.iterations, "s_per_iter": elapsed[0] / max(result.iterations, 1),
               "mapper_ms": 1000 * sum(mapper_s) / max(len(mapper_s), 1),
               "after_training_s": result.duration_s - elapsed[0], "ap": result.metrics["ap"],
               "ap50": result.metrics["ap50"]})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--size", default="4032x3024", help="the photos' size, WxH")
    ap.add_argument("--budget", type=float, default=90.0, help="seconds of training per mode")
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    ctx = mp.get_context("spawn")
    rows = []
    for mode in ("full", "reduced"):  # one after the other: each has both cores
        queue = ctx.Queue()
        p = ctx.Process(target=run, args=(mode, args.data, size, args.budget, queue))
        p.start()
        rows.append(queue.get())
        p.join()
    print(f"\nfast preset, photos {size[0]}x{size[1]}, {args.budget:g} s of training each, 2 threads\n")
    columns = [("decode", "mode", "s"), ("iterations", "iterations", "d"), ("s / iteration", "s_per_iter", ".2f"),
               ("mapper ms / picture", "mapper_ms", ".0f"), ("evaluation + thresholds s", "after_training_s", ".1f"),
               ("AP", "ap", ".3f"), ("AP50", "ap50", ".3f")]
    print("| " + " | ".join(title for title, _, _ in columns) + " |")
    print("|" + "---|" * len(columns))
    for r in rows:
        print("| " + " | ".join(format(r[key], spec) for _, key, spec in columns) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
