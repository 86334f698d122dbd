"""Images in a dataset and the boxes drawn on them."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from model_store import Store, lock_row
from model_store.schema import Image, Label, Model, Region, utcnow

from ..errors import Invalid, NotFound, OdError
from ..imaging import CheckedImage, check_image
from ..modeling.boxes import iou_ltwh
from ..views import image_view
from .catalog import get_dataset, get_model, label_key, labels_by_key

EPS = 1e-6
SAME_OBJECT_IOU = 0.5  # a suggestion this close to an approved box of its label is that box again (COCO's match)


@dataclass
class Upload:
    """One file as the user sent it: bytes, a display name, and optional boxes."""
    name: str
    data: bytes
    regions: list[dict] | None = None


@dataclass
class UploadReport:
    results: list[dict] = field(default_factory=list)

    def add(self, name: str, status: str, image_id: int | None = None, reason: str | None = None):
        entry = {"name": name, "status": status}
        if image_id is not None:
            entry["imageId"] = image_id
        if reason:
            entry["reason"] = reason
        self.results.append(entry)

    def view(self) -> dict:
        count = lambda s: sum(1 for r in self.results if r["status"] == s)  # noqa: E731
        return {"created": count("created"), "duplicates": count("duplicate"),
                "rejected": count("rejected"), "results": self.results}


def display_name(name: str | None) -> str:
    """User file names are labels for people, never paths: keep the last segment, printable only."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable())[:255]
    return base if base not in ("", ".", "..") else "image"


# Boxes one image may hold (the spec's maxItems of a regions list says the same): far above the
# densest real scenes (shelves of products, several hundred), and it keeps the work per image that
# grows with the square of its boxes (the data check's pairs, training's anchor matching) bounded.
MAX_BOXES_PER_IMAGE = 1000


def too_many_boxes(n: int) -> str:
    return f"{n} boxes is over the limit of {MAX_BOXES_PER_IMAGE} on one image"


def _find_label(model: Model):
    """label id or name -> the model's Label (or None): a name as written, else by label_key."""
    by_id = {t.id: t for t in model.labels}
    by_name = {t.name: t for t in model.labels}
    by_key = labels_by_key(model.labels)

    def find(key):
        if isinstance(key, str):
            return by_name.get(key) or by_key.get(label_key(key))
        return by_id.get(key) if isinstance(key, int) and not isinstance(key, bool) else None
    return find


def validate_regions(model: Model, regions: list[dict]) -> list[tuple[Label, float, float, float, float]]:
    """Normalized boxes (left, top, width, height in 0..1) with a known label, inside the image."""
    if len(regions) > MAX_BOXES_PER_IMAGE:
        raise Invalid(too_many_boxes(len(regions)))
    find_label = _find_label(model)
    out = []
    for i, r in enumerate(regions):
        key = r.get("labelId", r.get("labelName", r.get("label")))
        label = find_label(key)
        if label is None:
            raise Invalid(f"region {i}: unknown label {key!r}; the model's labels are "
                          f"{sorted(t.name for t in model.labels)}")
        try:
            left, top, width, height = (float(r[k]) for k in ("left", "top", "width", "height"))
        except (KeyError, TypeError, ValueError):
            raise Invalid(f"region {i}: left, top, width and height must be numbers") from None
        if not all(math.isfinite(v) for v in (left, top, width, height)):
            raise Invalid(f"region {i}: coordinates must be finite numbers")
        if width <= 0 or height <= 0:
            raise Invalid(f"region {i}: width and height must be positive (got {width}, {height})")
        if left < -EPS or top < -EPS or left + width > 1 + EPS or top + height > 1 + EPS:
            raise Invalid(f"region {i}: the box ({left}, {top}, {width}, {height}) is not inside the image; "
                          "coordinates are fractions of the image size (0..1)")
        out.append((label, max(left, 0.0), max(top, 0.0), min(width, 1 - max(left, 0.0)),
                    min(height, 1 - max(top, 0.0))))
    return out


def _replace_regions(image: Image, boxes, source: str, approved: bool = True, keep_pending: bool = False) -> None:
    for region in [r for r in image.regions if not (keep_pending and not r.approved)]:
        image.regions.remove(region)
    for label, left, top, width, height in boxes:
        image.regions.append(Region(label_id=label.id, label=label, left=left, top=top, width=width,
                                    height=height, approved=approved, source=source))


def add_images(store: Store, limits: dict, model_ref, dataset_id: int, uploads: list[Upload]) -> dict:
    """Check each file on its own: bad ones are reported, good ones are kept.

    Blobs are written first (content-addressed, so an orphan is harmless), then
    all rows in one transaction.
    """
    if not uploads:
        raise Invalid("no image was sent")
    if len(uploads) > limits["max_files_per_upload"]:
        raise Invalid(f"{len(uploads)} files is over the limit of {limits['max_files_per_upload']} per request")
    report = UploadReport()
    with store.transaction() as s:
        model = get_model(s, model_ref)
        ds = get_dataset(s, model, dataset_id)
        for up in uploads:
            name = display_name(up.name)
            try:
                checked = check_image(up.data, limits, name, keep_pixels=False)
                boxes = validate_regions(model, up.regions) if up.regions else None
            except OdError as exc:
                report.add(name, "rejected", reason=exc.detail)
                continue
            image, created = _upsert_image(s, store, ds.id, name, checked)
            if boxes is not None:
                _replace_regions(image, boxes, source="user")
            report.add(name, "created" if created else "duplicate", image.id)
        s.flush()
    return report.view()


