"""Suggesting boxes for a whole dataset, as a job (ML-assisted labeling at scale).

`start` checks the request and queues a job row; the job worker (connector/jobs/background.py)
calls `execute`, which:

1. when the job has no version to suggest with (the model was never trained), trains a labeling
   model first, as Vision Studio does: a training run with trigger "labeling", started through
   the training service, run by the training worker, waited for here;
2. fixes the images to visit when it starts (those without approved boxes, or all);
3. for each image: decodes it, predicts through the predictor cache (forward passes run on the
   model thread), then in ONE transaction replaces that image's suggestions and counts progress.
   A cancel is seen between images, so a job stops within about one image.
"""
from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from model_store import Store
from model_store.schema import ACTIVE_RUN_STATES, Image, Job, Model, TrainingRun, Version

from ..errors import Conflict, Invalid, OdError
from ..routes import job_path, run_path
from . import inference, jobs, training
from .catalog import active_job, active_run, get_dataset, get_model
from .data_check import data_check
from .image_list import has_boxes
from .images import put_suggestions
from .suggestions import predicted_boxes

log = logging.getLogger("odconnect.jobs")

IMAGE_CHOICES = ("unlabeled", "all")
RUN_POLL_SECONDS = 0.5


# --- starting (the request) -----------------------------------------------------------------

def submit(store: Store, config: dict, runner, model_ref, dataset_id: int, body: dict | None) -> dict:
    """Queue a suggestion job (see start) on the job runner: what the API calls."""
    job = start(store, config, model_ref, dataset_id, body)
    runner.submit(job["id"])
    return job


def start(store: Store, config: dict, model_ref, dataset_id: int, body: dict | None) -> dict:
    """Queue a suggestion job for a dataset; 409 when the model cannot suggest (and cannot train
    a labeling model) or already has a job running."""
    body = body or {}
    choice = body.get("images", "unlabeled")
    if choice not in IMAGE_CHOICES:
        raise Invalid(f"images must be one of {list(IMAGE_CHOICES)}")
    threshold = body.get("threshold", config["inference"]["default_threshold"])  # None: each label's own
    if threshold is not None and not 0 <= threshold <= 1:
        raise Invalid("threshold must be between 0 and 1")
    version_ref = body.get("version")
    with store.transaction() as s:
        model = get_model(s, model_ref)
        get_dataset(s, model, dataset_id)
        _no_active_job(s, model)
        model_id, trained = model.id, model.last_trained_version_id is not None
    version_id = None
    if version_ref is not None or trained:
        version_id = inference.resolve(store, model_id, version_ref, "lastTrained").version_id
    else:
        _can_train_labeling_model(store, config, model_id)
    with store.transaction() as s:
        job = Job(model_id=model_id, dataset_id=dataset_id, kind="suggest", status="queued",
                  params={"images": choice, "threshold": threshold, "version": version_ref,
                          "trainLabelingModel": version_id is None},
                  progress={"done": 0, "total": None, "phase": "queued"},
                  result={"images": 0, "suggestions": 0, "skipped": 0}, version_id=version_id)
        s.add(job)
        try:
            s.flush()
        except IntegrityError:  # another request queued a job between our check and this insert
            raise Conflict(f"model {model_id} already has an active job") from None
        return jobs.view(s, job)


def _no_active_job(s, model: Model) -> None:
    active = active_job(s, model.id)
    if active is not None:
        where = job_path(model.id, active.id)
        raise Conflict(f"model {model.name!r} already has job {active.id} {active.status}; "
                       "cancel it or wait for it", job=where, headers={"Location": where})


def _can_train_labeling_model(store: Store, config: dict, model_id: int) -> None:
    need = config["suggestions"]["labeling_min_images_per_label"]
    report = data_check(store, config["data_check"], model_id)
    short = [e for e in report["labels"] if e["images"] < need]
    if not report["labels"] or short:
        counts = ", ".join(f"{e['name']!r} has {e['images']}" for e in short) or "the model has no labels"
        raise Conflict(f"the model has no trained version to suggest with, and a labeling model trains only "
                       f"when every label has {need} images with approved boxes: {counts}",
                       labels=[e["name"] for e in short])
    with store.transaction() as s:
        active = active_run(s, model_id)
        if active is not None:
            where = run_path(model_id, active.id)
            raise Conflict(f"run {active.id} is {active.status}; suggest with its version once it has finished",
                           run=where, headers={"Location": where})


# --- executing (in the job worker) -------------------------------------------------------

