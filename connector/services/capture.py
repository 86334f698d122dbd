"""Capture: keep images flows send to detect, with the serving version's boxes, for people to review.

Off by default; a model's setting (PUT /models/{id}/capture) chooses which images are kept:

* ``uncertain``: the answer had no box, or the version scored a box inside the probability band
  (``bandLow`` .. ``bandHigh``, ends included), boxes under the caller's threshold included;
* ``sample``: each image with probability ``sampleRate``;
* ``all``: every image.

A kept image lands in the model's dataset of kind ``production`` (made on the first capture),
deduplicated by content hash against every image of the model, with the version's boxes at or
above the lower of the caller's threshold and ``bandLow`` as unapproved suggestions (probability
kept), and a CapturedImage row: time, version, operation, the caller's correlation id, its top
probability and its uncertainty. Production images never train: approving moves them, with
their (possibly fixed) boxes approved, into a training dataset.

Uncertainty, for ordering the review: 1.0 when the answer had no box; else, for the box closest
to the middle of the band, 1 at the middle falling linearly to 0 at the band's ends (0 outside).

Caps: over ``maxImages``, the oldest images no person has set boxes on are evicted (the new one
too, when it is the only such image); images older than ``retentionDays`` are purged. Eviction,
purge, discard and delete-all remove the rows and every blob no other image refers to.

Deciding runs on the request path from a cached setting (SettingsCache); writing runs on the
production worker (connector/jobs/production.py), which holds ``lock`` while it writes, as the
review operations here do, so a delete never races a write of the same process.
"""
from __future__ import annotations

import datetime as dt
import io
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select

from model_store import Store
from model_store.blobs import sha256_hex
from model_store.schema import CapturedImage, CaptureSetting, Dataset, Image, Model, Region, Version, utcnow

from ..errors import Invalid, NotFound
from ..modeling.boxes import pixels_to_fraction
from ..views import captured_image_view, capture_settings_view
from .catalog import get_dataset, get_model
from .production import Served
from .versions import get_version

if TYPE_CHECKING:
    from ..context import AppContext

log = logging.getLogger("odconnect.capture")

MODES = ("off", "uncertain", "sample", "all")
ORDERS = ("newest", "oldest", "uncertain")
PRODUCTION = "production"  # the dataset kind, and its name when that name is free
MAX_SUGGESTIONS = 50  # boxes stored per captured image, most probable first


@dataclass(frozen=True)
class CaptureSettings:
    mode: str
    band_low: float
    band_high: float
    sample_rate: float
    max_images: int
    retention_days: int

    @classmethod
    def defaults(cls, cfg: dict) -> "CaptureSettings":
        return cls("off", float(cfg["band_low"]), float(cfg["band_high"]), float(cfg["sample_rate"]),
                   int(cfg["max_images"]), int(cfg["retention_days"]))

    @classmethod
    def of(cls, row: CaptureSetting) -> "CaptureSettings":
        return cls(row.mode, row.band_low, row.band_high, row.sample_rate, row.max_images, row.retention_days)


# --- deciding (request path: pure, in memory) ------------------------------------------------------

def in_band(served: Served, s: CaptureSettings) -> bool:
    return not served.answered or any(s.band_low <= d.score <= s.band_high for d in served.found)


def uncertainty(served: Served, s: CaptureSettings) -> float:
    if not served.answered:
        return 1.0
    mid, half = (s.band_low + s.band_high) / 2, (s.band_high - s.band_low) / 2
    if half <= 0:
        return 0.0
    return round(max((max(0.0, 1 - abs(d.score - mid) / half) for d in served.found), default=0.0), 4)


def wanted(served: Served, s: CaptureSettings, draw) -> bool:
    """Whether to keep this image; `draw()` gives a uniform number in [0, 1) (the sample mode's)."""
    if s.mode == "all":
        return True
    if s.mode == "sample":
        return draw() < s.sample_rate
    if s.mode == "uncertain":
        return in_band(served, s)
    return False