def _upsert_image(s: Session, store: Store, dataset_id: int, name: str, checked: CheckedImage):
    sha = store.blobs.put(checked.data)
    image = s.scalar(select(Image).where(Image.dataset_id == dataset_id, Image.sha256 == sha))
    if image is not None:
        if image.deleted_at is None:
            return image, False
        image.deleted_at = None  # uploading a deleted image again brings it back
        return image, True
    image = Image(dataset_id=dataset_id, sha256=sha, name=name, format=checked.format,
                  width=checked.width, height=checked.height, size_bytes=len(checked.data))
    s.add(image)
    s.flush()
    return image, True


def _get_image(s: Session, model_ref, dataset_id: int, image_id: int,
               for_update: bool = False) -> tuple[Model, Image]:
    """The image (404 unless it is in the dataset); `for_update` takes its lock first, for a
    read-modify-write of its boxes."""
    if for_update:
        lock_row(s, Image, image_id)
    model = get_model(s, model_ref)
    get_dataset(s, model, dataset_id)
    image = s.get(Image, image_id)
    if image is None or image.dataset_id != dataset_id or image.deleted_at is not None:
        raise NotFound(f"image {image_id} does not exist in dataset {dataset_id}")
    return model, image


def image_details(store: Store, model_ref, dataset_id: int, image_id: int) -> dict:
    with store.transaction() as s:
        return image_view(_get_image(s, model_ref, dataset_id, image_id)[1])


def image_content(store: Store, model_ref, dataset_id: int, image_id: int) -> tuple[bytes, str]:
    with store.transaction() as s:
        image = _get_image(s, model_ref, dataset_id, image_id)[1]
        return store.blobs.get(image.sha256), f"image/{image.format.lower()}"


def delete_image(store: Store, model_ref, dataset_id: int, image_id: int) -> None:
    """Soft delete: the image leaves the dataset, but versions trained on it keep their history."""
    with store.transaction() as s:
        _get_image(s, model_ref, dataset_id, image_id)[1].deleted_at = utcnow()


def set_regions(store: Store, model_ref, dataset_id: int, image_id: int, regions: list[dict],
                keep_suggestions: bool = True) -> dict:
    """Replace the boxes a person set on an image (a human-set box is approved). Suggestions
    waiting for review stay, unless `keep_suggestions` is false: drawing a box while a model's
    suggestions are pending must not throw them away."""
    with store.transaction() as s:
        model, image = _get_image(s, model_ref, dataset_id, image_id, for_update=True)
        _replace_regions(image, validate_regions(model, regions), source="user", keep_pending=keep_suggestions)
        s.flush()
        return image_view(image)


def approve_regions(store: Store, model_ref, dataset_id: int, image_id: int, region_ids: list[int] | None) -> dict:
    """Accept suggested boxes (all, or the given ones) so that they train."""
    with store.transaction() as s:
        _, image = _get_image(s, model_ref, dataset_id, image_id, for_update=True)
        known = {r.id for r in image.regions}
        unknown = set(region_ids or []) - known
        if unknown:
            raise Invalid(f"regions {sorted(unknown)} do not belong to image {image_id}")
        for r in image.regions:
            if region_ids is None or r.id in region_ids:
                r.approved = True
        s.flush()
        return image_view(image)


def replace_suggestions(store: Store, model_ref, dataset_id: int, image_id: int, suggestions: list[dict]) -> dict:
    """Store a model's boxes as unapproved suggestions; boxes a person set or approved stay."""
    with store.transaction() as s:
        model, image = _get_image(s, model_ref, dataset_id, image_id, for_update=True)
        put_suggestions(model, image, suggestions)
        s.flush()
        return image_view(image)


def put_suggestions(model: Model, image: Image, suggestions: list[dict]) -> int:
    """Replace the image's unapproved boxes with `suggestions`; approved boxes stay. Returns how many
    were stored. `suggestions`: {labelId, left, top, width, height, probability}, normalized; a
    labelId of None (a label the model no longer has) is skipped, and so is a suggestion that
    repeats an approved box (same label, IoU >= SAME_OBJECT_IOU): on a labeled image, what is
    left to review are the objects its boxes miss, and accepting suggestions in bulk cannot box
    an object twice."""
    labels = {t.id: t for t in model.labels}
    for region in [r for r in image.regions if not r.approved]:
        image.regions.remove(region)
    approved = [(r.label_id, (r.left, r.top, r.width, r.height)) for r in image.regions]
    stored = 0
    for sug in suggestions:
        label = labels.get(sug["labelId"])
        box = (sug["left"], sug["top"], sug["width"], sug["height"])
        if label is None or any(k == label.id and iou_ltwh(box, b) >= SAME_OBJECT_IOU for k, b in approved):
            continue
        image.regions.append(Region(label_id=label.id, label=label, left=sug["left"], top=sug["top"],
                                    width=sug["width"], height=sug["height"], approved=False,
                                    source="suggested", probability=sug["probability"]))
        stored += 1
    return stored
