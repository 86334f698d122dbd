"""Training runs: start (after the data check), execute in a worker, cancel, recover.

A run trains into a temporary folder; only a finished run's folder is renamed
into place and recorded as a version, in one transaction. A canceled or failed
run leaves nothing behind.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from model_store import Store
from model_store.schema import (ACTIVE_RUN_STATES, Draft, Image, Model, TrainingRun, Version, WeightFile,
                                utcnow)

from ..errors import Conflict, Invalid, NotFound
from ..modeling.artifacts import VersionFiles, run_folder, version_folder
from ..modeling.boxes import fraction_to_pixels
from ..modeling.records import ImageRecord
from ..routes import run_path
from ..views import run_view
from . import gate, monitoring
from . import versions as versions_svc
from . import webhooks
from .catalog import active_run, get_model
from .data_check import data_check, require_trainable
from .loss_history import LossHistory

log = logging.getLogger("odconnect.training")


def list_presets() -> list[dict]:
    from ..training.presets import PRESETS
    return [{"name": p.name, "description": p.description} for p in PRESETS.values()]


def preset_names() -> list[str]:
    from ..training.presets import PRESETS
    return list(PRESETS)


def preset_needs_weights(preset: str) -> bool:
    from ..training.presets import PRESETS
    return PRESETS[preset].requires_init_weights


# --- starting -------------------------------------------------------------------------------

def start_training(store: Store, config: dict, model_ref, body: dict | None, trigger: str = "api",
                   retrain_ref=None, gate_entry_id: int | None = None, use_draft: bool = True) -> dict:
    """Create a queued run; the caller hands its id to the worker pool.

    Settings, later ones winning: defaults <- base version <- the draft <- the request body.
    `use_draft=False` leaves the draft out (and in place), for runs that are not the next version
    the maker is preparing (a labeling model). `publish` (+ `publishMargin`) in the body gates the
    run: the promotion gate decides whether its version gets published
    (connector/services/gate.py). A schedule firing passes the history entry it claimed instead.
    """
    body = dict(body or {})
    policy = None
    if "publish" in body or "publishMargin" in body:
        policy = gate.check_policy(body.pop("publish", "ifBetter"), body.pop("publishMargin", None))
    tcfg = config["training"]
    with store.transaction() as s:
        model = get_model(s, model_ref)
        base_ref = retrain_ref if retrain_ref is not None else body.pop("baseVersion", None)
        warm_start = bool(body.pop("warmStart", False))
        base = versions_svc.get_version(s, model, base_ref) if base_ref is not None else None
        settings, base = versions_svc.seed_settings(s, model, tcfg, base)
        draft = s.get(Draft, model.id) if retrain_ref is None and use_draft else None
        if draft is not None and base_ref is None:
            settings.update(draft.settings)
        settings.update(versions_svc.check_settings(s, model, body, tcfg, preset_names()))
        if preset_needs_weights(settings["preset"]) and not settings.get("weights") and not warm_start:
            raise Invalid(f"the {settings['preset']!r} preset starts from a detectron2 model-zoo file: add one with "
                          "`odconnect weights add PATH` and train with \"weights\": NAME")
        active = active_run(s, model.id)
        if active is not None:
            raise Conflict(f"model {model.name!r} already has run {active.id} {active.status}",
                           run=run_path(model.id, active.id),
                           headers={"Location": run_path(model.id, active.id)})
        model_id, model_name = model.id, model.name

    check = data_check(store, config["data_check"], model_id)
    require_trainable(check)

    with store.transaction() as s:
        run = TrainingRun(model_id=model_id, status="queued", trigger=trigger,
                          settings={**settings, "warmStart": warm_start, "fromDraft": draft is not None},
                          base_version_id=base.id if base else None,
                          progress={"iteration": 0, "maxIterations": None})
        s.add(run)
        try:
            s.flush()
        except IntegrityError:  # another request started a run between our check and this insert
            raise Conflict(f"model {model_name!r} already has an active run") from None
        if policy is not None:
            gate.open_manual(s, model_id, run.id, trigger, *policy)
        elif gate_entry_id is not None:
            gate.attach_run(s, gate_entry_id, run.id)
        return run_view(run)


def submit_training(store: Store, config: dict, runs, model_ref, body: dict | None, trigger: str = "api",
                    retrain_ref=None) -> dict:
    """Start a run (see start_training) and queue it on the runner: what the API calls."""
    run = start_training(store, config, model_ref, body, trigger, retrain_ref)
    runs.submit(run["id"])
    return run


def cancel_run(store: Store, runs, model_ref, run_id: int) -> dict:
    """Cancel a queued run at once, or signal a training one to stop within seconds."""
    run, signal = request_cancel(store, model_ref, run_id)
    if signal:
        runs.cancel(run_id)
    return run


# --- executing (in a worker thread) -------------------------------------------------------

class RunFailed(Exception):
    """A reason a run cannot go on, worded for the maker."""


@dataclass
class Plan:
    run_id: int
    model_id: int
    labels: list[str]
    train: list
    evaluation: list | None
    snapshot: dict
    data_hash: str
    settings: dict
    init_weights: str | None
    started_from: str | None
    from_draft: bool


def _records(s, store: Store, model: Model, dataset_ids: list[int]):
    """Images with approved boxes, as the trainer's records (pixel boxes, label indexes)."""
    index = {label.id: i for i, label in enumerate(model.labels)}
    images = s.scalars(select(Image).where(Image.dataset_id.in_(dataset_ids), Image.deleted_at.is_(None))
                       .order_by(Image.id)).all()
    records, digest = [], []
    for img in images:
        record = image_record(store, img, index)
        if not record.boxes:
            continue  # as in Custom Vision, untagged images do not train
        records.append(record)
        digest.append([img.id, img.sha256, [[round(v, 6) for v in b] for b in record.boxes]])
    return records, digest


