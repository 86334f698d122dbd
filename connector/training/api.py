"""Public entry of the training library: request/result dataclasses, ``train()`` and
``split_held_out()``. Called by the service in a worker thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from detectron2.config import CfgNode
from detectron2.engine.train_loop import HookBase
from detectron2.utils.env import seed_all_rng

from connector.modeling.artifacts import VersionFiles
from connector.modeling.predictor import Detection, Predictor
from connector.modeling.records import ImageRecord
from connector.training.dataset import load_rgb_array, records_to_dicts
from connector.training.evaluation import (SCORE_THRESHOLD, evaluate, evaluate_detections, predict_all,
                                           prediction_profile)
from connector.training.fitting import fit_to_data
from connector.training.hooks import BestCheckpointHook, Canceled, Clock
from connector.training.presets import build_cfg
from connector.training.thresholds import choose_thresholds

__all__ = ["ImageRecord", "TrainRequest", "TrainResult", "Canceled", "train", "split_held_out",
           "split_validation", "score_version"]

logger = logging.getLogger("odconnect.training")


@dataclass
class TrainRequest:
    labels: list[str]
    train: list[ImageRecord]
    output_dir: Path
    evaluation: list[ImageRecord] | None = None  # None => split_held_out(train)
    preset: str = "fast"
    budget_seconds: float | None = None  # training time (model set-up included, final eval excluded)
    max_iter: int | None = None
    seed: int = 0
    init_weights: str | None = None
    device: str | None = None
    overrides: dict[str, object] = field(default_factory=dict)


@dataclass
class TrainResult:
    weights_path: Path
    config_path: Path
    metrics: dict
    iterations: int
    stopped_by: str  # "max_iter" | "budget"
    started_from: str  # "scratch" | "imagenet:<file>" | "weights:<file>"
    duration_s: float  # whole call: set-up, training and final evaluation
    eval_image_ids: list[int]
    kept_iteration: int = 0  # the iteration whose weights were kept (a late snapshot may beat the last)
    train_image_ids: list[int] = field(default_factory=list)  # what the weights learned from
    validation_image_ids: list[int] = field(default_factory=list)  # chose the snapshot and thresholds
    thresholds: dict[str, float] = field(default_factory=dict)  # label -> detect's default threshold


# --------------------------------------------------------------------------- held-out split


def _rank(seed: int, image_id: int) -> str:
    return hashlib.sha1(f"{seed}:{image_id}".encode()).hexdigest()


def split_held_out(records: list[ImageRecord], n_labels: int, fraction: float = 0.2,
                   seed: int = 0) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """(train, held_out), deterministic by image id (and seed), each in input order.

    Every label that has >= 2 images gets at least one image in each part (best effort when
    images carry several labels); an image holding a label's only example stays in training.
    About ``fraction`` of the images are held out, more if needed to cover the labels.
    """
    order = sorted(records, key=lambda r: _rank(seed, r.image_id))
    labels_of = {r.image_id: {b[0] for b in r.boxes} for r in records}
    train_count = [0] * n_labels
    for r in records:
        for k in labels_of[r.image_id]:
            if 0 <= k < n_labels:
                train_count[k] += 1
    total = list(train_count)
    held: set[int] = set()

    def take(r: ImageRecord) -> bool:
        ks = [k for k in labels_of[r.image_id] if 0 <= k < n_labels]
        if r.image_id in held or any(train_count[k] < 2 for k in ks):
            return False
        held.add(r.image_id)
        for k in ks:
            train_count[k] -= 1
        return True

    def covered(k: int) -> bool:
        return any(k in labels_of[i] for i in held)

    # 1. cover the labels, rarest first
    for k in sorted(range(n_labels), key=lambda k: (total[k], k)):
        if total[k] >= 2 and not covered(k):
            for r in order:
                if k in labels_of[r.image_id] and take(r):
                    break
    # 2. fill up to the fraction
    target = int(round(fraction * len(records))) if len(records) >= 2 else 0
    for r in order:
        if len(held) >= target:
            break
        take(r)
    return [r for r in records if r.image_id not in held], [r for r in records if r.image_id in held]


def split_validation(records: list[ImageRecord], n_labels: int, validation: CfgNode,
                     seed: int = 0) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """(train, validation) from the training images, like :func:`split_held_out`.

    ``validation`` is ``cfg.ODCONNECT.VALIDATION``: about FRACTION of the images, at most
    MAX_IMAGES; none at all (``(records, [])``) under MIN_IMAGES images, where a part small
    enough to spare would say too little to choose anything on.
    """
    if len(records) < int(validation.MIN_IMAGES) or not records:
        return list(records), []
    fraction = min(float(validation.FRACTION), int(validation.MAX_IMAGES) / len(records))
    return split_held_out(records, n_labels, fraction=fraction, seed=seed)


# --------------------------------------------------------------------------- helpers


_SIZE_KEYS = ("INPUT.MIN_SIZE_", "INPUT.MAX_SIZE_")


def _apply_overrides(cfg: CfgNode, overrides: dict[str, object]) -> None:
    flat: list[object] = []
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            if p not in node:
                raise ValueError(f"unknown config key {key!r}")
            node = node[p]
        if leaf not in node:
            raise ValueError(f"unknown config key {key!r}")
        old = node[leaf]
        if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        flat += [key, value]
    cfg.merge_from_list(flat)
    if any(k.startswith(_SIZE_KEYS) for k in overrides):
        cfg.ODCONNECT.FIT.INPUT_SIZE = False  # sizes given by hand win over fitted ones


def _write_tmp(path: Path, write: Callable[[Path], None], created: list[Path]) -> Path:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    created.append(tmp)
    write(tmp)
    return tmp


def _imagenet_file(cfg: CfgNode) -> str | None:
    """File name of the ImageNet weights a pretrained backbone loads when built, if any."""
    if "EFFNET" not in cfg.MODEL or not cfg.MODEL.EFFNET.PRETRAINED:
        return None
    from connector.modeling.backbones.efficientnet_lite import pretrained_weights_description

    desc = pretrained_weights_description(cfg)  # "imagenet:<file>" or "local:<file>"
    return desc.split(":", 1)[1] if ":" in desc else desc


def _cleanup(paths: Sequence[Path], output_dir: Path, created_dir: bool) -> None:
    for p in paths:
        try:
            p.unlink(missing_ok=True)
        except OSError:
            logger.warning("could not remove %s", p)
    if created_dir:
        try:
            output_dir.rmdir()
        except OSError:
            pass


def _check(request: TrainRequest) -> None:
    if not request.labels:
        raise ValueError("labels must not be empty")
    n = len(request.labels)
    for r in list(request.train) + list(request.evaluation or []):
        for b in r.boxes:
            if not 0 <= int(b[0]) < n:
                raise ValueError(f"image {r.image_id}: label index {b[0]} out of range 0..{n - 1}")
    if not any(r.boxes for r in request.train):
        raise ValueError("no boxes in the training images")


# --------------------------------------------------------------------------- train


def train(request: TrainRequest, progress: Callable[[dict], None] | None = None,
          cancel: threading.Event | None = None, *, extra_hooks: Sequence[HookBase] = (),
          clock: Clock | None = None) -> TrainResult:
    """Train a detector, evaluate it and write its weights and config (modeling.artifacts).

    Raises :class:`Canceled` (leaving nothing behind in ``output_dir``) when ``cancel`` is set.
    ``extra_hooks``/``clock`` are for benchmarks (snapshot evaluation with a paused clock).
    """
    from connector.training.trainer import DetectionTrainer  # heavy import, keep api light

    t_start = time.perf_counter()
    clock = clock or Clock()
    clock.start()
    _check(request)
    device = request.device or ("cuda" if torch.cuda.is_available() else "cpu")

    cfg = build_cfg(request.preset, len(request.labels), device)
    cfg.ODCONNECT.LABELS = list(request.labels)
    cfg.SEED = int(request.seed)
    if request.max_iter is not None:
        cfg.SOLVER.MAX_ITER = int(request.max_iter)
    _apply_overrides(cfg, dict(request.overrides))
    if cfg.ODCONNECT.REQUIRES_INIT_WEIGHTS and not request.init_weights:
        raise ValueError(f"preset {request.preset!r} needs init_weights (a model-zoo checkpoint file)")
    if request.init_weights:
        started_from = f"weights:{Path(request.init_weights).name}"
    elif (name := _imagenet_file(cfg)) is not None:
        started_from = f"imagenet:{name}"
    else:
        started_from = "scratch"
    cfg.ODCONNECT.STARTED_FROM = started_from

    # Three disjoint parts: the weights learn from train_records; val_records choose the kept
    # snapshot and the thresholds; eval_records only report the score.
    n_labels = len(request.labels)
    if request.evaluation is None:
        pool, eval_records = split_held_out(request.train, n_labels, seed=request.seed)
    else:
        pool, eval_records = list(request.train), list(request.evaluation)
    train_records, val_records = split_validation(pool, n_labels, cfg.ODCONNECT.VALIDATION, request.seed)
    fit_to_data(cfg, train_records)

    output_dir = Path(request.output_dir)
    created_dir = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    created: list[Path] = []
    try:
        seed_all_rng(cfg.SEED)
        hooks = list(extra_hooks)
        best = None
        if val_records:  # late snapshots compete on the validation images
            best = BestCheckpointHook(
                clock, lambda m: evaluate_model(cfg, m, val_records, request.labels, cancel),
                request.budget_seconds, int(cfg.SOLVER.MAX_ITER),
                margin=float(cfg.ODCONNECT.VALIDATION.SNAPSHOT_MARGIN))
            hooks.append(best)
        trainer = DetectionTrainer(cfg, records_to_dicts(train_records), clock=clock,
                                   budget_s=request.budget_seconds, progress=progress, cancel=cancel,
                                   extra_hooks=hooks)
        if request.init_weights:
            trainer.load_weights(request.init_weights)
        trainer.train()
        model, iterations, stopped_by = trainer.inference_model(), trainer.iter, trainer.stopped_by
        del trainer

        with clock.paused():
            kept_iteration, chosen_thresholds, validation_score = iterations, [None] * n_labels, None
            if val_records:
                kept_iteration, chosen_thresholds, validation_score = _choose_on_validation(
                    cfg, model, best, iterations, val_records, request.labels, cancel)
            thresholds = [SCORE_THRESHOLD if t is None else t for t in chosen_thresholds]
            eval_dets = predict_records(cfg, model, eval_records, cancel)
            metrics = evaluate_detections(eval_dets, eval_records, request.labels, thresholds)
            # the version's answers on the images it is scored on: production monitoring's baseline
            metrics["prediction_profile"] = prediction_profile(eval_dets, request.labels)
            for name, t in zip(request.labels, chosen_thresholds):
                metrics["per_label"][name]["threshold_from"] = "default" if t is None else "validation"
            metrics["validation"] = {"images": len(val_records), "score": validation_score,
                                     "min_images": int(cfg.ODCONNECT.VALIDATION.MIN_IMAGES)}
            cfg.ODCONNECT.THRESHOLDS = [float(t) for t in thresholds]
            cfg.MODEL.WEIGHTS = ""  # the predictor loads weights_path explicitly
            files = VersionFiles.at(output_dir)
            weights_path, config_path = files.weights, files.config
            # saved in the default layout, whatever layout training ran in (memory_format.py)
            state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
            tmp_w = _write_tmp(weights_path, lambda p: torch.save({"model": state}, p), created)
            tmp_c = _write_tmp(config_path, lambda p: p.write_text(cfg.dump()), created)
            if cancel is not None and cancel.is_set():
                raise Canceled("training canceled")
            os.replace(tmp_w, weights_path)
            created.append(weights_path)  # removed again should the config fail to land
            os.replace(tmp_c, config_path)
    except BaseException:
        _cleanup(created, output_dir, created_dir)
        raise
    return TrainResult(
        weights_path=weights_path, config_path=config_path, metrics=metrics,
        iterations=iterations, stopped_by=stopped_by, started_from=started_from,
        duration_s=time.perf_counter() - t_start, eval_image_ids=[r.image_id for r in eval_records],
        kept_iteration=kept_iteration, train_image_ids=[r.image_id for r in train_records],
        validation_image_ids=[r.image_id for r in val_records],
        thresholds=dict(zip(request.labels, (float(t) for t in thresholds))),
    )


def _predict_fn(predictor: Predictor, cancel: threading.Event | None,
                label_map: Sequence[int | None] | None = None) -> Callable[[ImageRecord], list[Detection]]:
    """What ``evaluate`` calls per record: the Predictor's detections in the record's coordinates,
    with label indexes mapped (``label_map[i]``: the index of the predictor's label i, or None to
    drop it) when the predictor was trained on other labels than the records carry."""

    def predict_fn(r: ImageRecord) -> list[Detection]:
        if cancel is not None and cancel.is_set():
            raise Canceled("training canceled")
        rgb = load_rgb_array(r.path, int(predictor.cfg.INPUT.MIN_SIZE_TEST))
        dets = predictor.predict_array(rgb, min_score=0.0)
        h, w = rgb.shape[:2]
        sx, sy = r.width / w, r.height / h  # boxes back into the record's coordinates
        out = []
        for d in dets:
            label = d.label_index if label_map is None else label_map[d.label_index]
            if label is not None:
                out.append(Detection(label, d.score, d.x0 * sx, d.y0 * sy, d.x1 * sx, d.y1 * sy))
        return out

    return predict_fn


def _choose_on_validation(cfg: CfgNode, model: torch.nn.Module, best: BestCheckpointHook, iterations: int,
                          records: Sequence[ImageRecord], labels: Sequence[str],
                          cancel: threading.Event | None) -> tuple[int, list[float | None], float]:
    """Keep the best of the final weights and the snapshots (loaded into ``model``), then choose
    each label's threshold on its detections: (kept iteration, thresholds, validation score)."""
    dets = predict_records(cfg, model, records, cancel)
    final = evaluate_detections(dets, records, labels, interval_level=None)
    chosen, kept_iteration = best.choose(model, final, iterations)
    if chosen is not final:  # a snapshot won: its own detections choose the thresholds
        dets = predict_records(cfg, model, records, cancel)
    thresholds = choose_thresholds(dets, records, len(labels), int(cfg.ODCONNECT.VALIDATION.MIN_LABEL_IMAGES))
    return kept_iteration, thresholds, chosen["score"]


