"""The image list of a dataset: filters a labeling grid needs, and the order to review in.

Filters read the regions of each image through correlated EXISTS on the
(image_id, approved, label_id, probability) index, so a page costs the same at 10,000 images
as at 10 (bench/list_bench.py measures it).

Uncertainty order (least sure first): an image's uncertainty is how close its most doubtful
suggestion is to a coin flip, min |probability - 0.5| over its unapproved suggested boxes.
Images without suggestions come last; ties go by id.
"""
from __future__ import annotations

from sqlalchemy import exists, func, select
from sqlalchemy.orm import selectinload

from model_store import Store
from model_store.schema import Image, Region

from ..errors import Invalid
from ..views import image_view
from .catalog import get_dataset, get_model

SORTS = ("id", "-id", "uncertainty")


def has_boxes(approved: bool, label_id: int | None = None):
    """EXISTS a box of the image, approved (a person's) or not (a suggestion), optionally of a label."""
    cond = exists().where(Region.image_id == Image.id, Region.approved.is_(approved))
    return cond.where(Region.label_id == label_id) if label_id is not None else cond


def uncertainty():
    """Per image: min |p - 0.5| over its unapproved suggestions (NULL when it has none)."""
    return (select(func.min(func.abs(Region.probability - 0.5)))
            .where(Region.image_id == Image.id, Region.approved.is_(False), Region.probability.is_not(None))
            .scalar_subquery())


def list_images(store: Store, model_ref, dataset_id: int, page: int = 1, page_size: int = 50,
                label: str | None = None, tagged: bool | None = None, has_suggestions: bool | None = None,
                sort: str = "id") -> dict:
    """`label`: has an approved box of that label; `tagged`: has (true) or lacks (false) approved
    boxes; `hasSuggestions`: has (or lacks) unapproved suggested boxes."""
    if sort not in SORTS:
        raise Invalid(f"sort must be one of {list(SORTS)}")
    with store.transaction() as s:
        model = get_model(s, model_ref)
        get_dataset(s, model, dataset_id)
        q = select(Image).where(Image.dataset_id == dataset_id, Image.deleted_at.is_(None))
        if label is not None:
            match = next((t for t in model.labels if t.name == label), None)
            if match is None:
                raise Invalid(f"unknown label {label!r}; the model's labels are {sorted(t.name for t in model.labels)}")
            q = q.where(has_boxes(True, match.id))
        if tagged is not None:
            q = q.where(has_boxes(True) if tagged else ~has_boxes(True))
        if has_suggestions is not None:
            q = q.where(has_boxes(False) if has_suggestions else ~has_boxes(False))
        total = s.scalar(select(func.count()).select_from(q.subquery()))
        if sort == "uncertainty":
            # |p - 0.5| <= 0.5, so 1 puts images without suggestions last (one subquery per row)
            q = q.order_by(func.coalesce(uncertainty(), 1.0), Image.id)
        else:
            q = q.order_by(Image.id.desc() if sort == "-id" else Image.id)
        q = q.options(selectinload(Image.regions).selectinload(Region.label))
        rows = s.scalars(q.offset((page - 1) * page_size).limit(page_size))
        return {"items": [image_view(i) for i in rows], "total": total, "page": page, "pageSize": page_size}
