"""The promotion gate: whether the version a schedule (or a manual run with a publish policy)
trains replaces the published one, and the history of every such decision.

`publish` is `never` (train only), `always`, or `ifBetter`: publish when
`newScore - publishedScore > publishMargin` (score points, AP50 on 0..100), or when nothing is
published yet. The comparison is fair: both versions are scored on the same images by the same
evaluation code (`connector.training.score_version`): the run's evaluation dataset when it has
one, else the run's own held-out images, on which the published version is scored again. How
many of those images the published version trained on is recorded (`seenByPublished`), since
such images flatter it.

Publishing goes through the publish service (the caller hands it in), so the predictor cache
warms and the "version published" webhook fires as for a publish by hand.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from model_store import Store
from model_store.schema import GateEntry, Model, Schedule, Version, utcnow

from ..errors import Invalid
from ..modeling.artifacts import VersionFiles
from ..views import gate_entry_view
from .catalog import get_model

log = logging.getLogger("odconnect.gate")

POLICIES = ("never", "ifBetter", "always")
MAX_MARGIN = 100.0  # the score is 0..100: a margin of 100 never publishes, -100 always does


def check_policy(publish: str | None, margin) -> tuple[str, float]:
    """(policy, margin) from a request, or Invalid naming what is wrong."""
    if publish not in POLICIES:
        raise Invalid(f"publish must be one of {list(POLICIES)}, not {publish!r}")
    try:
        margin = float(0.0 if margin is None else margin)
    except (TypeError, ValueError):
        raise Invalid(f"publishMargin must be a number of score points, not {margin!r}") from None
    if not math.isfinite(margin) or abs(margin) > MAX_MARGIN:
        raise Invalid(f"publishMargin must be between -{MAX_MARGIN:g} and {MAX_MARGIN:g} score points")
    return publish, margin


# --- entries: a schedule firing (its claim) or a gated manual run --------------------------------

def claim_firing(store: Store, model_id: int, scheduled_for: dt.datetime, fired_by: str) -> tuple[int | None, str]:
    """The history entry of one scheduled firing, created once per (model, scheduled time).

    Returns (entry id, "") for the process that fires, or (None, why not): the schedule is gone,
    or another process already claimed this scheduled time.
    """
    try:
        with store.transaction() as s:
            sch = s.get(Schedule, model_id)
            model = s.get(Model, model_id)
            if sch is None or not sch.enabled or model is None or model.archived_at is not None:
                return None, "no active schedule"
            entry = GateEntry(model_id=model_id, trigger="schedule", scheduled_for=scheduled_for,
                              fired_by=fired_by, publish=sch.publish, publish_margin=sch.publish_margin)
            s.add(entry)
            s.flush()
            return entry.id, ""
    except IntegrityError:
        return None, f"the firing scheduled for {scheduled_for:%Y-%m-%d %H:%M:%S} UTC was claimed by another process"


def open_manual(s: Session, model_id: int, run_id: int, trigger: str, publish: str, margin: float) -> None:
    """A manual run trained with a publish policy gets its entry in the run's own transaction."""
    s.add(GateEntry(model_id=model_id, trigger=trigger, run_id=run_id, publish=publish, publish_margin=margin))


def attach_run(s: Session, entry_id: int, run_id: int) -> None:
    s.get(GateEntry, entry_id).run_id = run_id


def finish(store: Store, entry_id: int, outcome: str, detail: str) -> None:
    with store.transaction() as s:
        entry = s.get(GateEntry, entry_id)
        entry.outcome, entry.detail, entry.finished_at = outcome, detail[:1024], utcnow()


def run_ended(store: Store, run_id: int, status: str, reason: str) -> None:
    """A gated run that failed or was canceled: its entry says so. Never raises."""
    try:
        with store.transaction() as s:
            entry = s.scalar(select(GateEntry).where(GateEntry.run_id == run_id))
            if entry is not None and entry.outcome == "training":
                entry.outcome, entry.finished_at = "failed", utcnow()
                entry.detail = f"run {run_id} {status}: {reason}"[:1024]
    except Exception:
        log.exception("could not record the end of gated run %s", run_id)


# --- the comparison (on the training worker) and the decision ----------------------------------

@dataclass(frozen=True)
class Comparison:
    """The published version, scored again on the images the new version was scored on."""
    published_version_id: int | None = None  # None: nothing was published
    score: float | None = None
    source: str = ""                         # evaluationDataset | heldOut
    images: int = 0
    seen_by_published: int = 0
    error: str = ""                          # the published version could not be scored