def execute(store: Store, config: dict, predictors, runs, job_id: int, cancel, worker: str) -> None:
    """The worker's whole job. Never raises: the outcome is written to the job row."""
    try:
        if not jobs.begin(store, job_id, worker):
            return  # canceled while it waited
        with store.transaction() as s:
            job = s.get(Job, job_id)
            model_id, dataset_id, params, version_id = job.model_id, job.dataset_id, dict(job.params), job.version_id
        if version_id is None:
            version_id = _train_labeling_model(store, config, runs, job_id, model_id, cancel)
            if version_id is None:
                return  # the job was finished there (failed or canceled)
        with store.transaction() as s:
            number = s.get(Version, version_id).number
        target = inference.resolve(store, model_id, str(number), "lastTrained")
        image_ids = _images_to_visit(store, dataset_id, params["images"])
        _progress(store, job_id, phase="suggesting", total=len(image_ids))
        predictor = predictors.get(target.version_id)
        for image_id in image_ids:
            if cancel.is_set():
                jobs.finish(store, job_id, cancel.status, cancel.reason)
                return
            _suggest_one(store, job_id, image_id, predictor, target, params)
        jobs.finish(store, job_id, "succeeded")
    except OdError as exc:
        jobs.finish(store, job_id, "failed", exc.detail)
    except Exception as exc:  # a bug or a library error: keep the reason for the maker and the log
        log.exception("job %s failed", job_id)
        jobs.finish(store, job_id, "failed", f"{exc.__class__.__name__}: {exc}")


def _images_to_visit(store: Store, dataset_id: int, choice: str) -> list[int]:
    q = select(Image.id).where(Image.dataset_id == dataset_id, Image.deleted_at.is_(None)).order_by(Image.id)
    if choice == "unlabeled":
        q = q.where(~has_boxes(True))
    with store.transaction() as s:
        return list(s.scalars(q))


def _suggest_one(store: Store, job_id: int, image_id: int, predictor, target, params: dict) -> None:
    with store.transaction() as s:
        image = s.get(Image, image_id)
        sha = image.sha256 if image is not None and image.deleted_at is None else None
    boxes = None
    if sha is not None:
        try:
            boxes = predicted_boxes(predictor, target, store.blobs.get(sha), params["threshold"])
        except (OSError, ValueError) as exc:  # a blob gone or damaged since upload: skip it, say so in the log
            log.warning("job %s: image %s cannot be read (%s); skipped", job_id, image_id, exc)
    with store.transaction() as s:  # this image's suggestions and the job's counts, together
        job = s.get(Job, job_id)
        image = s.get(Image, image_id)
        result = dict(job.result)
        # a person may have deleted or labeled the image while the job ran: leave it alone then
        keep = image is not None and image.deleted_at is None and (
            params["images"] == "all" or not any(r.approved for r in image.regions))
        if boxes is not None and keep:
            result["suggestions"] += put_suggestions(s.get(Model, job.model_id), image, boxes)
            result["images"] += 1
        else:
            result["skipped"] += 1
        job.result = result
        job.progress = {**job.progress, "done": job.progress["done"] + 1}


def _progress(store: Store, job_id: int, **changes) -> None:
    with store.transaction() as s:
        job = s.get(Job, job_id)
        job.progress = {**job.progress, **changes}


def labeling_config(config: dict) -> dict:
    """The data check a labeling run passes: the labeling minimum when it is below training's."""
    need = config["suggestions"]["labeling_min_images_per_label"]
    rules = {**config["data_check"], "min_images_per_label": min(need, config["data_check"]["min_images_per_label"])}
    return {**config, "data_check": rules}


def _train_labeling_model(store: Store, config: dict, runs, job_id: int, model_id: int, cancel) -> int | None:
    """Start a "labeling" training run and wait for it; its version's id, or None (job finished)."""
    try:
        run = training.start_training(store, labeling_config(config), model_id,
                                      dict(config["suggestions"]["labeling_settings"]),
                                      trigger="labeling", use_draft=False)
    except OdError as exc:
        jobs.finish(store, job_id, "failed", f"the labeling model could not start training: {exc.detail}")
        return None
    run_id = run["id"]
    with store.transaction() as s:
        job = s.get(Job, job_id)
        job.run_id = run_id
        job.progress = {**job.progress, "phase": "training"}
    runs.submit(run_id)
    while True:
        with store.transaction() as s:
            run = s.get(TrainingRun, run_id)
            status, reason, version_id = run.status, run.reason, run.version_id
        if status not in ACTIVE_RUN_STATES:
            break
        if cancel.wait(RUN_POLL_SECONDS):
            if cancel.status == "canceled":  # a person's cancel stops the run too; a shutdown stops it anyway
                try:
                    _, signal = training.request_cancel(store, model_id, run_id)
                    if signal:
                        runs.cancel(run_id)
                except OdError:
                    pass  # it finished meanwhile
            jobs.finish(store, job_id, cancel.status, cancel.reason)
            return None
    if status != "succeeded":
        jobs.finish(store, job_id, "failed", f"the labeling model's training run {run_id} {status}: {reason}")
        return None
    with store.transaction() as s:
        s.get(Job, job_id).version_id = version_id
    return version_id