def image_record(store: Store, img: Image, index: dict[int, int]) -> ImageRecord:
    """A stored image as the trainer and the evaluation read it: its approved boxes of the labels
    in ``index`` (label id -> label index), in pixels."""
    boxes = tuple((index[r.label_id], *fraction_to_pixels(r.left, r.top, r.width, r.height, img.width, img.height))
                  for r in img.regions if r.approved and r.label_id in index)
    return ImageRecord(image_id=img.id, path=str(store.blobs.path(img.sha256)), width=img.width,
                       height=img.height, boxes=boxes)


def current_data_hash(store: Store, model_id: int) -> str:
    """The hash a version trained now would record (training data only, default evaluation)."""
    with store.transaction() as s:
        model = s.get(Model, model_id)
        _, digest = _records(s, store, model, [d.id for d in model.datasets if d.kind == "training"])
        return hashlib.sha256(json.dumps(digest).encode()).hexdigest()


def claim_run(store: Store, run_id: int, worker: str) -> bool:
    """Move a queued run to training for `worker`, atomically: of two processes handed the same
    run (a redelivered task, a run queued again after a restart), one wins."""
    with store.transaction() as s:
        now = utcnow()
        claimed = s.execute(update(TrainingRun).where(TrainingRun.id == run_id, TrainingRun.status == "queued")
                            .values(status="training", started_at=now, worker=worker, heartbeat_at=now))
        return claimed.rowcount == 1