def compare(store: Store, plan, result, cancel=None) -> Comparison | None:
    """Score the published version on the new run's evaluation images, on this thread.

    None when the run is not gated. Raises Canceled when the run is canceled meanwhile.
    """
    with store.transaction() as s:
        if s.scalar(select(GateEntry.id).where(GateEntry.run_id == plan.run_id)) is None:
            return None
        model = s.get(Model, plan.model_id)
        if model.published_version_id is None:
            return Comparison()
        published = s.get(Version, model.published_version_id)
        files = VersionFiles.at(published.artifact_dir)
        snapshot = published.data_snapshot
        trained_on = set(snapshot.get("train", [])) - set(snapshot.get("heldOut", []))
        published_id = published.id
    if plan.evaluation is not None:
        records, source = list(plan.evaluation), "evaluationDataset"
    else:
        held_out = set(result.eval_image_ids)
        records, source = [r for r in plan.train if r.image_id in held_out], "heldOut"
    seen = len({r.image_id for r in records} & trained_on)
    from ..training import Canceled, score_version
    try:
        metrics = score_version(files.config, files.weights, records, plan.labels, cancel)
    except Canceled:
        raise
    except Exception as exc:  # a broken published version must not lose the new one
        log.exception("could not score published version %s", published_id)
        return Comparison(published_id, None, source, len(records), seen, f"{exc.__class__.__name__}: {exc}")
    return Comparison(published_id, metrics.get("score"), source, len(records), seen)


def settle(store: Store, run_id: int, version_id: int, comparison: Comparison | None,
           publish: Callable[[int, int], object] | None) -> None:
    """Decide for a gated run whose version was just recorded, publish if so, and record it.

    `publish(model_id, version_number)` is the publish service. Never raises: the run has
    succeeded whatever happens here, and the entry tells what did.
    """
    if comparison is None:
        return
    try:
        with store.transaction() as s:
            entry = s.scalar(select(GateEntry).where(GateEntry.run_id == run_id))
            version = s.get(Version, version_id)
            entry.version_id, entry.new_score = version_id, version.metrics.get("score")
            entry.published_version_id, entry.published_score = comparison.published_version_id, comparison.score
            if comparison.published_version_id is not None:
                entry.compared_on = {"source": comparison.source, "images": comparison.images,
                                     "seenByPublished": comparison.seen_by_published}
            entry_id, model_id, number = entry.id, entry.model_id, version.number
            outcome, detail = decide(entry.publish, entry.publish_margin, entry.new_score, comparison, number)
        if outcome == "published":
            try:
                if publish is None:
                    raise RuntimeError("this process cannot publish")
                publish(model_id, number)
            except Exception as exc:
                log.exception("gate could not publish version %s of model %s", number, model_id)
                outcome, detail = "failed", f"version {number} trained but publishing it failed: {exc}"
        finish(store, entry_id, outcome, detail)
        log.info("gate for run %s: %s (%s)", run_id, outcome, detail)
    except Exception:
        log.exception("promotion gate of run %s failed", run_id)


def decide(policy: str, margin: float, new_score: float | None, comparison: Comparison,
           number: int) -> tuple[str, str]:
    """(outcome, detail) of the gate: trained, published, kept or failed."""
    new = new_score or 0.0
    if policy == "never":
        return "trained", f"version {number} trained (score {new:g}); publish is never"
    if policy == "always":
        return "published", f"version {number} (score {new:g}) published: publish is always"
    if comparison.published_version_id is None:
        return "published", f"version {number} (score {new:g}) published: nothing was published"
    if comparison.error:
        return "failed", (f"version {number} trained, but the published version could not be scored "
                          f"({comparison.error}); nothing was published")
    old = comparison.score or 0.0
    gain = round(new - old, 2)
    if gain > margin:
        return "published", (f"version {number} published: {new:g} vs {old:g} on the same "
                             f"{comparison.images} images, {gain:+g} points, over the margin of {margin:g}")
    return "kept", (f"kept the published version: version {number} scored {new:g} vs {old:g} on the same "
                    f"{comparison.images} images ({gain:+g} points, margin {margin:g})")


# --- reading --------------------------------------------------------------------------------

def history(store: Store, model_ref, limit: int = 50) -> list[dict]:
    """The model's gate entries, newest first."""
    with store.transaction() as s:
        model = get_model(s, model_ref)
        entries = s.scalars(select(GateEntry).where(GateEntry.model_id == model.id)
                            .order_by(GateEntry.id.desc()).limit(limit)).all()
        numbers = dict(s.execute(select(Version.id, Version.number).where(Version.model_id == model.id)).all())
        return [gate_entry_view(e, numbers) for e in entries]


def last_firing(s: Session, model_id: int) -> GateEntry | None:
    return s.scalar(select(GateEntry).where(GateEntry.model_id == model_id, GateEntry.trigger == "schedule")
                    .order_by(GateEntry.id.desc()).limit(1))