class SettingsCache:
    """Each model's capture setting, read at most once per `ttl` seconds (at once after a change
    made through `invalidate`), so that a detect with capture off costs no query."""

    def __init__(self, store: Store, defaults: CaptureSettings, ttl: float):
        self.store, self.defaults, self.ttl = store, defaults, ttl
        self._items: dict[int, tuple[float, CaptureSettings]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def get(self, model_id: int) -> CaptureSettings:
        hit = self._items.get(model_id)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        generation = self._generation
        settings = read_settings(self.store, model_id, self.defaults)
        with self._lock:
            if generation == self._generation:  # no change was made while this read ran
                self._items[model_id] = (now + self.ttl, settings)
        return settings

    def invalidate(self, model_id: int) -> None:
        with self._lock:
            self._generation += 1
            self._items.pop(model_id, None)


def read_settings(store: Store, model_id: int, defaults: CaptureSettings) -> CaptureSettings:
    with store.transaction() as s:
        row = s.get(CaptureSetting, model_id)
        return CaptureSettings.of(row) if row is not None else defaults


# --- writing (the production worker) ---------------------------------------------------------------

def production_dataset(s, model: Model, create: bool = False) -> Dataset | None:
    ds = next((d for d in model.datasets if d.kind == PRODUCTION), None)
    if ds is None and create:
        taken = {d.name for d in model.datasets}
        name = PRODUCTION if PRODUCTION not in taken else "production (captured)"
        ds = Dataset(model=model, name=name, kind=PRODUCTION)
        s.add(ds)
        s.flush()
    return ds


def _suggestions(served: Served, s: CaptureSettings, labels: dict) -> list[Region]:
    floor = min(served.threshold, s.band_low)
    regions = []
    for d in [d for d in served.found if d.score >= floor][:MAX_SUGGESTIONS]:
        label = labels.get(served.labels[d.label_index])
        if label is None:  # a label removed since the version was trained
            continue
        box = pixels_to_fraction(d.x0, d.y0, d.x1, d.y1, served.width, served.height)
        if box["width"] <= 0 or box["height"] <= 0:
            continue
        regions.append(Region(label_id=label.id, label=label, approved=False, source="suggested",
                              probability=round(float(d.score), 4), **box))
    return regions


def _image_format(data: bytes) -> str:
    from PIL import Image as PILImage
    with PILImage.open(io.BytesIO(data)) as img:  # the header only: detect decoded it already
        return (img.format or "JPEG").upper()


def keep(store: Store, served: Served, settings: CaptureSettings) -> tuple[str, int]:
    """Store one captured image. Returns (outcome, images evicted by the cap), the outcome one of
    kept | duplicate | evicted (over the cap with nothing older to evict) | gone (model archived)."""
    sha = sha256_hex(served.data)
    try:
        with store.transaction() as s:
            model = s.get(Model, served.model_id)
            if model is None or model.archived_at is not None:
                return "gone", 0
            if s.scalar(select(Image.id).join(Dataset, Dataset.id == Image.dataset_id).where(
                    Dataset.model_id == model.id, Image.sha256 == sha).limit(1)) is not None:
                return "duplicate", 0
            store.blobs.put(served.data)
            ds = production_dataset(s, model, create=True)
            fmt = _image_format(served.data)
            image = Image(dataset_id=ds.id, sha256=sha, format=fmt, width=served.width,
                          height=served.height, size_bytes=len(served.data),
                          name=f"{served.operation}-{served.at:%Y%m%dT%H%M%S}.{fmt.lower()}")
            image.regions.extend(_suggestions(served, settings, {t.name: t for t in model.labels}))
            s.add(image)
            s.flush()
            s.add(CapturedImage(image_id=image.id, model_id=model.id, version_id=served.version_id,
                                operation=served.operation, correlation_id=served.correlation_id,
                                captured_at=served.at, top_probability=round(served.top, 4),
                                uncertainty=uncertainty(served, settings)))
            s.flush()
            over = _over_cap(s, ds.id, settings.max_images)
            outcome = "evicted" if image.id in {i.id for i in over} else "kept"
            evicted = _remove(s, over)
    except BaseException:
        drop_unreferenced(store, [sha])
        raise
    drop_unreferenced(store, evicted)
    return outcome, len(evicted)


def _reviewed():
    """Images a person has set boxes on (kept over the cap)."""
    return select(Region.image_id).where(Region.source == "user")


def _over_cap(s, dataset_id: int, max_images: int) -> list[Image]:
    count = s.scalar(select(func.count(Image.id)).where(Image.dataset_id == dataset_id))
    if count <= max_images:
        return []
    return list(s.scalars(select(Image).where(Image.dataset_id == dataset_id, Image.id.not_in(_reviewed()))
                          .order_by(Image.id).limit(count - max_images)))


def _remove(s, images: list[Image]) -> list[str]:
    """Delete images, their boxes and capture rows for good; returns their blobs' hashes."""
    ids = [i.id for i in images]
    if not ids:
        return []
    for row in s.scalars(select(CapturedImage).where(CapturedImage.image_id.in_(ids))):
        s.delete(row)
    s.flush()
    shas = [i.sha256 for i in images]
    for image in images:
        s.delete(image)  # its regions go with it (delete-orphan)
    s.flush()
    return shas


def drop_unreferenced(store: Store, shas: list[str]) -> int:
    """Delete the blobs no image row (of any model or dataset, deleted or not) refers to."""
    dropped = 0
    for sha in set(shas):
        with store.transaction() as s:
            used = s.scalar(select(Image.id).where(Image.sha256 == sha).limit(1)) is not None
        if not used and store.blobs.exists(sha):
            store.blobs.delete(sha)
            dropped += 1
    return dropped


def purge_expired(store: Store, defaults: CaptureSettings, model_id: int | None = None) -> int:
    """Remove production images older than their model's retention; returns how many."""
    now = utcnow()
    removed, shas = 0, []
    with store.transaction() as s:
        q = select(Dataset).where(Dataset.kind == PRODUCTION)
        if model_id is not None:
            q = q.where(Dataset.model_id == model_id)
        for ds in s.scalars(q).all():
            row = s.get(CaptureSetting, ds.model_id)
            days = row.retention_days if row is not None else defaults.retention_days
            cutoff = now - dt.timedelta(days=days)
            old = s.scalars(select(Image).outerjoin(CapturedImage, CapturedImage.image_id == Image.id).where(
                Image.dataset_id == ds.id,
                or_(CapturedImage.captured_at < cutoff,
                    (CapturedImage.image_id.is_(None)) & (Image.created_at < cutoff)))).all()
            removed += len(old)
            shas += _remove(s, list(old))
    drop_unreferenced(store, shas)
    return removed


# --- the API's use cases ---------------------------------------------------------------------------

def _settings_view(ctx: "AppContext", s, model: Model, settings: CaptureSettings) -> dict:
    ds = production_dataset(s, model)
    images = s.scalar(select(func.count(Image.id)).where(Image.dataset_id == ds.id, Image.deleted_at.is_(None))) if ds else 0
    return capture_settings_view(model.id, asdict(settings), ds.id if ds else None, images,
                                 ctx.production.counts_of(model.id))


def get_settings(ctx: "AppContext", model_ref) -> dict:
    with ctx.store.transaction() as s:
        model = get_model(s, model_ref)
        row = s.get(CaptureSetting, model.id)
        settings = CaptureSettings.of(row) if row else CaptureSettings.defaults(ctx.config["capture"])
        return _settings_view(ctx, s, model, settings)


BODY_KEYS = {"mode": "mode", "bandLow": "band_low", "bandHigh": "band_high", "sampleRate": "sample_rate",
             "maxImages": "max_images", "retentionDays": "retention_days"}


def _checked(settings: CaptureSettings) -> CaptureSettings:
    if settings.mode not in MODES:
        raise Invalid(f"mode must be one of {list(MODES)}")
    if not 0 <= settings.band_low < settings.band_high <= 1:
        raise Invalid(f"the band must satisfy 0 <= bandLow < bandHigh <= 1 (got {settings.band_low}, {settings.band_high})")
    if not 0 < settings.sample_rate <= 1:
        raise Invalid(f"sampleRate must be over 0 and at most 1 (got {settings.sample_rate})")
    if settings.max_images < 1 or settings.retention_days < 1:
        raise Invalid("maxImages and retentionDays must be at least 1")
    return settings


def set_settings(ctx: "AppContext", model_ref, body: dict) -> dict:
    """Change what is kept (unset fields keep their value); lowered caps apply at once."""
    unknown = sorted(set(body) - set(BODY_KEYS))
    if unknown:
        raise Invalid(f"unknown capture settings {unknown}; known: {sorted(BODY_KEYS)}")
    with ctx.production.lock:
        with ctx.store.transaction() as s:
            model = get_model(s, model_ref)
            row = s.get(CaptureSetting, model.id)
            current = CaptureSettings.of(row) if row else CaptureSettings.defaults(ctx.config["capture"])
            changed = {BODY_KEYS[k]: v for k, v in body.items()}
            settings = _checked(CaptureSettings(**{**asdict(current), **changed}))
            if row is None:
                row = CaptureSetting(model_id=model.id)
                s.add(row)
            for key, value in asdict(settings).items():
                setattr(row, key, value)
            ds = production_dataset(s, model)
            shas = _remove(s, _over_cap(s, ds.id, settings.max_images)) if ds else []
            model_id = model.id
        ctx.production.settings.invalidate(model_id)
        drop_unreferenced(ctx.store, shas)
        purge_expired(ctx.store, CaptureSettings.defaults(ctx.config["capture"]), model_id)
    with ctx.store.transaction() as s:
        return _settings_view(ctx, s, s.get(Model, model_id), settings)


def list_captures(store: Store, model_ref, order: str = "newest", version: str | None = None,
                  since: dt.datetime | None = None, page: int = 1, page_size: int = 50) -> dict:
    """The production dataset's images with where each came from: newest, oldest or most uncertain first."""
    if order not in ORDERS:
        raise Invalid(f"order must be one of {list(ORDERS)}")
    with store.transaction() as s:
        model = get_model(s, model_ref)
        ds = production_dataset(s, model)
        if ds is None:
            return {"datasetId": None, "items": [], "total": 0, "page": page, "pageSize": page_size}
        q = (select(Image, CapturedImage, Version.number)
             .outerjoin(CapturedImage, CapturedImage.image_id == Image.id)
             .outerjoin(Version, Version.id == CapturedImage.version_id)
             .where(Image.dataset_id == ds.id, Image.deleted_at.is_(None)))
        if version is not None:
            q = q.where(CapturedImage.version_id == get_version(s, model, version).id)
        if since is not None:
            if since.tzinfo is not None:
                since = since.astimezone(dt.timezone.utc).replace(tzinfo=None)
            q = q.where(CapturedImage.captured_at >= since)
        total = s.scalar(select(func.count()).select_from(q.subquery()))
        when = func.coalesce(CapturedImage.captured_at, Image.created_at)
        ordering = {"newest": (when.desc(), Image.id.desc()), "oldest": (when, Image.id),
                    "uncertain": (func.coalesce(CapturedImage.uncertainty, 0).desc(), when.desc())}[order]
        rows = s.execute(q.order_by(*ordering).offset((page - 1) * page_size).limit(page_size)).all()
        return {"datasetId": ds.id, "items": [captured_image_view(i, c, n) for i, c, n in rows],
                "total": total, "page": page, "pageSize": page_size}


def _production_images(s, model: Model, image_ids: list[int]) -> tuple[Dataset, list[Image]]:
    ds = production_dataset(s, model)
    if ds is None:
        raise NotFound(f"model {model.name!r} has no captured images")
    ids = list(dict.fromkeys(image_ids))
    if not ids:
        raise Invalid("send at least one image id")
    found = {i.id: i for i in s.scalars(select(Image).where(Image.id.in_(ids), Image.dataset_id == ds.id,
                                                            Image.deleted_at.is_(None)))}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"images {missing} are not captured images of model {model.name!r} (dataset {ds.id})")
    return ds, [found[i] for i in ids]


