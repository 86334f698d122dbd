"""The tables of the store (SQLAlchemy 2 declarative models).

Nothing here is deleted by the API: models and versions are archived, images
soft-deleted, so a version's data snapshot always points at rows that exist.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import (JSON, Boolean, Date, DateTime, Float, ForeignKey, Index, Integer, String,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Model(Base):
    __tablename__ = "models"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(1024), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    archived_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    # Aliases, as in MLflow's registry: pointers to versions, switched atomically.
    published_version_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("versions.id", use_alter=True, name="fk_model_published"))
    last_trained_version_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("versions.id", use_alter=True, name="fk_model_last_trained"))

    labels: Mapped[list["Label"]] = relationship(back_populates="model", order_by="Label.id")
    datasets: Mapped[list["Dataset"]] = relationship(back_populates="model", order_by="Dataset.id")

    __table_args__ = (
        # A name is unique among models in use; an archived model frees its name.
        Index("uq_model_active_name", "name", unique=True,
              sqlite_where=archived_at.is_(None), postgresql_where=archived_at.is_(None)),
    )


class Label(Base):
    __tablename__ = "labels"
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    model: Mapped[Model] = relationship(back_populates="labels")
    __table_args__ = (UniqueConstraint("model_id", "name", name="uq_label_name"),)


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # training | evaluation | production (captured by detect)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    model: Mapped[Model] = relationship(back_populates="datasets")
    __table_args__ = (UniqueConstraint("model_id", "name", name="uq_dataset_name"),)


class Image(Base):
    __tablename__ = "images"
    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    # The user's file name, for display only: it never becomes a path.
    name: Mapped[str] = mapped_column(String(255), default="")
    format: Mapped[str] = mapped_column(String(8))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    deleted_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    regions: Mapped[list["Region"]] = relationship(
        back_populates="image", order_by="Region.id", cascade="all, delete-orphan")
    __table_args__ = (UniqueConstraint("dataset_id", "sha256", name="uq_image_in_dataset"),)


class Region(Base):
    """A box, normalized to the image as Custom Vision does: left, top, width, height in 0..1."""
    __tablename__ = "regions"
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id"), index=True)
    left: Mapped[float] = mapped_column(Float)
    top: Mapped[float] = mapped_column(Float)
    width: Mapped[float] = mapped_column(Float)
    height: Mapped[float] = mapped_column(Float)
    # Only approved boxes train; ML-assisted suggestions start unapproved.
    approved: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(16), default="user")  # user | import | suggested
    probability: Mapped[Optional[float]] = mapped_column(Float)
    image: Mapped[Image] = relationship(back_populates="regions")
    label: Mapped[Label] = relationship()
    # The image list's filters (labeled, has suggestions, by label) and its uncertainty order
    # read regions by image and approval; with this index a page stays fast at 10,000 images.
    __table_args__ = (Index("ix_region_image_approved", "image_id", "approved", "label_id", "probability"),)


class Version(Base):
    """An immutable trained model: what was trained, on what, and how well."""
    __tablename__ = "versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("training_runs.id", use_alter=True,
                                                             name="fk_version_run"))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    labels: Mapped[list[Any]] = mapped_column(default=list)
    data_snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)
    data_hash: Mapped[str] = mapped_column(String(64), default="")
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    artifact_dir: Mapped[str] = mapped_column(String(1024), default="")
    started_from: Mapped[str] = mapped_column(String(255), default="scratch")
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    iterations: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    archived_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    __table_args__ = (UniqueConstraint("model_id", "number", name="uq_version_number"),)

    # Loaded with the version (a join): its view shows it, also after the session closed.
    engine: Mapped[Optional["VersionEngine"]] = relationship(lazy="joined")


class VersionEngine(Base):
    """What serves a version, torch or onnxruntime, as decided when it was last published
    (connector/services/engine_choice.py). Its own table: the version stays as it was trained,
    and every server process reads the decision instead of exporting and checking again."""
    __tablename__ = "version_engines"
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(16))           # torch | onnxruntime
    reason: Mapped[str] = mapped_column(String(2048))        # the check's outcome, the export's error, or the setting
    verified_on: Mapped[int] = mapped_column(Integer, default=0)  # pictures both engines were compared on
    image_source: Mapped[Optional[str]] = mapped_column(String(16))  # evaluation | training | drawn
    setting: Mapped[str] = mapped_column(String(16))         # inference.engine when it was decided
    decided_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # onnxruntime's network: float32 | int8 (quantized, when AP held on the evaluation images)
    precision: Mapped[str] = mapped_column(String(8), default="float32")


class ClaimedWork:
    """Columns of work any process may do (a training run, a background job): where it runs and
    whether it should stop. Whichever process does it (the embedded runner or a Celery worker on
    another machine) reads and writes them, so they live in the database."""
    worker: Mapped[str] = mapped_column(String(255), default="")
    heartbeat_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)


class TrainingRun(ClaimedWork, Base):
    __tablename__ = "training_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    trigger: Mapped[str] = mapped_column(String(16), default="api")  # api | retrain | schedule | labeling
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reason: Mapped[str] = mapped_column(String(2048), default="")
    version_id: Mapped[Optional[int]] = mapped_column(ForeignKey("versions.id"))
    base_version_id: Mapped[Optional[int]] = mapped_column(ForeignKey("versions.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)

    __table_args__ = (
        # One active run per model, enforced by the database so that two requests cannot race.
        Index("uq_run_active_per_model", "model_id", unique=True,
              sqlite_where=status.in_(("queued", "training")),
              postgresql_where=status.in_(("queued", "training"))),
    )


class Draft(Base):
    """Pending training settings for a model's next version (one per model)."""
    __tablename__ = "drafts"
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    base_version_id: Mapped[Optional[int]] = mapped_column(ForeignKey("versions.id"))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


