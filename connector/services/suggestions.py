"""ML-assisted labeling: a trained version proposes boxes, a person reviews them.

Suggestions are regions with approved=False, source "suggested" and the model's probability.
They never train and never count in the data check until approved. Approving keeps a box (it
then trains like a drawn one); rejecting deletes it. Both can be taken back (the studio's undo):
unapproving returns an approved box that came from a suggestion to the suggestions, restoring
stores rejected suggestions again with their probability. Boxes a person drew are never touched
by anything here.
"""
from __future__ import annotations

from sqlalchemy import delete, func, select, update

from model_store import Store
from model_store.schema import Image, Region

from ..errors import Invalid
from ..views import image_view
from . import images, inference
from .catalog import get_dataset, get_model


def predicted_boxes(predictor, target: inference.Target, data: bytes, threshold: float | None) -> list[dict]:
    """The version's boxes on an image, as suggestions: {labelId, left, top, width, height, probability}.

    `predictor` is the version's from the predictor cache (either engine, see connector/inference/engines.py);
    the stored picture is decoded as detect decodes one (a large JPEG at reduced scale)."""
    result, _ = inference.detect(predictor, target, predictor.prepare(data), threshold)
    return [{"labelId": p["tagId"], "probability": p["probability"], **p["boundingBox"]}
            for p in result["predictions"]]


def suggest_image(store: Store, predictors, default_threshold: float | None, model_ref, dataset_id: int, image_id: int,
                  version_ref: str | None = None, threshold: float | None = None) -> dict:
    """Suggest boxes for one image now with a version (the last trained one by default)."""
    data, _ = images.image_content(store, model_ref, dataset_id, image_id)
    target = inference.resolve(store, model_ref, version_ref, "lastTrained")
    boxes = predicted_boxes(predictors.get(target.version_id), target, data,
                            default_threshold if threshold is None else threshold)
    return images.replace_suggestions(store, model_ref, dataset_id, image_id, boxes)


def review(store: Store, model_ref, dataset_id: int, approve_above: float, reject_rest: bool = False,
           label: str | None = None) -> dict:
    """Across a dataset, approve the suggestions with probability >= approve_above and (with
    reject_rest) delete the other suggestions, optionally of one label only: one transaction."""
    if not 0 <= approve_above <= 1:
        raise Invalid("approveAbove must be between 0 and 1")
    with store.transaction() as s:
        model = get_model(s, model_ref)
        get_dataset(s, model, dataset_id)
        pending = [Region.approved.is_(False),
                   Region.image_id.in_(select(Image.id).where(Image.dataset_id == dataset_id,
                                                              Image.deleted_at.is_(None)))]
        if label is not None:
            match = next((t for t in model.labels if t.name == label), None)
            if match is None:
                raise Invalid(f"unknown label {label!r}; the model's labels are {sorted(t.name for t in model.labels)}")
            pending.append(Region.label_id == match.id)
        sure = Region.probability >= approve_above
        touched = select(Region.image_id).where(*pending).distinct()
        if not reject_rest:
            touched = touched.where(sure)
        image_count = s.scalar(select(func.count()).select_from(touched.subquery()))
        approved = s.execute(update(Region).where(*pending, sure).values(approved=True)
                             .execution_options(synchronize_session=False)).rowcount
        rejected = 0
        if reject_rest:
            rejected = s.execute(delete(Region).where(*pending)
                                 .execution_options(synchronize_session=False)).rowcount
        return {"approved": approved, "rejected": rejected, "images": image_count}


def reject_regions(store: Store, model_ref, dataset_id: int, image_id: int, region_ids: list[int] | None) -> dict:
    """Delete an image's suggestions (the given ones, or all); approved boxes cannot be rejected."""
    with store.transaction() as s:
        _, image = images._get_image(s, model_ref, dataset_id, image_id, for_update=True)
        by_id = {r.id: r for r in image.regions}
        if region_ids is not None:
            unknown = sorted(set(region_ids) - set(by_id))
            if unknown:
                raise Invalid(f"regions {unknown} do not belong to image {image_id}")
            approved = sorted(i for i in set(region_ids) if by_id[i].approved)
            if approved:
                raise Invalid(f"regions {approved} are approved boxes, not suggestions; "
                              "change approved boxes with SetImageRegions")
        for region in [r for r in image.regions if not r.approved and (region_ids is None or r.id in region_ids)]:
            image.regions.remove(region)
        s.flush()
        return image_view(image)


def unapprove_regions(store: Store, model_ref, dataset_id: int, image_id: int, region_ids: list[int]) -> dict:
    """Return approved boxes that came from a suggestion to the suggestions waiting for review (undo
    of an accept): they keep their id and probability. A box a person drew or imported, or an id
    that is not a box of this image, is a 400 and nothing changes."""
    with store.transaction() as s:
        _, image = images._get_image(s, model_ref, dataset_id, image_id, for_update=True)
        by_id = {r.id: r for r in image.regions}
        unknown = sorted(set(region_ids) - set(by_id))
        if unknown:
            raise Invalid(f"regions {unknown} do not belong to image {image_id}")
        drawn = sorted(i for i in set(region_ids) if by_id[i].source != "suggested" or by_id[i].probability is None)
        if drawn:
            raise Invalid(f"regions {drawn} were not suggested (a person drew or imported them): only a box "
                          "accepted from a suggestion can return to the suggestions; change the others with "
                          "SetImageRegions")
        for i in set(region_ids):
            by_id[i].approved = False
        s.flush()
        return image_view(image)


def restore_suggestions(store: Store, model_ref, dataset_id: int, image_id: int, suggestions: list[dict]) -> dict:
    """Store suggestions again as they were (undo of a reject): {labelId or labelName, left, top,
    width, height, probability}, appended in the order given with new ids; the other boxes stay.
    They are stored as given: the rule that leaves out a suggestion repeating an approved box
    applies when a version suggests, and a restored suggestion was already on the image."""
    with store.transaction() as s:
        model, image = images._get_image(s, model_ref, dataset_id, image_id, for_update=True)
        boxes = images.validate_regions(model, suggestions)
        total = len(image.regions) + len(boxes)
        if total > images.MAX_BOXES_PER_IMAGE:
            raise Invalid(images.too_many_boxes(total))
        probabilities = [sug.get("probability") for sug in suggestions]
        for i, p in enumerate(probabilities):
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
                raise Invalid(f"region {i}: probability must be a number between 0 and 1 (got {p!r})")
        for (label, left, top, width, height), p in zip(boxes, probabilities):
            image.regions.append(Region(label_id=label.id, label=label, left=left, top=top, width=width,
                                        height=height, approved=False, source="suggested", probability=float(p)))
        s.flush()
        return image_view(image)
