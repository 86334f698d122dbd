"""Models, their labels and their datasets."""
from __future__ import annotations

import re
import unicodedata

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from model_store import Store
from model_store.schema import (ACTIVE_JOB_STATES, ACTIVE_RUN_STATES, Dataset, Image, Job, Label, Model,
                                Region, TrainingRun, utcnow)

from ..errors import Conflict, Invalid, NotFound
from ..views import dataset_view, label_view, model_view
from .model_summary import summaries

NAME_RE = re.compile(r"^[^\x00-\x1f/\\]{1,128}$")
DATASET_KINDS = ("training", "evaluation")


def check_name(value: str, what: str) -> str:
    value = (value or "").strip()
    if not NAME_RE.match(value):
        raise Invalid(f"{what} {value[:140]!r} must be 1-128 characters without control characters or slashes")
    return value


def label_key(name: str) -> str:
    """What makes two label names one label: case and Unicode form aside ("Fork", "fork", a
    full-width "ｆｏｒｋ"), as a flow that counted them apart would split one count in two."""
    return unicodedata.normalize("NFKC", name.strip()).casefold()


def labels_by_key(labels) -> dict[str, Label]:
    """Labels by ``label_key``; where a store made before that rule holds two, the older wins."""
    found: dict[str, Label] = {}
    for label in sorted(labels, key=lambda t: t.id or 0):
        found.setdefault(label_key(label.name), label)
    return found


def _same_label(model: Model, name: str, except_id: int | None = None) -> Conflict | None:
    """The conflict when ``name`` is, case and Unicode form aside, one of the model's labels."""
    other = next((t for t in model.labels if (except_id is None or t.id != except_id)
                  and label_key(t.name) == label_key(name)), None)
    if other is None:
        return None
    also = "" if other.name == name else f" (as {other.name!r}: names that differ only in case are one label)"
    return Conflict(f"label {name!r} already exists in model {model.name!r}{also}")


def check_model_name(value: str) -> str:
    """A model name: also not only digits, which /models/{modelId} would read as an id."""
    value = check_name(value, "model name")
    if as_number(value) is not None:
        raise Invalid(f"model name {value!r} is only digits, which the API reads as a model id; add a letter")
    return value


# The largest row id the database can hold (SQLite and PostgreSQL bigint): a bigger number is no row.
MAX_ROW_ID = 2**63 - 1


def as_number(ref) -> int | None:
    """An ASCII decimal number as an int ("12" -> 12), else None. str.isdigit alone also says yes to
    digits int() cannot read ("²") and to numbers no database column holds."""
    if isinstance(ref, bool):
        return None
    if isinstance(ref, int):
        return ref
    if isinstance(ref, str) and ref.isascii() and ref.isdigit():
        return int(ref)
    return None


def get_model(session: Session, model_ref: int | str, include_archived: bool = False) -> Model:
    """A model by id, or by name (flows call models by name)."""
    number = as_number(model_ref)
    if number is not None:
        model = session.get(Model, number) if 0 < number <= MAX_ROW_ID else None
    else:
        model = session.scalar(select(Model).where(Model.name == model_ref, Model.archived_at.is_(None)))
    if model is None or (model.archived_at is not None and not include_archived):
        raise NotFound(f"model {model_ref} does not exist")
    return model


def active_run(session: Session, model_id: int) -> TrainingRun | None:
    """The model's queued or training run (there is at most one)."""
    return session.scalar(select(TrainingRun).where(TrainingRun.model_id == model_id,
                                                    TrainingRun.status.in_(ACTIVE_RUN_STATES)))


def active_job(session: Session, model_id: int) -> Job | None:
    """The model's queued or running job (there is at most one)."""
    return session.scalar(select(Job).where(Job.model_id == model_id, Job.status.in_(ACTIVE_JOB_STATES)))


def get_model_part(session: Session, table, model: Model, what: str):
    """A row keyed by its model (draft, schedule), or NotFound saying the model has none."""
    row = session.get(table, model.id)
    if row is None:
        raise NotFound(f"model {model.name!r} has no {what}")
    return row


def get_dataset(session: Session, model: Model, dataset_id: int) -> Dataset:
    ds = session.get(Dataset, dataset_id)
    if ds is None or ds.model_id != model.id:
        raise NotFound(f"dataset {dataset_id} does not exist in model {model.id}")
    return ds


def _model_views(session: Session, models: list[Model]) -> list[dict]:
    found = summaries(session, [m.id for m in models])
    return [model_view(m, found[m.id]) for m in models]


def _name_taken(session: Session, name: str, except_id: int | None = None) -> bool:
    q = select(Model.id).where(Model.name == name, Model.archived_at.is_(None))
    if except_id is not None:
        q = q.where(Model.id != except_id)
    return session.scalar(q) is not None


def _add_labels(session: Session, model: Model, names: list[str]) -> list[Label]:
    added = []
    for raw in names:
        name = check_name(raw, "label name")
        conflict = _same_label(model, name)
        if conflict is not None:
            raise conflict
        label = Label(name=name)
        model.labels.append(label)
        added.append(label)
    session.flush()
    return added


def create_model(store: Store, name: str, labels: list[str], description: str = "") -> dict:
    name = check_model_name(name)
    with store.transaction() as s:
        if _name_taken(s, name):
            raise Conflict(f"a model named {name!r} already exists")
        model = Model(name=name, description=description or "")
        s.add(model)
        s.flush()
        _add_labels(s, model, labels)
        # Every model starts with one training dataset, as a Custom Vision project has one image pool.
        s.add(Dataset(model_id=model.id, name="training", kind="training"))
        s.flush()
        return _model_views(s, [model])[0]