ACTIVE_RUN_STATES = ("queued", "training")


class Job(ClaimedWork, Base):
    """A background job of the serving process (today: suggesting boxes for a whole dataset).

    The row is the job's state, so a restart can tell what was running (marked failed) from
    what was waiting (queued again), as training runs are recovered.
    """
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    dataset_id: Mapped[Optional[int]] = mapped_column(ForeignKey("datasets.id"))
    kind: Mapped[str] = mapped_column(String(16))  # suggest
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued | running | succeeded | failed | canceled
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reason: Mapped[str] = mapped_column(String(2048), default="")
    version_id: Mapped[Optional[int]] = mapped_column(ForeignKey("versions.id"))  # the version that suggests
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("training_runs.id"))  # a labeling model's run
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)

    __table_args__ = (
        # One active job per model: two would only queue behind each other on the model thread.
        Index("uq_job_active_per_model", "model_id", unique=True,
              sqlite_where=status.in_(("queued", "running")),
              postgresql_where=status.in_(("queued", "running"))),
    )


ACTIVE_JOB_STATES = ("queued", "running")


class WeightFile(Base):
    """A local weights file a version may start from (a model-zoo or ImageNet backbone file)."""
    __tablename__ = "weight_files"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Schedule(Base):
    """Scheduled retraining of a model on new data (APScheduler cron syntax), and whether the
    version it trains replaces the published one (the promotion gate)."""
    __tablename__ = "schedules"
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    cron: Mapped[str] = mapped_column(String(128))
    only_if_new_data: Mapped[bool] = mapped_column(Boolean, default=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    publish: Mapped[str] = mapped_column(String(16), default="never")  # never | ifBetter | always
    publish_margin: Mapped[float] = mapped_column(Float, default=0.0)  # score points (0..100 scale)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class GateEntry(Base):
    """One firing of a schedule, or one manual run trained with a publish policy, and what the
    promotion gate made of it. A schedule firing is also its claim: (model, scheduled time) is
    unique, so however many processes fire the same scheduled time, one row and one run exist."""
    __tablename__ = "gate_history"
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    trigger: Mapped[str] = mapped_column(String(16))  # schedule | api | retrain
    scheduled_for: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)  # schedule firings only
    fired_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    fired_by: Mapped[str] = mapped_column(String(128), default="")  # the scheduler process that fired
    publish: Mapped[str] = mapped_column(String(16))
    publish_margin: Mapped[float] = mapped_column(Float, default=0.0)
    # training (waiting for its run) | skipped | trained | published | kept | failed
    outcome: Mapped[str] = mapped_column(String(16), default="training")
    detail: Mapped[str] = mapped_column(String(1024), default="")
    run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("training_runs.id"), index=True)
    version_id: Mapped[Optional[int]] = mapped_column(ForeignKey("versions.id"))
    new_score: Mapped[Optional[float]] = mapped_column(Float)
    published_version_id: Mapped[Optional[int]] = mapped_column(ForeignKey("versions.id"))
    published_score: Mapped[Optional[float]] = mapped_column(Float)
    # {"source": evaluationDataset | heldOut, "images": n, "seenByPublished": k}
    compared_on: Mapped[dict[str, Any]] = mapped_column(default=dict)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    __table_args__ = (UniqueConstraint("model_id", "scheduled_for", name="uq_gate_firing"),)