def predict_records(cfg: CfgNode, model: torch.nn.Module, records: Sequence[ImageRecord],
                    cancel: threading.Event | None = None) -> list[list[Detection]]:
    """Every detection (no score floor) of an in-memory model on ``records``, predicted exactly as
    the Predictor does, in the records' pixel coordinates."""
    was_training = model.training
    predictor = Predictor.from_model(cfg, model)  # puts the model in eval mode
    try:
        return predict_all(_predict_fn(predictor, cancel), records)
    finally:
        model.train(was_training)


def evaluate_model(cfg: CfgNode, model: torch.nn.Module, records: Sequence[ImageRecord],
                   labels: Sequence[str], cancel: threading.Event | None = None,
                   thresholds: Sequence[float] | None = None, interval_level: float | None = None) -> dict:
    """Metrics of an in-memory model on ``records`` (see evaluation.evaluate_detections), with the
    profile of its answers there: production monitoring's baseline for the version."""
    detections = predict_records(cfg, model, records, cancel)
    metrics = evaluate_detections(detections, records, labels, thresholds, interval_level=interval_level)
    metrics["prediction_profile"] = prediction_profile(detections, labels)
    return metrics


def score_version(config_path: str | Path, weights_path: str | Path, records: Sequence[ImageRecord],
                  labels: Sequence[str], cancel: threading.Event | None = None) -> dict:
    """Metrics of a stored version on ``records`` (labelled with ``labels``), through the same
    evaluation as a run's own score, so that two versions compare on equal terms. Labels are
    matched by name; a label the version was not trained on is one it never finds.

    Runs on the calling thread: the training worker calls it, on the thread whose OpenMP team
    already exists, instead of asking the serving model thread to spend seconds on it.
    """
    predictor = Predictor(config_path, weights_path)
    index = {name: i for i, name in enumerate(labels)}
    label_map = [index.get(name) for name in predictor.labels]
    return evaluate(_predict_fn(predictor, cancel, label_map), records, labels)