def plan_run(store: Store, run_id: int, worker: str) -> Plan | None:
    if not claim_run(store, run_id, worker):
        return None  # canceled while it waited, or another process has it
    with store.transaction() as s:
        run = s.get(TrainingRun, run_id)
        model = s.get(Model, run.model_id)
        settings = run.settings
        train_ids = [d.id for d in model.datasets if d.kind == "training"]
        train, train_digest = _records(s, store, model, train_ids)
        evaluation, eval_digest = None, []
        if settings.get("evaluationDatasetId"):
            evaluation, eval_digest = _records(s, store, model, [settings["evaluationDatasetId"]])
        init_weights = started_from = None
        if settings.get("warmStart") and run.base_version_id:
            base = s.get(Version, run.base_version_id)
            init_weights = str(VersionFiles.at(base.artifact_dir).weights)
            started_from = f"version:{base.number}"
        elif settings.get("weights"):
            wf = s.get(WeightFile, settings["weights"])
            init_weights, started_from = wf.path, f"weights:{wf.name}"
        snapshot = {"train": [d[0] for d in train_digest], "evaluation": [d[0] for d in eval_digest],
                    # label index -> label id: names can change later, ids do not
                    "labelIds": [label.id for label in model.labels],
                    # what scheduled retraining compares to tell whether the training data changed
                    "trainHash": hashlib.sha256(json.dumps(train_digest).encode()).hexdigest()}
        data_hash = hashlib.sha256(json.dumps([train_digest, eval_digest]).encode()).hexdigest()
        return Plan(run.id, model.id, [label.name for label in model.labels], train, evaluation, snapshot,
                    data_hash, settings, init_weights, started_from, bool(settings.get("fromDraft")))


def verify_images(plan: Plan) -> None:
    """Every image decodes before any training time is spent on it."""
    from PIL import Image as PILImage
    for rec in (plan.train or []) + (plan.evaluation or []):
        try:
            with PILImage.open(rec.path) as im:
                im.load()
        except Exception as exc:
            raise RunFailed(f"image {rec.image_id} cannot be read ({exc.__class__.__name__}: {exc}); "
                            "delete it or upload it again") from exc


class ProgressWriter:
    """Writes the trainer's progress into the run row, at most once a second."""

    def __init__(self, store: Store, run_id: int, min_interval: float = 1.0):
        self.store, self.run_id, self.min_interval = store, run_id, min_interval
        self.last = 0.0
        self.losses = LossHistory()

    def __call__(self, p: dict) -> None:
        self.losses.add(p.get("iteration"), p.get("loss"))
        now = time.monotonic()
        final = p.get("iteration") == p.get("max_iter")
        if now - self.last < self.min_interval and not final:
            return
        self.last = now
        with self.store.transaction() as s:
            run = s.get(TrainingRun, self.run_id)
            run.progress = {"iteration": p.get("iteration"), "maxIterations": p.get("max_iter"),
                            "elapsedSeconds": round(p.get("elapsed_s") or 0, 1),
                            "etaSeconds": None if p.get("eta_s") is None else round(p["eta_s"], 1),
                            "loss": None if p.get("loss") is None else round(p["loss"], 4),
                            "lossHistory": self.losses.points()}


def execute_run(store: Store, config: dict, run_id: int, cancel: threading.Event, worker: str,
                device: str | None = None, publish: Callable[[int, int], object] | None = None) -> None:
    """The worker's whole job for one run. Never raises: the outcome is written to the run.

    A gated run also scores the published version on its evaluation images, here on the worker
    thread, before its own version is recorded; `publish(model_id, number)` (the publish
    service) is what the gate calls when it decides for the new version.
    """
    tmp_dir = run_folder(store.artifacts_root, run_id)
    try:
        plan = plan_run(store, run_id, worker)
        if plan is None:
            return
        if not plan.train:
            raise RunFailed("no image has approved boxes to train on")
        verify_images(plan)
        from ..training import Canceled, TrainRequest, train
        settings = plan.settings
        budget = settings.get("budgetMinutes")
        request = TrainRequest(
            labels=plan.labels, train=plan.train, evaluation=plan.evaluation, output_dir=tmp_dir,
            preset=settings["preset"], budget_seconds=budget * 60 if budget else None,
            max_iter=settings.get("maxIterations"), seed=settings.get("seed") or 0,
            init_weights=plan.init_weights, device=device, overrides=dict(config["training"]["overrides"]))
        try:
            result = train(request, progress=ProgressWriter(store, run_id), cancel=cancel)
            comparison = gate.compare(store, plan, result, cancel)
        except Canceled:
            _finish(store, run_id, getattr(cancel, "status", "canceled"),
                    getattr(cancel, "reason", "canceled by request"))
            return
        version_id = _record_version(store, plan, result, tmp_dir, config["data_check"]["advised_images_per_label"])
        gate.settle(store, run_id, version_id, comparison, publish)
    except RunFailed as exc:
        _finish(store, run_id, "failed", str(exc))
    except Exception as exc:  # a bug or a library error: keep the reason for the maker and the log
        log.exception("run %s failed", run_id)
        _finish(store, run_id, "failed", f"{exc.__class__.__name__}: {exc}")
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _finish(store: Store, run_id: int, status: str, reason: str = "") -> None:
    with store.transaction() as s:
        run = s.get(TrainingRun, run_id)
        run.status, run.reason, run.finished_at = status, reason[:2000], utcnow()
    gate.run_ended(store, run_id, status, reason)
    webhooks.emit_run_finished(store, run_id)  # after the commit; never raises


