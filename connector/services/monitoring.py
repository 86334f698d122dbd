"""Monitoring: what each version answers in production, per UTC day, and when it drifts.

Figures per version and day: requests (images answered), images with no detection (nothing at
or above the caller's threshold), mean top probability (an image's highest box score, 0.0 when
the version scored none, whatever threshold the caller asked for) and boxes answered per label.
A detect adds to them in memory (`Figures.add`: a lock and a few increments); the production
worker adds them to the MonitoringDay rows every ``monitoring.flush_seconds``.

Baseline: the same figures on the version's evaluation images, recorded with the version
(`add_baseline`, from connector.training.evaluation.prediction_profile).

Drift: a two-sample Kolmogorov-Smirnov test of the per-image top probability, the day's images
against the baseline's. D is the largest gap between the two empirical distribution functions;
its p-value is the asymptotic Kolmogorov distribution with Stephens' small-sample correction,
Q((sqrt(Ne) + 0.12 + 0.11 / sqrt(Ne)) * D), Ne = n*m / (n+m). A version *needs attention* on a day
when p < ``monitoring.drift_alpha`` (0.01), once the day has ``drift_min_images`` (30) images and
the baseline ``min_baseline_images`` (10). The top probability was chosen because it moves both
when images stop showing the objects (it falls, more images have no detection) and when they
look unlike the training images (the model's confidence changes), and it does not depend on the
threshold each caller picks. The test weighs the sample sizes, so a small evaluation set raises
the bar instead of raising false alarms (a fixed cut-off on an effect size such as PSI would not).

An event is kept once per version and day (AttentionEvent's unique key) and emitted as the
``modelNeedsAttention`` webhook, with the reason in words.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from model_store import Store
from model_store.schema import (AttentionEvent, CapturedImage, Model, MonitoringDay, Version, VersionBaseline,
                                utcnow)

from ..routes import monitoring_path
from ..views import attention_view, iso
from . import webhooks
from .catalog import get_model
from .production import Served

if TYPE_CHECKING:
    from ..context import AppContext

log = logging.getLogger("odconnect.monitoring")

# Top probabilities are counted to 3 significant digits (0.734, 0.0102): a relative precision of
# 1% that still tells apart the low scores of a young model; a day's row holds ~1000 keys per decade.
TOP_DIGITS = 3


def top_key(p: float) -> str:
    return f"{p:.{TOP_DIGITS}g}"


# --- counting (request path) -------------------------------------------------------------------

@dataclass
class DayFigures:
    requests: int = 0
    no_detection: int = 0
    top_sum: float = 0.0
    tops: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)

    def merge(self, other: "DayFigures") -> None:
        self.requests += other.requests
        self.no_detection += other.no_detection
        self.top_sum += other.top_sum
        self.tops.update(other.tops)
        self.labels.update(other.labels)


Key = tuple[int, int, dt.date]  # model id, version id, UTC day


class Figures:
    """The figures counted since the last flush, per (model, version, day)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._days: dict[Key, DayFigures] = {}

    def add(self, served: Served) -> None:
        top = served.top
        key = (served.model_id, served.version_id, served.at.date())
        with self._lock:
            f = self._days.get(key)
            if f is None:
                f = self._days[key] = DayFigures()
            f.requests += 1
            f.no_detection += not served.answered
            f.top_sum += top
            f.tops[top_key(top)] += 1
            f.labels.update(served.answered)

    def take(self) -> dict[Key, DayFigures]:
        with self._lock:
            taken, self._days = self._days, {}
        return taken

    def put_back(self, taken: dict[Key, DayFigures]) -> None:
        """After a failed flush: nothing counted is lost."""
        with self._lock:
            for key, f in taken.items():
                self._days.setdefault(key, DayFigures()).merge(f)


# --- writing (the production worker) -------------------------------------------------------------

def _merged(counts: dict, more: Counter) -> dict:
    out = dict(counts or {})
    for k, n in more.items():
        out[k] = out.get(k, 0) + n
    return out


def flush(store: Store, taken: dict[Key, DayFigures]) -> list[Key]:
    """Add the counted figures to their MonitoringDay rows, in one transaction."""
    if not taken:
        return []
    for attempt in (1, 2):  # a second process may insert the same day's row first
        try:
            with store.transaction() as s:
                for (model_id, version_id, day), f in taken.items():
                    row = s.scalar(select(MonitoringDay).where(MonitoringDay.version_id == version_id,
                                                               MonitoringDay.day == day).with_for_update())
                    if row is None:
                        row = MonitoringDay(model_id=model_id, version_id=version_id, day=day, requests=0,
                                            no_detection=0, top_sum=0.0, top_counts={}, label_counts={})
                        s.add(row)
                    row.requests += f.requests
                    row.no_detection += f.no_detection
                    row.top_sum += f.top_sum
                    row.top_counts = _merged(row.top_counts, f.tops)  # a new dict: JSON columns see it changed
                    row.label_counts = _merged(row.label_counts, f.labels)
            return list(taken)
        except IntegrityError:
            if attempt == 2:
                raise
    return []