def approve(ctx: "AppContext", model_ref, image_ids: list[int], dataset_id: int | None = None) -> dict:
    """Move captured images into a training dataset, every box of each approved (all or nothing)."""
    with ctx.production.lock:
        with ctx.store.transaction() as s:
            model = get_model(s, model_ref)
            if dataset_id is None:
                target = next((d for d in model.datasets if d.kind == "training"), None)
                if target is None:
                    raise Invalid(f"model {model.name!r} has no training dataset; create one or give datasetId")
            else:
                target = get_dataset(s, model, dataset_id)
                if target.kind != "training":
                    raise Invalid(f"dataset {dataset_id} is a {target.kind} dataset; approve into a training dataset")
            _, images = _production_images(s, model, image_ids)
            results, duplicates, now = [], [], utcnow()
            for image in images:
                there = s.scalar(select(Image).where(Image.dataset_id == target.id, Image.sha256 == image.sha256))
                if there is not None and there.deleted_at is None:
                    results.append({"imageId": image.id, "status": "duplicate", "trainingImageId": there.id})
                    duplicates.append(image)
                    continue
                if there is not None:  # deleted from training before: it comes back with the reviewed boxes
                    there.deleted_at = None
                    there.regions.clear()
                    there.regions.extend(Region(label_id=r.label_id, label=r.label, left=r.left, top=r.top,
                                                width=r.width, height=r.height, approved=True, source=r.source,
                                                probability=r.probability) for r in image.regions)
                    results.append({"imageId": image.id, "status": "moved", "trainingImageId": there.id})
                    duplicates.append(image)
                    continue
                image.dataset_id = target.id
                for region in image.regions:
                    region.approved = True
                meta = s.get(CapturedImage, image.id)
                if meta is not None:
                    meta.status, meta.reviewed_at = "approved", now
                results.append({"imageId": image.id, "status": "moved", "trainingImageId": image.id})
            s.flush()
            _remove(s, duplicates)  # their blobs stay: the training images refer to them
            moved = sum(r["status"] == "moved" for r in results)
            return {"datasetId": target.id, "moved": moved, "duplicates": len(results) - moved, "results": results}


def discard(ctx: "AppContext", model_ref, image_ids: list[int]) -> dict:
    """Delete captured images for good (rows and unshared blobs)."""
    with ctx.production.lock:
        with ctx.store.transaction() as s:
            _, images = _production_images(s, get_model(s, model_ref), image_ids)
            shas = _remove(s, images)
        return {"deleted": len(images), "blobsDeleted": drop_unreferenced(ctx.store, shas)}


def delete_all(ctx: "AppContext", model_ref) -> dict:
    """Delete every image of the production dataset (and what waits in the capture queue) at once."""
    with ctx.production.lock:
        with ctx.store.transaction() as s:
            model = get_model(s, model_ref)
            ctx.production.clear(model.id)
            ds = production_dataset(s, model)
            images = list(s.scalars(select(Image).where(Image.dataset_id == ds.id))) if ds else []
            shas = _remove(s, images)
        return {"deleted": len(images), "blobsDeleted": drop_unreferenced(ctx.store, shas)}