def _operating_point(m: dict) -> dict:
    return {"threshold": m.get("threshold"), "precision": m.get("precision"), "recall": m.get("recall"),
            "countError": m.get("count_error"), "relativeCountError": m.get("relative_count_error")}


def _label_metrics(m: dict) -> dict:
    return {"ap50": m.get("ap50"), **_operating_point(m), "thresholdFrom": m.get("threshold_from"),
            "images": m.get("images", 0), "boxes": m.get("boxes", 0),
            # none in versions made before it; 4 places keep a version's record small
            "curve": [{k: v if v is None else round(v, 4) for k, v in _operating_point(p).items()}
                      for p in m.get("curve", [])]}


def _advice(metrics: dict, plan: Plan, advised_images: int) -> list[str]:
    """AI Builder-style advice on how far to trust the score and the counts."""
    train_images = {name: 0 for name in plan.labels}
    for rec in plan.train:
        for index in {b[0] for b in rec.boxes}:
            train_images[plan.labels[index]] += 1
    advice = [f"label {name!r} has {n} training images; under {advised_images} the score may be optimistic"
              for name, n in train_images.items() if n < advised_images]
    eval_images = metrics.get("eval_images", 0)
    if eval_images < 10:
        advice.append(f"the score comes from only {eval_images} evaluation images")
    interval = metrics.get("score_interval")
    if interval:
        advice.append(f"score {metrics.get('score'):g}, likely between {interval['low']:g} and {interval['high']:g} "
                      f"({interval['level']:.0%} bootstrap interval over the {eval_images} evaluation images)")
    validation = metrics.get("validation") or {}
    if validation and not validation.get("images"):
        advice.append(f"under {validation.get('min_images')} training images no validation part was held out: "
                      "the final weights are kept and every label counts from probability "
                      f"{_fmt_threshold(metrics)} (add images to get thresholds chosen for counting)")
    else:
        for name, m in (metrics.get("per_label") or {}).items():
            if m.get("threshold_from") == "default":
                advice.append(f"label {name!r} has too few validation images to choose its threshold; "
                              f"it counts from probability {m.get('threshold'):g}")
    return advice


def _fmt_threshold(metrics: dict) -> str:
    values = {m.get("threshold") for m in (metrics.get("per_label") or {}).values()}
    return ", ".join(f"{v:g}" for v in sorted(v for v in values if v is not None)) or "-"