class SchedulerLease(Base):
    """Which server process fires the schedules: the one holding this lease, renewed while it
    lives; another takes it over once it has expired (connector/jobs/leader.py)."""
    __tablename__ = "scheduler_lease"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
    acquired_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class WebhookSubscription(Base):
    """A webhook (a Power Automate trigger): events of one kind, optionally of one model, POSTed to a URL."""
    __tablename__ = "webhook_subscriptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    event: Mapped[str] = mapped_column(String(32), index=True)  # trainingRunFinished | versionPublished | modelNeedsAttention
    model_id: Mapped[Optional[int]] = mapped_column(ForeignKey("models.id"))  # None: every model
    callback_url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(256))  # HMAC-SHA256 key of X-Odconnect-Signature
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    deleted_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)  # unsubscribed; deliveries kept


class WebhookDelivery(Base):
    """One event for one subscription: persisted when emitted, sent (and retried) by the dispatcher."""
    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscriptions.id"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, default=utcnow)
    last_error: Mapped[str] = mapped_column(String(2048), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    delivered_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    __table_args__ = (Index("ix_webhook_delivery_due", "status", "next_attempt_at"),)


class ApiKey(Base):
    """An API key made with `odconnect keys create`: only its SHA-256 is stored, the key itself is shown once.

    The server reads this table on every request (no cache), so a revoked key is refused by the next
    request. Keys from the configuration (security.api_keys, the key file) are not stored here.
    """
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(String(16))  # detect | train | admin
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256 of the key
    prefix: Mapped[str] = mapped_column(String(16))  # the key's first characters, to recognise it in a list
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    revoked_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)


# --- learning from production: capture, monitoring, drift ---------------------------------------

class CaptureSetting(Base):
    """Which images detect keeps for a model (capture is off for a model without a row)."""
    __tablename__ = "capture_settings"
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16), default="off")  # off | uncertain | sample | all
    band_low: Mapped[float] = mapped_column(Float)
    band_high: Mapped[float] = mapped_column(Float)
    sample_rate: Mapped[float] = mapped_column(Float)
    max_images: Mapped[int] = mapped_column(Integer)
    retention_days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class CapturedImage(Base):
    """Where an image of a production dataset came from: which version answered which call, when."""
    __tablename__ = "captured_images"
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    operation: Mapped[str] = mapped_column(String(8))  # detect | batch
    correlation_id: Mapped[Optional[str]] = mapped_column(String(256))  # the caller's flow run id, if sent
    captured_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    top_probability: Mapped[float] = mapped_column(Float, default=0.0)
    uncertainty: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | approved
    reviewed_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)


class VersionBaseline(Base):
    """What a version's answers looked like on its evaluation images: the reference of drift."""
    __tablename__ = "version_baselines"
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True)
    images: Mapped[int] = mapped_column(Integer, default=0)
    profile: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class MonitoringDay(Base):
    """What one version answered on one UTC day (summed from in-memory figures, flushed periodically)."""
    __tablename__ = "monitoring_days"
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    day: Mapped[dt.date] = mapped_column(Date)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    no_detection: Mapped[int] = mapped_column(Integer, default=0)
    top_sum: Mapped[float] = mapped_column(Float, default=0.0)
    top_counts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # "0.734" -> images with that top probability
    label_counts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # label -> boxes answered
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    __table_args__ = (UniqueConstraint("version_id", "day", name="uq_monitoring_version_day"),)


class AttentionEvent(Base):
    """A "model needs attention" event; the unique key keeps it to one per version and day."""
    __tablename__ = "attention_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    day: Mapped[dt.date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(1024))
    figures: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("version_id", "day", name="uq_attention_version_day"),)


class Worker(Base):
    """A training worker process (`odconnect worker`), alive while its heartbeat is fresh."""
    __tablename__ = "workers"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # hostname:pid:start
    hostname: Mapped[str] = mapped_column(String(255))
    device: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    current_run_id: Mapped[Optional[int]] = mapped_column(Integer)
