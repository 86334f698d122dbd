"""How stored rows look on the wire (camelCase, Custom Vision's names where they exist)."""
from __future__ import annotations

import datetime as dt

from model_store.schema import (ApiKey, AttentionEvent, CapturedImage, Dataset, Draft, GateEntry, Image, Job, Label,
                                Model, Region, Schedule, TrainingRun, Version, VersionEngine, WebhookDelivery,
                                WebhookSubscription, WeightFile)


def iso(value: dt.datetime | None) -> str | None:
    return value.replace(tzinfo=dt.timezone.utc).isoformat().replace("+00:00", "Z") if value else None


def label_view(label: Label) -> dict:
    return {"id": label.id, "name": label.name, "created": iso(label.created_at)}


def model_view(model: Model, summary: dict) -> dict:
    """`summary`: services.model_summary's imageCount, lastScore, publishedVersion, lastTrainedVersion."""
    return {
        "id": model.id,
        "name": model.name,
        "description": model.description,
        "labels": [label_view(t) for t in model.labels],
        "created": iso(model.created_at),
        "updated": iso(model.updated_at),
        "archived": model.archived_at is not None,
        "publishedVersionId": model.published_version_id,
        "lastTrainedVersionId": model.last_trained_version_id,
        "imageCount": summary["imageCount"],
        "lastScore": summary["lastScore"],
        "publishedVersion": summary["publishedVersion"],
        "lastTrainedVersion": summary["lastTrainedVersion"],
    }


def dataset_view(ds: Dataset, image_count: int | None = None) -> dict:
    out = {"id": ds.id, "modelId": ds.model_id, "name": ds.name, "kind": ds.kind,
           "created": iso(ds.created_at)}
    if image_count is not None:
        out["imageCount"] = image_count
    return out


def region_view(region: Region) -> dict:
    return {
        "id": region.id,
        "labelId": region.label_id,
        "labelName": region.label.name,
        "left": region.left,
        "top": region.top,
        "width": region.width,
        "height": region.height,
        "approved": region.approved,
        "source": region.source,
        "probability": region.probability,
    }


def image_view(image: Image) -> dict:
    return {
        "id": image.id,
        "datasetId": image.dataset_id,
        "name": image.name,
        "format": image.format.lower(),
        "width": image.width,
        "height": image.height,
        "sizeBytes": image.size_bytes,
        "sha256": image.sha256,
        "created": iso(image.created_at),
        "regions": [region_view(r) for r in image.regions],
    }


def version_view(v: Version, model: Model | None = None) -> dict:
    out = {
        "id": v.id,
        "modelId": v.model_id,
        "number": v.number,
        "runId": v.run_id,
        "settings": v.settings,
        "labels": v.labels,
        "dataHash": v.data_hash,
        "imageCount": len(v.data_snapshot.get("train", [])) + len(v.data_snapshot.get("evaluation", [])),
        "metrics": v.metrics,
        "performanceScore": v.metrics.get("score"),
        "engine": engine_view(v.engine),
        "startedFrom": v.started_from,
        "durationSeconds": round(v.duration_s, 2),
        "iterations": v.iterations,
        "created": iso(v.created_at),
        "archived": v.archived_at is not None,
    }
    if model is not None:
        out["published"] = model.published_version_id == v.id
        out["lastTrained"] = model.last_trained_version_id == v.id
    return out


def engine_view(record: VersionEngine | None) -> dict | None:
    """What serves a version, as decided when it was published (None: never decided)."""
    if record is None:
        return None
    return {"name": record.name, "reason": record.reason, "verifiedOn": record.verified_on,
            "imageSource": record.image_source, "setting": record.setting, "decided": iso(record.decided_at),
            "precision": record.precision}


def run_view(run: TrainingRun, base_url: str = "") -> dict:
    return {
        "id": run.id,
        "modelId": run.model_id,
        "status": run.status,
        "trigger": run.trigger,
        "settings": run.settings,
        "progress": run.progress,
        "reason": run.reason or None,
        "versionId": run.version_id,
        "baseVersionId": run.base_version_id,
        "created": iso(run.created_at),
        "started": iso(run.started_at),
        "finished": iso(run.finished_at),
    }


