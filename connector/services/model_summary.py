"""What a model's card shows beside its name: images to train on, the last score, the version
numbers its aliases point at. Read for any number of models in two queries (never one per model),
so that the model list costs the same with 3 models or 300.
"""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from model_store.schema import Dataset, Image, Model, Version


def summaries(s: Session, model_ids: list[int]) -> dict[int, dict]:
    """model id -> {imageCount, lastScore, publishedVersion, lastTrainedVersion}."""
    if not model_ids:
        return {}
    counts = dict(s.execute(
        select(Dataset.model_id, func.count(Image.id))
        .join(Image, Image.dataset_id == Dataset.id)
        .where(Dataset.model_id.in_(model_ids), Dataset.kind == "training", Image.deleted_at.is_(None))
        .group_by(Dataset.model_id)).all())
    published, last = aliased(Version), aliased(Version)
    rows = s.execute(
        select(Model.id, published.number, last.number, last.metrics)
        .outerjoin(published, published.id == Model.published_version_id)
        .outerjoin(last, last.id == Model.last_trained_version_id)
        .where(Model.id.in_(model_ids)))
    return {model_id: {"imageCount": counts.get(model_id, 0),
                       "lastScore": (metrics or {}).get("score"),
                       "publishedVersion": published_number,
                       "lastTrainedVersion": last_number}
            for model_id, published_number, last_number, metrics in rows}