def list_models(store: Store, include_archived: bool = False) -> list[dict]:
    with store.transaction() as s:
        q = select(Model).options(selectinload(Model.labels)).order_by(Model.id)
        if not include_archived:
            q = q.where(Model.archived_at.is_(None))
        return _model_views(s, list(s.scalars(q)))


def model_details(store: Store, model_ref) -> dict:
    with store.transaction() as s:
        return _model_views(s, [get_model(s, model_ref, include_archived=True)])[0]


def update_model(store: Store, model_ref, name: str | None = None, description: str | None = None) -> dict:
    with store.transaction() as s:
        model = get_model(s, model_ref)
        if name is not None:
            name = check_model_name(name)
            if _name_taken(s, name, except_id=model.id):
                raise Conflict(f"a model named {name!r} already exists")
            model.name = name
        if description is not None:
            model.description = description
        s.flush()
        return _model_views(s, [model])[0]


def archive_model(store: Store, model_ref) -> dict:
    """Deleting a model archives it: rows, images and versions stay on disk."""
    with store.transaction() as s:
        model = get_model(s, model_ref)
        # An archived model's runs and jobs can no longer be watched or canceled: stop them first.
        run, job = active_run(s, model.id), active_job(s, model.id)
        if run is not None or job is not None:
            busy = f"training run {run.id}" if run is not None else f"job {job.id}"
            raise Conflict(f"model {model.name!r} has {busy} in progress; cancel it (or let it finish), "
                           "then archive the model")
        model.archived_at = utcnow()
        s.flush()
        return _model_views(s, [model])[0]


def restore_model(store: Store, model_ref) -> dict:
    """An archived model back in the list, as it was; its name must still be free."""
    with store.transaction() as s:
        model = get_model(s, model_ref, include_archived=True)
        if model.archived_at is not None:
            if _name_taken(s, model.name, except_id=model.id):
                raise Conflict(f"a model named {model.name!r} was made since model {model.id} was archived; "
                               "rename one of them first")
            model.archived_at = None
            s.flush()
        return _model_views(s, [model])[0]


def list_labels(store: Store, model_ref) -> list[dict]:
    with store.transaction() as s:
        return [label_view(t) for t in get_model(s, model_ref).labels]


def add_labels(store: Store, model_ref, names: list[str]) -> list[dict]:
    with store.transaction() as s:
        model = get_model(s, model_ref)
        return [label_view(t) for t in _add_labels(s, model, names)]


def delete_label(store: Store, model_ref, label_id: int) -> dict:
    """Remove a label and every box of it (approved or suggested), in all the model's datasets.
    Versions keep the labels they were trained with; a model keeps at least one label."""
    with store.transaction() as s:
        model = get_model(s, model_ref)
        label = next((t for t in model.labels if t.id == label_id), None)
        if label is None:
            raise NotFound(f"label {label_id} does not exist in model {model.name!r}")
        if len(model.labels) == 1:
            raise Conflict(f"label {label.name!r} is the only label of model {model.name!r}; add another first")
        run = active_run(s, model.id)
        if run is not None:  # the run reads the boxes as it starts; a label gone mid-way is a muddle
            raise Conflict(f"model {model.name!r} has training run {run.id} in progress; delete the label after it")
        boxes = s.execute(delete(Region).where(Region.label_id == label.id)).rowcount
        view = {**label_view(label), "boxesDeleted": boxes}
        s.delete(label)
        return view


def rename_label(store: Store, model_ref, label_id: int, name: str) -> dict:
    """A new name for a label; versions keep the names they were trained with."""
    name = check_name(name, "label name")
    with store.transaction() as s:
        model = get_model(s, model_ref)
        label = next((t for t in model.labels if t.id == label_id), None)
        if label is None:
            raise NotFound(f"label {label_id} does not exist in model {model.name!r}")
        conflict = _same_label(model, name, except_id=label_id)
        if conflict is not None:
            raise conflict
        label.name = name
        try:
            s.flush()
        except IntegrityError:  # another request took the name between our check and this write
            raise Conflict(f"label {name!r} already exists in model {model.name!r}") from None
        return label_view(label)


def create_dataset(store: Store, model_ref, name: str, kind: str) -> dict:
    name = check_name(name, "dataset name")
    if kind not in DATASET_KINDS:
        raise Invalid(f"dataset kind must be one of {DATASET_KINDS}")
    with store.transaction() as s:
        model = get_model(s, model_ref)
        if any(d.name == name for d in model.datasets):
            raise Conflict(f"dataset {name!r} already exists in model {model.name!r}")
        ds = Dataset(model_id=model.id, name=name, kind=kind)
        s.add(ds)
        s.flush()
        return dataset_view(ds, 0)


def _image_counts(session: Session, dataset_ids: list[int]) -> dict[int, int]:
    rows = session.execute(
        select(Image.dataset_id, func.count(Image.id))
        .where(Image.dataset_id.in_(dataset_ids), Image.deleted_at.is_(None))
        .group_by(Image.dataset_id))
    return dict(rows.all())


def list_datasets(store: Store, model_ref) -> list[dict]:
    with store.transaction() as s:
        model = get_model(s, model_ref)
        counts = _image_counts(s, [d.id for d in model.datasets])
        return [dataset_view(d, counts.get(d.id, 0)) for d in model.datasets]


def dataset_details(store: Store, model_ref, dataset_id: int) -> dict:
    with store.transaction() as s:
        ds = get_dataset(s, get_model(s, model_ref), dataset_id)
        return dataset_view(ds, _image_counts(s, [ds.id]).get(ds.id, 0))