def api_metrics(metrics: dict, plan: Plan, advised_images: int, kept_iteration: int | None = None) -> dict:
    """The trainer's metrics on the wire, with advice on how far to trust them.

    Precision, recall and count errors are at each label's threshold (``perLabel.threshold``),
    the one detect uses when the caller gives none.
    """
    validation = metrics.get("validation") or {}
    return {"ap": metrics.get("ap"), "ap50": metrics.get("ap50"), "ap75": metrics.get("ap75"),
            "precision": metrics.get("precision"), "recall": metrics.get("recall"),
            "score": metrics.get("score"), "scoreInterval": metrics.get("score_interval"),
            "evalImages": metrics.get("eval_images", 0),
            "validationImages": validation.get("images", 0), "validationScore": validation.get("score"),
            "perLabel": {name: _label_metrics(m) for name, m in metrics.get("per_label", {}).items()},
            "advice": _advice(metrics, plan, advised_images), "keptIteration": kept_iteration}


def _record_version(store: Store, plan: Plan, result, tmp_dir: Path, advised_images: int) -> int:
    """Rename the run's folder into place and record the version; returns the version's id."""
    with store.transaction() as s:
        model = s.get(Model, plan.model_id)
        number = (s.scalar(select(func.max(Version.number)).where(Version.model_id == model.id)) or 0) + 1
        final_dir = version_folder(store.artifacts_root, model.id, number)
        final_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_dir, final_dir)  # atomic: the version folder exists whole or not at all
        try:
            settings = {k: v for k, v in plan.settings.items() if k in versions_svc.SETTING_KEYS}
            # The held-out images are recorded so that a later gate knows which images this version never saw.
            snapshot = plan.snapshot if plan.evaluation is not None else {**plan.snapshot,
                                                                           "heldOut": list(result.eval_image_ids)}
            version = Version(model_id=model.id, number=number, run_id=plan.run_id, settings=settings,
                              labels=plan.labels, data_hash=plan.data_hash,
                              # which images chose the kept weights and thresholds, which scored them
                              data_snapshot={**snapshot, "validation": result.validation_image_ids,
                                             "scored": result.eval_image_ids},
                              metrics=api_metrics(result.metrics, plan, advised_images, result.kept_iteration), artifact_dir=str(final_dir),
                              started_from=plan.started_from or result.started_from,
                              duration_s=result.duration_s, iterations=result.iterations)
            s.add(version)
            s.flush()
            monitoring.add_baseline(s, version.id, result.metrics)
            model.last_trained_version_id = version.id
            run = s.get(TrainingRun, plan.run_id)
            run.status, run.version_id, run.finished_at = "succeeded", version.id, utcnow()
            run.reason = f"stopped by {result.stopped_by}"
            run.progress = {**run.progress, "iteration": result.iterations}
            if plan.from_draft:  # the draft's changes are now a version
                draft = s.get(Draft, model.id)
                if draft is not None:
                    s.delete(draft)
            s.flush()
            version_id = version.id
        except BaseException:
            os.replace(final_dir, tmp_dir)  # undo the rename so nothing half-made stays
            raise
    webhooks.emit_run_finished(store, plan.run_id)  # after the commit; never raises
    return version_id


# --- reading, canceling, recovering ---------------------------------------------------------

def get_run(store: Store, model_ref, run_id: int) -> dict:
    with store.transaction() as s:
        model = get_model(s, model_ref)
        run = s.get(TrainingRun, run_id)
        if run is None or run.model_id != model.id:
            raise NotFound(f"model {model.name!r} has no training run {run_id}")
        return _run_with_version(run, s.get(Version, run.version_id) if run.version_id else None)


def list_runs(store: Store, model_ref) -> list[dict]:
    with store.transaction() as s:
        model = get_model(s, model_ref)
        runs = s.scalars(select(TrainingRun).where(TrainingRun.model_id == model.id).order_by(TrainingRun.id)).all()
        versions = {v.id: v for v in s.scalars(select(Version).where(Version.model_id == model.id))}
        return [_run_with_version(r, versions.get(r.version_id)) for r in runs]


def _run_with_version(run: TrainingRun, version: Version | None) -> dict:
    """The run's view, with the number and score of the version it made (a succeeded run)."""
    view = run_view(run)
    if version is not None:
        view["version"] = version.number
        view["performanceScore"] = version.metrics.get("score")
    return view