def add_baseline(session, version_id: int, metrics: dict) -> None:
    """Called where a version is recorded, in the same transaction: its evaluation profile."""
    profile = (metrics or {}).get("prediction_profile")
    if profile and profile.get("images"):
        session.add(VersionBaseline(version_id=version_id, images=profile["images"], profile=profile))


# --- the drift test ------------------------------------------------------------------------------

def kolmogorov_q(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution: 2 * sum_k (-1)^(k-1) exp(-2 k^2 lam^2)."""
    if lam < 0.2:  # the series converges slowly here, and Q is 1 to 7 digits
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = 2 * (-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
    return min(1.0, max(0.0, total))


def ks_test(baseline: list[float], counts: dict[str, int]) -> tuple[float, float, int, int]:
    """(D, p, n, m): two-sample KS of baseline values against counted values ("0.734": images);
    the baseline is rounded as the counts are (ties make the test conservative)."""
    base = sorted(float(top_key(float(x))) for x in baseline)
    prod = sorted((float(k), int(c)) for k, c in counts.items() if int(c) > 0)
    n, m = len(base), sum(c for _, c in prod)
    if not n or not m:
        return 0.0, 1.0, n, m
    d, i, j, below = 0.0, 0, 0, 0
    for value in sorted(set(base) | {v for v, _ in prod}):
        while i < n and base[i] <= value:
            i += 1
        while j < len(prod) and prod[j][0] <= value:
            below += prod[j][1]
            j += 1
        d = max(d, abs(i / n - below / m))
    ne = n * m / (n + m)
    return d, kolmogorov_q((math.sqrt(ne) + 0.12 + 0.11 / math.sqrt(ne)) * d), n, m


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def day_figures(row: MonitoringDay) -> dict:
    return {"requests": row.requests, "noDetection": row.no_detection,
            "noDetectionRate": _rate(row.no_detection, row.requests),
            "meanTopProbability": round(row.top_sum / row.requests, 4) if row.requests else None,
            "labels": [{"tagName": k, "count": v} for k, v in sorted(row.label_counts.items())]}


def drift(row: MonitoringDay, baseline: VersionBaseline | None, cfg: dict) -> dict:
    """The drift test of one version's day, with a note saying why it was not run when it was not."""
    out = {"statistic": None, "pValue": None, "images": row.requests,
           "baselineImages": baseline.images if baseline else 0, "needsAttention": False, "note": None}
    if baseline is None:
        out["note"] = "no baseline: the version was recorded before monitoring existed"
    elif baseline.images < cfg["min_baseline_images"]:
        out["note"] = (f"the baseline has {baseline.images} evaluation images; the test needs "
                       f"{cfg['min_baseline_images']}")
    elif row.requests < cfg["drift_min_images"]:
        out["note"] = f"{row.requests} images so far; the test needs {cfg['drift_min_images']}"
    else:
        d, p, _, _ = ks_test(baseline.profile.get("topScores", []), row.top_counts)
        out.update(statistic=round(d, 4), pValue=float(f"{p:.3g}"), needsAttention=p < cfg["drift_alpha"])
    return out


def _reason(version: int, day: dt.date, figures: dict, test: dict, baseline: VersionBaseline, alpha: float) -> str:
    profile = baseline.profile
    rate, base_rate = figures["noDetectionRate"], profile.get("noDetectionRate")
    return (f"the {test['images']} images version {version} answered on {day.isoformat()} do not look like its "
            f"{baseline.images} evaluation images: the top probabilities differ (Kolmogorov-Smirnov "
            f"D = {test['statistic']:.2f}, p = {test['pValue']:.2g} < {alpha:g}); mean top probability "
            f"{figures['meanTopProbability']:.2f} against {profile.get('meanTopProbability') or 0:.2f}, "
            f"images with no detection {rate:.0%} against {base_rate or 0:.0%}")


def check_drift(store: Store, cfg: dict, keys: list[Key]) -> list[int]:
    """Test each (model, version, day) just flushed; keep and emit an event where one is due.
    Returns the ids of the events made."""
    made = []
    for model_id, version_id, day in keys:
        with store.transaction() as s:
            if s.scalar(select(AttentionEvent.id).where(AttentionEvent.version_id == version_id,
                                                        AttentionEvent.day == day)) is not None:
                continue  # at most one event per version and day
            row = s.scalar(select(MonitoringDay).where(MonitoringDay.version_id == version_id,
                                                       MonitoringDay.day == day))
            baseline = s.get(VersionBaseline, version_id)
            if row is None:
                continue
            test = drift(row, baseline, cfg)
            if not test["needsAttention"]:
                continue
            model, version = s.get(Model, model_id), s.get(Version, version_id)
            figures = day_figures(row)
            reason = _reason(version.number, day, figures, test, baseline, cfg["drift_alpha"])
            payload = {
                "occurred": iso(utcnow()), "modelId": model.id, "modelName": model.name,
                "version": version.number, "versionId": version.id, "day": day.isoformat(), "code": "drift",
                "reason": reason, "images": row.requests, "statistic": test["statistic"],
                "pValue": test["pValue"], "alpha": cfg["drift_alpha"],
                "noDetectionRate": figures["noDetectionRate"],
                "baselineNoDetectionRate": baseline.profile.get("noDetectionRate"),
                "meanTopProbability": figures["meanTopProbability"],
                "baselineMeanTopProbability": baseline.profile.get("meanTopProbability"),
                "monitoringUrl": monitoring_path(model.id),
            }
        try:
            with store.transaction() as s:
                event = AttentionEvent(model_id=model_id, version_id=version_id, day=day, reason=reason[:1024],
                                       figures={k: v for k, v in payload.items() if k not in ("occurred", "reason")})
                s.add(event)
                s.flush()
                made.append(event.id)
        except IntegrityError:  # another process made today's event first
            continue
        log.warning("model %s version %s needs attention: %s", payload["modelName"], payload["version"], reason)
        try:
            webhooks.emit(store, webhooks.MODEL_NEEDS_ATTENTION, model_id, payload)
        except Exception:  # the event is kept (the API shows it) even when its webhook could not be queued
            log.exception("could not emit %s for model %s", webhooks.MODEL_NEEDS_ATTENTION, model_id)
    return made


# --- the API's use case --------------------------------------------------------------------------

def scrape_figures(store: Store) -> dict:
    """Per model name, for /metrics: captured images waiting for review, and the "needs attention"
    events raised so far."""
    with store.transaction() as s:
        pending = s.execute(select(Model.name, func.count(CapturedImage.image_id))
                            .join(CapturedImage, CapturedImage.model_id == Model.id)
                            .where(CapturedImage.status == "pending").group_by(Model.name)).all()
        attention = s.execute(select(Model.name, func.count(AttentionEvent.id))
                              .join(AttentionEvent, AttentionEvent.model_id == Model.id).group_by(Model.name)).all()
    return {"captured": dict(pending), "attention": dict(attention)}


def report(ctx: "AppContext", model_ref, days: int = 7) -> dict:
    """The model's figures of the last `days` UTC days (today included), newest first, with the
    drift test of each version's day, the baselines and the attention events."""
    cfg = ctx.config["monitoring"]
    ctx.production.flush()  # what this process counted until now
    today = dt.datetime.now(dt.timezone.utc).date()
    since = today - dt.timedelta(days=days - 1)
    with ctx.store.transaction() as s:
        model = get_model(s, model_ref, include_archived=True)
        rows = s.scalars(select(MonitoringDay).where(MonitoringDay.model_id == model.id, MonitoringDay.day >= since)
                         .order_by(MonitoringDay.day.desc(), MonitoringDay.version_id.desc())).all()
        version_ids = {r.version_id for r in rows} | ({model.published_version_id} if model.published_version_id else set())
        numbers = dict(s.execute(select(Version.id, Version.number).where(Version.id.in_(version_ids))).all())
        baselines = {b.version_id: b for b in s.scalars(select(VersionBaseline).where(
            VersionBaseline.version_id.in_(version_ids)))}
        events = s.scalars(select(AttentionEvent).where(AttentionEvent.model_id == model.id, AttentionEvent.day >= since)
                           .order_by(AttentionEvent.day.desc(), AttentionEvent.id.desc())).all()
        return {
            "model": {"id": model.id, "name": model.name},
            "days": days,
            "publishedVersion": numbers.get(model.published_version_id),
            "driftTest": {"statistic": "Kolmogorov-Smirnov D of the per-image top probability",
                          "alpha": cfg["drift_alpha"], "minImages": cfg["drift_min_images"],
                          "minBaselineImages": cfg["min_baseline_images"]},
            "figures": [{"day": r.day.isoformat(), "version": numbers[r.version_id], **day_figures(r),
                         "drift": drift(r, baselines.get(r.version_id), cfg)} for r in rows],
            "baselines": [{"version": numbers[v], "images": b.images,
                           "noDetectionRate": b.profile.get("noDetectionRate"),
                           "meanTopProbability": b.profile.get("meanTopProbability"),
                           "boxesPerImage": b.profile.get("boxesPerImage", {})}
                          for v, b in sorted(baselines.items(), key=lambda kv: -numbers[kv[0]])],
            "attention": [attention_view(e, numbers.get(e.version_id)) for e in events],
        }
