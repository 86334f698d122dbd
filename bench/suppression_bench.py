"""Greedy NMS against Soft-NMS on one trained version: AP and the best possible counts.

The detector runs once per test photo with its own NMS off (``all_candidates``); each setting then
suppresses those candidates as the serving engines do (``batched_nms`` at an IoU, or ``soft_nms``
with a sigma) and is scored on the dataset's test split. "count bound" is the relative count error
at the best single threshold per label chosen on the test photos themselves: how far a threshold
could take the counts under that setting.

    python bench/ablation_bench.py --data ../shared/datasets/bccd --iters 720 --keep kept
    python bench/suppression_bench.py --version kept/bccd-base --data ../shared/datasets/bccd
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", required=True, help="a version folder (config.yaml, model_final.pth)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--nms", default="0.45,0.5,0.6", help="greedy NMS IoU thresholds")
    ap.add_argument("--sigmas", default="0.3,0.5,0.7,1.0", help="Soft-NMS sigmas")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from bench.train_bench import load_dataset
    from connector.inference.onnx_postprocess import batched_nms
    from connector.modeling.predictor import Detection, Predictor
    from connector.modeling.suppression import all_candidates, floor_and_cap, soft_nms
    from connector.training.api import _predict_fn
    from connector.training.evaluation import count_errors, evaluate_detections, match, predict_all
    from connector.training.thresholds import thresholds_from_matches

    labels, _, test = load_dataset(Path(args.data))
    folder = Path(args.version)
    loaded = Predictor(folder / "config.yaml", folder / "model_final.pth")
    cfg = loaded.cfg.clone()
    cfg.ODCONNECT.SOFT_NMS_SIGMA = 0.0  # the candidates as the detector gives them; each row suppresses them
    predictor = Predictor.from_model(cfg, loaded.model)
    floor, cap = floor_and_cap(predictor.model)
    with all_candidates(predictor.model):
        candidates = predict_all(_predict_fn(predictor, None), test)
    arrays = [(np.array([[d.x0, d.y0, d.x1, d.y1] for d in ds]).reshape(-1, 4), np.array([d.score for d in ds]),
               np.array([d.label_index for d in ds], dtype=np.int64)) for ds in candidates]

    def row(name: str, suppress) -> None:
        t0 = time.perf_counter()
        dets = []
        for boxes, scores, classes in arrays:
            keep, kept_scores = suppress(boxes, scores, classes)
            dets.append([Detection(int(classes[i]), float(s), *map(float, boxes[i])) for i, s in zip(keep, kept_scores)])
        ms = (time.perf_counter() - t0) / len(arrays) * 1000
        m = evaluate_detections(dets, test, labels, interval_level=None)
        matches = match(dets, test, len(labels))
        best = thresholds_from_matches(matches)
        bound = " / ".join(f"{count_errors(matches, k, best[k])[1]:.1%}" for k in range(len(labels)))
        per_label = " / ".join(f"{m['per_label'][name_]['ap50']:.3f}" for name_ in labels)
        print(f"| {name} | {m['ap']:.3f} | {m['ap50']:.3f} | {m['ap75']:.3f} | {per_label} | {bound} | {ms:.1f} |",
              flush=True)

    print(f"{folder.name}: {len(test)} test photos, {np.mean([len(a[1]) for a in arrays]):.0f} candidates per photo "
          f"above {floor}")
    print(f"| suppression | AP | AP50 | AP75 | AP50 {' / '.join(labels)} | count bound | ms per photo |")
    print("|---|---|---|---|---|---|---|")
    for iou in (float(v) for v in args.nms.split(",")):
        def greedy(b, s, c, iou=iou):
            keep = batched_nms(b, s, c, iou)[:cap]
            return keep, s[keep]
        row(f"greedy NMS, IoU {iou}", greedy)
    for sigma in (float(v) for v in args.sigmas.split(",")):
        row(f"Soft-NMS, sigma {sigma}", lambda b, s, c, sigma=sigma: soft_nms(b, s, c, sigma, floor, cap))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