def request_cancel(store: Store, model_ref, run_id: int) -> tuple[dict, bool]:
    """Cancel a queued run at once; for a training run, return True so the caller signals its worker."""
    with store.transaction() as s:
        model = get_model(s, model_ref)
        run = s.get(TrainingRun, run_id)
        if run is None or run.model_id != model.id:
            raise NotFound(f"model {model.name!r} has no training run {run_id}")
        if run.status not in ACTIVE_RUN_STATES:
            raise Conflict(f"run {run_id} already {run.status}")
        if run.status == "queued":
            run.status, run.reason, run.finished_at = "canceled", "canceled before it started", utcnow()
            view = run_view(run)
        else:
            run.cancel_requested = True  # seen by whichever process trains it (see jobs/run_watch.py)
            return run_view(run), True
    gate.run_ended(store, run_id, "canceled", "canceled before it started")
    webhooks.emit_run_finished(store, run_id)
    return view, False


RESTARTED = "the server stopped while this run was training; start it again"


def _fail_training(store: Store, run_id: int, reason: str, stale_before=None) -> bool:
    """Fail a run that is still training (and, with `stale_before`, whose heartbeat is older)."""
    with store.transaction() as s:
        cond = [TrainingRun.id == run_id, TrainingRun.status == "training"]
        if stale_before is not None:
            cond.append(TrainingRun.heartbeat_at < stale_before)
        done = s.execute(update(TrainingRun).where(*cond).values(status="failed", reason=reason,
                                                                finished_at=utcnow())).rowcount == 1
    if done:
        shutil.rmtree(run_folder(store.artifacts_root, run_id), ignore_errors=True)
        gate.run_ended(store, run_id, "failed", reason)
        webhooks.emit_run_finished(store, run_id)
    return done


def recover(store: Store, is_dead: Callable[[str], bool]) -> list[int]:
    """After a start: fail the runs whose training process is known dead (`is_dead(worker)`: a
    process of this host that no longer runs); return the queued runs, to be queued again.
    Runs of other processes are left to `reap_stale_runs`."""
    with store.transaction() as s:
        training = [(r.id, r.worker) for r in s.scalars(select(TrainingRun).where(TrainingRun.status == "training"))]
        queued = [r.id for r in s.scalars(select(TrainingRun).where(TrainingRun.status == "queued")
                                          .order_by(TrainingRun.id))]
    for run_id, worker in training:
        if not worker or is_dead(worker):  # no worker: recorded by a version that always trained in-process
            _fail_training(store, run_id, RESTARTED)
    return queued


def reap_stale_runs(store: Store, stale_after_s: float) -> list[int]:
    """Fail training runs whose heartbeat stopped (their process was killed): returns their ids."""
    cutoff = utcnow() - dt.timedelta(seconds=stale_after_s)
    with store.transaction() as s:
        stale = list(s.scalars(select(TrainingRun.id).where(TrainingRun.status == "training",
                                                            TrainingRun.heartbeat_at < cutoff)))
    reason = (f"the process training this run stopped sending heartbeats for over {stale_after_s:g} s "
              "(it was killed or cut off); start it again")
    return [run_id for run_id in stale if _fail_training(store, run_id, reason, stale_before=cutoff)]


def run_counts(store: Store) -> dict[str, int]:
    """How many runs are in each state."""
    with store.transaction() as s:
        return dict(s.execute(select(TrainingRun.status, func.count()).group_by(TrainingRun.status)).all())


def heartbeat(store: Store, run_id: int) -> bool:
    """Record that the run's process is alive; True when a cancel was asked for."""
    with store.transaction() as s:
        s.execute(update(TrainingRun).where(TrainingRun.id == run_id, TrainingRun.status == "training")
                  .values(heartbeat_at=utcnow()))
        return bool(s.scalar(select(TrainingRun.cancel_requested).where(TrainingRun.id == run_id)))

