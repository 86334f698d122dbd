"""Versions (immutable trained models), their pointers, and the one draft per model.

Like MLflow's registry: versions are numbered per model, `lastTrained` and
`published` are aliases that move, and a version is archived, never deleted.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from model_store import Store
from model_store.schema import Draft, Model, Version, WeightFile, utcnow

from ..errors import Conflict, Invalid, NotFound
from ..views import draft_view, version_view
from .catalog import MAX_ROW_ID, as_number, get_model, get_model_part

ALIASES = {"published": "published_version_id", "lastTrained": "last_trained_version_id"}
SETTING_KEYS = ("preset", "budgetMinutes", "maxIterations", "evaluationDatasetId", "weights", "seed")


def get_version(s: Session, model: Model, ref: str | int) -> Version:
    """A version by number (1, 2, ...) or alias (`published`, `lastTrained`)."""
    ref = str(ref)
    if ref in ALIASES:
        version_id = getattr(model, ALIASES[ref])
        if version_id is None:
            raise NotFound(f"model {model.name!r} has no {ref} version")
        return s.get(Version, version_id)
    number = as_number(ref)
    if number is None:
        raise Invalid(f"version {ref!r} is neither a number nor one of {sorted(ALIASES)}")
    version = None
    if number <= MAX_ROW_ID:
        version = s.scalar(select(Version).where(Version.model_id == model.id, Version.number == number))
    if version is None:
        raise NotFound(f"model {model.name!r} has no version {ref}")
    return version


def list_versions(store: Store, model_ref, include_archived: bool = False) -> list[dict]:
    with store.transaction() as s:
        model = get_model(s, model_ref)
        q = select(Version).where(Version.model_id == model.id).order_by(Version.number)
        if not include_archived:
            q = q.where(Version.archived_at.is_(None))
        return [version_view(v, model) for v in s.scalars(q)]


def version_details(store: Store, model_ref, ref) -> dict:
    with store.transaction() as s:
        model = get_model(s, model_ref)
        return version_view(get_version(s, model, ref), model)


def archive_version(store: Store, model_ref, ref) -> dict:
    with store.transaction() as s:
        model = get_model(s, model_ref)
        version = get_version(s, model, ref)
        if model.published_version_id == version.id:
            raise Conflict(f"version {version.number} is published; publish another or unpublish first")
        version.archived_at = utcnow()
        if model.last_trained_version_id == version.id:
            newer = s.scalar(select(Version).where(Version.model_id == model.id, Version.archived_at.is_(None),
                                                   Version.id != version.id).order_by(Version.number.desc()))
            model.last_trained_version_id = newer.id if newer else None
        s.flush()
        return version_view(version, model)


# --- settings and the draft -----------------------------------------------------------------

def default_settings(training_cfg: dict) -> dict:
    return {"preset": training_cfg["default_preset"], "budgetMinutes": training_cfg["default_budget_minutes"],
            "maxIterations": None, "evaluationDatasetId": None, "weights": None, "seed": training_cfg["seed"]}


def check_settings(s: Session, model: Model, settings: dict, training_cfg: dict, presets: list[str]) -> dict:
    unknown = set(settings) - set(SETTING_KEYS)
    if unknown:
        raise Invalid(f"unknown training settings {sorted(unknown)}; known: {list(SETTING_KEYS)}")
    if settings.get("preset") is not None and settings["preset"] not in presets:
        raise Invalid(f"unknown preset {settings['preset']!r}; choose one of {presets}")
    budget = settings.get("budgetMinutes")
    if budget is not None and not (0 < budget <= training_cfg["max_budget_minutes"]):
        raise Invalid(f"budgetMinutes must be over 0 and at most {training_cfg['max_budget_minutes']}")
    ds_id = settings.get("evaluationDatasetId")
    if ds_id is not None:
        ds = next((d for d in model.datasets if d.id == ds_id), None)
        if ds is None or ds.kind != "evaluation":
            raise Invalid(f"evaluationDatasetId {ds_id} is not an evaluation dataset of model {model.name!r}")
    if settings.get("weights") and s.get(WeightFile, settings["weights"]) is None:
        raise Invalid(f"no weights file named {settings['weights']!r}; add one with `odconnect weights add`")
    return settings


def seed_settings(s: Session, model: Model, training_cfg: dict, base: Version | None) -> tuple[dict, Version | None]:
    """Settings a new version starts from: the base given, else published, else last trained, else defaults."""
    if base is None:
        base_id = model.published_version_id or model.last_trained_version_id
        base = s.get(Version, base_id) if base_id else None
    settings = default_settings(training_cfg)
    if base is not None:
        settings.update({k: v for k, v in base.settings.items() if k in SETTING_KEYS})
    return settings, base


def get_draft(store: Store, model_ref) -> dict:
    with store.transaction() as s:
        model = get_model(s, model_ref)
        draft = get_model_part(s, Draft, model, "draft")
        base = s.get(Version, draft.base_version_id) if draft.base_version_id else None
        return draft_view(draft, model, base)


def save_draft(store: Store, training_cfg: dict, presets: list[str], model_ref, settings: dict,
               base_ref=None) -> dict:
    """Create or change the draft; a new draft starts from a base version's settings."""
    with store.transaction() as s:
        model = get_model(s, model_ref)
        draft = s.get(Draft, model.id)
        base = get_version(s, model, base_ref) if base_ref is not None else None
        if draft is None or base is not None:
            seeded, base = seed_settings(s, model, training_cfg, base)
            draft = draft or Draft(model_id=model.id)
            draft.settings = seeded
            draft.base_version_id = base.id if base else None
            s.add(draft)
        else:
            base = s.get(Version, draft.base_version_id) if draft.base_version_id else None
        merged = {**draft.settings, **check_settings(s, model, settings, training_cfg, presets)}
        draft.settings = merged
        draft.updated_at = utcnow()
        s.flush()
        return draft_view(draft, model, base)


def discard_draft(store: Store, model_ref) -> None:
    with store.transaction() as s:
        s.delete(get_model_part(s, Draft, get_model(s, model_ref), "draft"))


def artifact_dir(store: Store, version_id: int) -> str:
    with store.transaction() as s:
        return s.get(Version, version_id).artifact_dir
