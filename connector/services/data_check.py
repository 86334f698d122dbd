"""The data check a maker reads before training, and training reads before it starts.

Rules (data_check.* settings): a label with no images, or fewer than 5, blocks training
(Custom Vision asks for 15, but the pretrained default preset trains a useful model from 5);
under 15 is advice that the score will vary, under 50 that it may be optimistic; one label
with more than twice the images of another is advice (imbalance); pictures under 256 px on
their shorter side are advice too (they train, scaled up, but small objects in them may be
missed), and so are boxes that repeat another box of their label (IoU >= 0.9: one object boxed
twice). Only approved boxes count: suggestions waiting for review are not labels yet.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
from sqlalchemy import select

from model_store import Store
from model_store.schema import Image, Region

from ..errors import Invalid
from ..modeling.boxes import iou_matrix
from .catalog import get_dataset, get_model

WARNING_IMAGES = 50  # images a warning lists, so a maker can open them (the message gives the total)
PAIR_ROWS = 256  # boxes of an image compared with all its others at once (a 256 x n IoU block)


def data_check(store: Store, rules: dict, model_ref, dataset_id: int | None = None) -> dict:
    with store.transaction() as s:
        model = get_model(s, model_ref)
        if dataset_id is not None:
            datasets = [get_dataset(s, model, dataset_id)]
        else:
            datasets = [d for d in model.datasets if d.kind == "training"]
        ids = [d.id for d in datasets]
        images = s.scalars(select(Image).where(Image.dataset_id.in_(ids), Image.deleted_at.is_(None))).all()
        rows = s.execute(
            select(Region.image_id, Region.label_id, Region.approved, Region.left, Region.top, Region.width,
                   Region.height)
            .join(Image, Image.id == Region.image_id)
            .where(Image.dataset_id.in_(ids), Image.deleted_at.is_(None))).all()
        small = sum(1 for i in images if min(i.width, i.height) < rules["small_image_side"])
        return summarize(model.labels, {i.id: i.dataset_id for i in images}, rows, rules,
                         datasets=[{"id": d.id, "name": d.name, "kind": d.kind} for d in datasets],
                         small_images=small)


def summarize(labels, images: dict[int, int], region_rows, rules: dict, datasets: list[dict],
              small_images: int = 0) -> dict:
    """Pure counting: per label images/boxes (approved boxes only), then the warnings.
    ``images``: image id -> dataset id; ``region_rows``: (image_id, label_id, approved, left, top,
    width, height)."""
    images_per_label: dict[int, set] = defaultdict(set)
    boxes_per_label: dict[int, int] = defaultdict(int)
    boxes_of: dict[tuple[int, int], list] = defaultdict(list)
    boxed_images: set = set()
    pending = 0
    for image_id, label_id, approved, *box in region_rows:
        if not approved:
            pending += 1
            continue
        images_per_label[label_id].add(image_id)
        boxes_per_label[label_id] += 1
        boxes_of[image_id, label_id].append(box)
        boxed_images.add(image_id)

    per_label = [{"labelId": t.id, "name": t.name, "images": len(images_per_label[t.id]),
                  "boxes": boxes_per_label[t.id]} for t in labels]
    warnings = []
    min_images, stable = rules["min_images_per_label"], rules["stable_images_per_label"]
    advised = rules["advised_images_per_label"]
    if not labels:
        warnings.append(_warn("NoLabels", "blocking", None, "the model has no labels; add at least one"))
    for entry in per_label:
        n, name = entry["images"], entry["name"]
        if n == 0:  # whatever the configured minimum: a label nothing shows cannot be learned
            warnings.append(_warn("NoImages", "blocking", name,
                                  f"label {name!r} has no images with boxes; box it on at least "
                                  f"{max(min_images, 1)} images or remove the label"))
        elif n < min_images:
            warnings.append(_warn("TooFewImages", "blocking", name,
                                  f"label {name!r} has {n} images with boxes; at least {min_images} are needed to train"))
        elif n < stable:
            warnings.append(_warn("VeryFewImages", "advice", name,
                                  f"label {name!r} has {n} images; under {stable} the performance score will vary "
                                  "from run to run and on new pictures: add images to make it dependable"))
        elif n < advised:
            warnings.append(_warn("FewImages", "advice", name,
                                  f"label {name!r} has {n} images; under {advised} the performance score may be optimistic"))
    counts = [e["images"] for e in per_label if e["images"] > 0]
    if len(counts) >= 2 and max(counts) > rules["max_imbalance_ratio"] * min(counts):
        most = max(per_label, key=lambda e: e["images"])
        least = min((e for e in per_label if e["images"] > 0), key=lambda e: e["images"])
        warnings.append(_warn("Imbalance", "advice", least["name"],
                              f"label {most['name']!r} has {most['images']} images but {least['name']!r} only "
                              f"{least['images']}; over {rules['max_imbalance_ratio']:g}:1 the model favours the larger label"))
    repeated = _repeated_boxes(boxes_of, rules["duplicate_box_iou"])
    for t in labels:
        if t.id in repeated:
            n, where = repeated[t.id]
            warnings.append(_warn("DuplicateBoxes", "advice", t.name,
                                  f"{n} boxes of {t.name!r} in {len(where)} images lie on another box of {t.name!r} "
                                  f"(IoU >= {rules['duplicate_box_iou']:g}): an object boxed twice is learned, "
                                  "and counted, twice; delete one of each pair",
                                  images=[{"id": i, "datasetId": images[i]} for i in sorted(where)[:WARNING_IMAGES]]))
    unboxed = len(set(images) - boxed_images)
    if unboxed:
        warnings.append(_warn("ImagesWithoutBoxes", "advice", None,
                              f"{unboxed} images have no approved boxes and do not train"))
    if small_images:
        side = rules["small_image_side"]
        warnings.append(_warn("SmallImages", "advice", None,
                              f"{small_images} images are under {side} px on their shorter side; they train, "
                              "scaled up to the preset's size, but small objects in them may be missed"))
    if pending:
        warnings.append(_warn("UnapprovedBoxes", "advice", None,
                              f"{pending} suggested boxes are waiting for approval and do not train"))
    return {
        "datasets": datasets,
        "images": len(images),
        "imagesWithBoxes": len(boxed_images),
        "imagesWithoutBoxes": unboxed,
        "boxes": sum(boxes_per_label.values()),
        "unapprovedBoxes": pending,
        "smallImages": small_images,
        "labels": per_label,
        "warnings": warnings,
        "canTrain": not any(w["severity"] == "blocking" for w in warnings),
    }


def _repeated_boxes(boxes_of: dict[tuple[int, int], list], min_iou: float) -> dict[int, tuple[int, list[int]]]:
    """label id -> (boxes lying on an earlier box of the same label and image, the images with one)."""
    found: dict[int, tuple[int, list[int]]] = {}
    for (image_id, label_id), boxes in boxes_of.items():
        if len(boxes) < 2:
            continue
        ltwh = np.asarray(boxes, dtype=np.float64)
        xyxy = np.concatenate([ltwh[:, :2], ltwh[:, :2] + ltwh[:, 2:]], axis=1)
        repeated = np.zeros(len(xyxy), dtype=bool)
        for start in range(0, len(xyxy), PAIR_ROWS):  # rows at a time: memory stays linear in the boxes
            rows = iou_matrix(xyxy[start:start + PAIR_ROWS], xyxy) >= min_iou
            later = np.arange(len(xyxy))[None, :] > np.arange(start, start + len(rows))[:, None]
            repeated |= (rows & later).any(axis=0)
        n = int(repeated.sum())
        if n:
            total, where = found.get(label_id, (0, []))
            where.append(image_id)
            found[label_id] = (total + n, where)
    return found


def _warn(code: str, severity: str, label: str | None, message: str, **more) -> dict:
    return {"code": code, "severity": severity, "label": label, "message": message, **more}


def require_trainable(report: dict) -> None:
    blocking = [w["message"] for w in report["warnings"] if w["severity"] == "blocking"]
    if blocking:
        raise Invalid("the data check blocks training: " + "; ".join(blocking), dataCheck=report)
