"""torch vs onnxruntime on one trained version: detect latency and AP, side by side, one process.

Trains `fast` on ../shared/datasets/fork-scissors (fixed split in split.json) for a time budget
(or reuses a version folder), exports it to ONNX (and, with --int8, quantizes it as publishing
does), then measures

  * per-image latency p50 / p95 of a 1024x768 JPEG, decode included (bytes in, boxes out):
    torch as the service runs it (full decode, Predictor.predict), onnxruntime with the same
    full decode, and onnxruntime with the reduced-scale JPEG decode;
  * AP50 / AP of each engine on the test split (pycocotools, as training's evaluation);
  * the export check of onnx_verify on the test images.

Other people share these cores: the engines run interleaved, one request each in turn (order
rotating), in the same process, so that contention hits them alike.

    nice -n 19 python bench/onnx_bench.py --budget 5 --int8
    nice -n 19 python bench/onnx_bench.py --iterations 200 --int8   # ~5 min on 2 idle cores
    nice -n 19 python bench/onnx_bench.py --reuse /tmp/odc-onnx-bench/fast --int8
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "fork-scissors"
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def train_version(data: Path, out: Path, minutes: float | None, iterations: int | None) -> dict:
    from bench.train_bench import load_dataset
    from connector.training import TrainRequest, train

    labels, train_records, test_records = load_dataset(data)
    result = train(TrainRequest(labels=labels, train=train_records, evaluation=test_records, output_dir=out,
                                preset="fast", budget_seconds=minutes * 60 if minutes else None,
                                max_iter=iterations, seed=0))
    return {"iterations": result.iterations, "metrics": result.metrics}


def probe_jpeg(data: Path) -> bytes:
    """A test-split photo as a 1024x768 JPEG (quality 90)."""
    from PIL import Image

    split = json.loads((data / "split.json").read_text())
    coco = json.loads((data / "coco.json").read_text())
    name = next(im["file_name"] for im in coco["images"] if im["id"] == split["test"][0])
    img = Image.open(data / name).convert("RGB").resize((1024, 768), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--budget", type=float, default=5.0, help="training minutes (when not --reuse)")
    ap.add_argument("--iterations", type=int, help="train this many iterations instead of a time budget "
                    "(the same model however busy the cores are)")
    ap.add_argument("--reuse", help="a version folder (config.yaml + model_final.pth) to use instead")
    ap.add_argument("--out", default="/tmp/odc-onnx-bench", help="where the trained version goes")
    ap.add_argument("--requests", type=int, default=60, help="timed detects per engine")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--int8", action="store_true", help="also measure a dynamically quantized int8 model")
    ap.add_argument("--no-ap", action="store_true", help="latency only (e.g. a --reuse model of other labels)")
    args = ap.parse_args(argv)
    data = Path(args.data)
    if not (data / "coco.json").is_file():
        print(f"dataset not found: {data}", file=sys.stderr)
        return 2

    import torch
    from PIL import Image

    from bench.train_bench import load_dataset
    from connector.inference.onnx_export import export_onnx
    from connector.inference.onnx_predictor import OnnxPredictor
    from connector.inference.onnx_quantize import quantize_network
    from connector.inference.onnx_verify import verify
    from connector.modeling.predictor import Predictor
    from connector.training.evaluation import evaluate

    torch.set_num_threads(args.threads)
    print(f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"torch threads {args.threads}, onnxruntime intra-op threads {args.threads}", flush=True)
    if args.reuse:
        folder = Path(args.reuse)
        print(f"reusing {folder}")
    else:
        folder = Path(args.out) / "fast"
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        budget = None if args.iterations else args.budget
        trained = train_version(data, folder, budget, args.iterations)
        print(f"trained fast ({f'{budget:g} min' if budget else 'fixed iterations'}): "
              f"{trained['iterations']} iterations, AP50 "
              f"{trained['metrics']['ap50']:.3f} ({(time.perf_counter() - t0) / 60:.1f} min wall)", flush=True)
    t0 = time.perf_counter()
    export_onnx(folder, force=True)
    print(f"ONNX export (trace, write, self-check): {time.perf_counter() - t0:.1f} s", flush=True)

    torch_predictor = Predictor(folder / "config.yaml", folder / "model_final.pth", num_threads=args.threads)
    engines = {"torch": None, "onnxruntime": OnnxPredictor(folder, args.threads)}
    if args.int8:
        t0 = time.perf_counter()
        # as publishing does it (connector/inference/onnx_quantize.py): calibrated on training photos
        _, train_records, _ = load_dataset(data)
        quantize_network(folder, [Path(r.path).read_bytes() for r in train_records[:32]])
        engines["onnxruntime int8"] = OnnxPredictor(folder, args.threads, int8=True)
        print(f"int8 static quantization: {time.perf_counter() - t0:.1f} s", flush=True)

    def decoded(data_bytes: bytes) -> Image.Image:
        # what detect hands the predictor: the whole picture decoded, upright, RGB
        from PIL import ImageOps
        return ImageOps.exif_transpose(Image.open(io.BytesIO(data_bytes))).convert("RGB")

    # bytes in, boxes out; "full decode" decodes as detect does today, "reduced decode" lets the
    # ONNX predictor decode a large JPEG at reduced scale
    runs = {"torch (full decode)": lambda b, s: torch_predictor.predict(decoded(b), s)}
    runs["onnxruntime (full decode)"] = lambda b, s: engines["onnxruntime"].predict(decoded(b), s)
    for name, p in engines.items():
        if p is not None:
            runs[f"{name} (reduced decode)"] = lambda b, s, p=p: p.predict(b, s)

    probe = probe_jpeg(data)
    for fn in runs.values():  # warm-up: allocator, oneDNN / onnxruntime kernels for this size
        for _ in range(5):
            fn(probe, 0.05)
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for i in range(args.requests):
        for name in names[i % len(names):] + names[:i % len(names)]:  # rotate who goes first
            t0 = time.perf_counter()
            runs[name](probe, 0.05)
            times[name].append((time.perf_counter() - t0) * 1000)

    labels, _, test_records = load_dataset(data)
    ap: dict[str, dict] = {}

    for name, fn in runs.items():  # every probability, as training's evaluation ranks them
        ap[name] = ({"ap50": float("nan"), "ap": float("nan")} if args.no_ap else
                    evaluate(lambda r, fn=fn: fn(Path(r.path).read_bytes(), 0.0), test_records, labels))

    report = verify(torch_predictor, engines["onnxruntime"], [(Path(r.path).name, Path(r.path).read_bytes())
                                                              for r in test_records])
    print(f"\nexport check on the {len(test_records)} test images (onnx_verify): {report.summary()}")
    if "onnxruntime int8" in engines:
        q = verify(torch_predictor, engines["onnxruntime int8"], [(Path(r.path).name, Path(r.path).read_bytes())
                                                                  for r in test_records])
        print(f"int8 against torch: {q.summary()}")

    print(f"\n1024x768 JPEG, {args.requests} detects per engine, interleaved; "
          f"load average at end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| engine | p50 ms | p95 ms | AP50 | AP |")
    print("|---|---|---|---|---|")
    for name in runs:
        print(f"| {name} | {percentile(times[name], 50):.1f} | {percentile(times[name], 95):.1f} | "
              f"{ap[name]['ap50']:.3f} | {ap[name]['ap']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