def schedule_view(sch: Schedule, next_run: dt.datetime | None = None, last: GateEntry | None = None) -> dict:
    """A schedule; `last` is its newest firing (the gate history holds them all)."""
    return {"modelId": sch.model_id, "cron": sch.cron, "onlyIfNewData": sch.only_if_new_data,
            "enabled": sch.enabled, "publish": sch.publish, "publishMargin": sch.publish_margin,
            "lastFired": iso(last.fired_at) if last else None,
            "lastOutcome": (f"{last.outcome}: {last.detail}" if last.detail else last.outcome) if last else None,
            "nextRun": next_run.isoformat() if next_run else None}


def gate_entry_view(e: GateEntry, version_numbers: dict[int, int]) -> dict:
    """A schedule firing or gated run; `version_numbers` maps the model's version ids to numbers."""
    return {"id": e.id, "modelId": e.model_id, "trigger": e.trigger, "scheduledFor": iso(e.scheduled_for),
            "firedAt": iso(e.fired_at), "firedBy": e.fired_by or None, "publish": e.publish,
            "publishMargin": e.publish_margin, "outcome": e.outcome, "detail": e.detail or None,
            "runId": e.run_id, "version": version_numbers.get(e.version_id), "newScore": e.new_score,
            "publishedVersion": version_numbers.get(e.published_version_id), "publishedScore": e.published_score,
            "comparedOn": e.compared_on or None, "finished": iso(e.finished_at)}


def draft_view(draft: Draft, model: Model, base: Version | None) -> dict:
    return {"modelId": model.id, "settings": draft.settings,
            "baseVersion": base.number if base else None, "updated": iso(draft.updated_at)}


def weight_view(wf: WeightFile) -> dict:
    return {"name": wf.name, "sizeBytes": wf.size_bytes, "sha256": wf.sha256, "created": iso(wf.created_at)}


def subscription_view(sub: WebhookSubscription, counts: dict | None = None, recent=None,
                      with_secret: bool = False) -> dict:
    out = {"id": sub.id, "event": sub.event, "modelId": sub.model_id, "callbackUrl": sub.callback_url,
           "created": iso(sub.created_at)}
    if with_secret:
        out["secret"] = sub.secret
    if counts is not None:
        out["deliveries"] = {k: counts.get(k, 0) for k in ("pending", "delivered", "failed")}
    if recent is not None:
        out["recentDeliveries"] = [delivery_view(d) for d in recent]
    return out


def delivery_view(d: WebhookDelivery) -> dict:
    return {"id": d.id, "event": d.event, "status": d.status, "attempts": d.attempts,
            "nextAttempt": iso(d.next_attempt_at) if d.status == "pending" else None,
            "lastError": d.last_error or None, "created": iso(d.created_at), "delivered": iso(d.delivered_at)}


def job_view(job: Job, version_number: int | None = None) -> dict:
    return {
        "id": job.id,
        "modelId": job.model_id,
        "datasetId": job.dataset_id,
        "kind": job.kind,
        "status": job.status,
        "params": job.params,
        "progress": job.progress,
        "result": job.result,
        "reason": job.reason or None,
        "version": version_number,
        "runId": job.run_id,
        "created": iso(job.created_at),
        "started": iso(job.started_at),
        "finished": iso(job.finished_at),
    }


def api_key_view(key: ApiKey) -> dict:
    """A stored key as `odconnect keys list` shows it: never the key or its hash."""
    return {"id": key.id, "name": key.name, "scope": key.scope, "prefix": key.prefix,
            "created": iso(key.created_at), "lastUsed": iso(key.last_used_at), "revoked": iso(key.revoked_at)}


def capture_settings_view(model_id: int, settings: dict, dataset_id: int | None, images: int,
                          outcomes: dict) -> dict:
    return {"modelId": model_id, "mode": settings["mode"], "bandLow": settings["band_low"],
            "bandHigh": settings["band_high"], "sampleRate": settings["sample_rate"],
            "maxImages": settings["max_images"], "retentionDays": settings["retention_days"],
            "datasetId": dataset_id, "images": images,
            "outcomes": {k: outcomes.get(k, 0) for k in ("kept", "duplicate", "evicted", "dropped", "failed")}}


def captured_image_view(image: Image, capture: CapturedImage | None, version_number: int | None) -> dict:
    out = image_view(image)
    out["capture"] = None if capture is None else {
        "captured": iso(capture.captured_at), "version": version_number, "operation": capture.operation,
        "correlationId": capture.correlation_id, "topProbability": capture.top_probability,
        "uncertainty": capture.uncertainty}
    return out


def attention_view(event: AttentionEvent, version_number: int) -> dict:
    return {"day": event.day.isoformat(), "version": version_number, "reason": event.reason,
            "figures": event.figures, "created": iso(event.created_at)}
