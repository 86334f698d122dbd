"""Which engine serves a version, torch or onnxruntime: decided once, at publish, and recorded.

``inference.engine`` says how:

* ``auto``: publishing exports the version to ONNX and runs both engines on some of the
  version's own pictures (its evaluation images; else training images; else drawn ones when no
  stored picture can be read). Every box must match (``onnx_verify``: same label, IoU >= 0.99,
  probability within 0.01); then onnxruntime serves it, else torch, with the reason recorded.
  A version that keeps no box on those pictures at its own threshold (barely trained) is
  compared on every candidate instead (threshold 0): comparing no boxes would check nothing.
* ``onnxruntime``: the same export and check, but a version that fails them is not published
  (409 with the reason).
* ``torch``: nothing is exported; torch serves every version.

When onnxruntime serves, ``inference.int8`` then decides its precision (precision_choice: the
int8 network only when AP held on the evaluation images). Publishing again with int8 on decides
again for a version that was never quantized.

The decision is recorded in the version's row of ``version_engines`` (name, reason, images
compared, where they came from, the setting it was made under, when; the version's ``engine``
field on the wire). Every process reads it from the
database when it loads the version, so a multi-process server, a restart or another worker
serves the engine decided at publish without exporting or checking again. Publishing again
under another setting decides again. A version that was never published (a quick test of the
last trained one) is served by torch unless the setting is ``onnxruntime``, which decides then.
"""
from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from model_store import Store
from model_store.schema import Image, Version, VersionBaseline, VersionEngine, utcnow

from ..errors import Conflict
from ..metrics import requests_in_flight
from ..modeling.artifacts import VersionFiles
from ..inference.engines import ONNXRUNTIME, TORCH, build_onnxruntime, build_torch
from .precision_choice import FLOAT32, INT8, PrecisionChoice, choose_precision

if TYPE_CHECKING:
    from ..inference.cache import PredictorCache
    from ..inference.model_thread import ModelThread

__all__ = ["choose", "serve", "predictor_loader", "verification_images", "stored_images"]

log = logging.getLogger("odconnect.inference")


def _satisfies(record: VersionEngine | None, setting: str) -> bool:
    """Whether a recorded decision stands under the current setting (else publish decides again)."""
    if record is None:
        return False
    if setting in (TORCH, ONNXRUNTIME):
        return record.name == setting
    return record.setting in ("auto", ONNXRUNTIME)  # auto: any decision that tried the export


def _int8_untried(record: VersionEngine, config: dict, folder: str) -> bool:
    """int8 is on, onnxruntime serves the version in float, and it was never quantized (decided
    while int8 was off, or the quantization failed): publishing decides again."""
    return (config["inference"]["int8"] != "off" and record.name == ONNXRUNTIME and record.precision == FLOAT32
            and not VersionFiles.at(folder).int8.exists())


def serving_engine(record: VersionEngine | None, setting: str) -> str | None:
    """The engine a process serves a version with; None: onnxruntime is required and not decided yet."""
    if setting == TORCH:
        return TORCH
    if setting == ONNXRUNTIME:
        return ONNXRUNTIME if record and record.name == ONNXRUNTIME else None
    return record.name if record else TORCH


# --- the pictures the check compares on ------------------------------------------------------

def _drawn_images() -> list[tuple[str, bytes]]:
    """Three drawn pictures (shapes on gradients, landscape, portrait, square) for a version
    whose stored pictures are all gone: enough to catch a wrong layout or decoding."""
    from PIL import Image as PILImage, ImageDraw

    out = []
    for k, (w, h) in enumerate([(640, 480), (480, 640), (512, 512)]):
        img = PILImage.linear_gradient("L").resize((w, h)).convert("RGB")
        draw = ImageDraw.Draw(img)
        for j in range(4):
            x, y = (60 + 130 * j + 17 * k) % (w - 120), (40 + 110 * j + 29 * k) % (h - 120)
            draw.rectangle([x, y, x + 90, y + 70], fill=((200 * j) % 256, 80 + 40 * k, 220 - 50 * j))
            draw.ellipse([y % (w - 80), x % (h - 80), y % (w - 80) + 70, x % (h - 80) + 70], fill=(30, 60, 220))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        out.append((f"drawn-{k + 1}.jpg", buf.getvalue()))
    return out


def stored_images(store: Store, version_id: int, count: int,
                  sources=("evaluation", "training")) -> tuple[str | None, list[tuple[str, bytes]]]:
    """(where they came from, [(name, bytes)]): up to ``count`` readable pictures of the first of
    ``sources`` (the version's evaluation images: held out or its evaluation dataset; its
    training images) that has any; (None, []) when none has."""
    with store.transaction() as s:
        snapshot = s.get(Version, version_id).data_snapshot or {}
        ids_of = {"evaluation": snapshot.get("scored") or snapshot.get("evaluation") or [],
                  "training": snapshot.get("train") or []}
        for source in sources:
            ids = ids_of[source]
            rows = {img.id: img for img in s.scalars(select(Image).where(Image.id.in_(list(ids))))} if ids else {}
            images = []
            for image_id in ids:
                img = rows.get(image_id)
                if img is None:
                    continue
                try:
                    images.append((img.name or f"image-{img.id}", store.blobs.path(img.sha256).read_bytes()))
                except (OSError, ValueError):  # a blob that is gone: try the next picture
                    continue
                if len(images) >= count:
                    break
            if images:
                return source, images
    return None, []


def verification_images(store: Store, version_id: int, count: int) -> tuple[str, list[tuple[str, bytes]]]:
    """(where they came from, [(name, bytes)]): up to ``count`` of the version's evaluation images,
    else of its training images, else drawn pictures."""
    source, images = stored_images(store, version_id, count)
    return (source, images) if images else ("drawn", _drawn_images()[:max(1, count)])


# --- deciding ---------------------------------------------------------------------------------

def _export_and_verify(folder: str, images: list[tuple[str, bytes]], torch_threads: int,
                       onnx_threads: int) -> tuple[bool, str, int]:
    """(served by onnxruntime?, why, pictures compared) of exporting the version and comparing
    both engines on ``images``. Runs on the model thread: it runs the torch model."""
    from ..inference.onnx_export import OnnxExportError, export_onnx
    from ..inference.onnx_predictor import OnnxPredictor
    from ..inference.onnx_verify import set_score_threshold, verify
    from ..modeling.predictor import Predictor

    try:
        export_onnx(folder)
    except OnnxExportError as exc:
        return False, f"the ONNX export failed: {exc}", 0
    try:
        onnx_predictor = OnnxPredictor(folder, num_threads=onnx_threads)
    except Exception as exc:  # a graph onnxruntime cannot open
        return False, f"onnxruntime cannot open the ONNX export: {type(exc).__name__}: {exc}", 0
    files = VersionFiles.at(folder)
    torch_predictor = Predictor(files.config, files.weights, num_threads=torch_threads)
    report, where = verify(torch_predictor, onnx_predictor, images), ""
    if report.ok and not report.matched:
        # no box at the model's own threshold (a barely trained model): compare every candidate
        # the post-processing keeps, up to the model's cap per picture, instead
        set_score_threshold(torch_predictor, onnx_predictor, 0.0)
        report, where = verify(torch_predictor, onnx_predictor, images), " at probability threshold 0"
    if not report.ok:
        first = report.unmatched[0]
        return False, (f"the ONNX export does not predict what torch predicts{where} on {report.summary()}; "
                       f"e.g. on {first['image']!r} only {first['engine']} has {first['label']} "
                       f"{first['probability']:.3f} at {first['box']}"), report.images
    if not report.matched:
        return False, f"neither engine finds a box{where} on {report.images} images: nothing to compare", report.images
    return True, f"the ONNX export predicts what torch predicts{where} on {report.summary()}", report.images


def _store_record(store: Store, record: VersionEngine, baseline: dict | None = None) -> VersionEngine:
    """Replace the version's decision and, given the profile of what now serves it, its
    monitoring baseline, in one transaction."""
    with store.transaction() as s:
        if baseline and baseline.get("images"):
            s.merge(VersionBaseline(version_id=record.version_id, images=baseline["images"], profile=baseline))
        return s.merge(record)


def choose(store: Store, config: dict, model_thread: "ModelThread", version_id: int) -> VersionEngine:
    """The version's engine decision under the current setting: the recorded one when it stands,
    else a new one (export and check), recorded. Raises Conflict when ``inference.engine`` is
    onnxruntime and the version cannot be served by it."""
    inference = config["inference"]
    setting = inference["engine"]
    with store.transaction() as s:
        version = s.get(Version, version_id)
        record, folder, number = version.engine, version.artifact_dir, version.number
    if _satisfies(record, setting) and not _int8_untried(record, config, folder):
        return record
    baseline = None  # the training's profile stays the baseline unless the precision check made one
    if setting == TORCH:
        record = VersionEngine(name=TORCH, reason="inference.engine is torch: the version is not exported",
                               verified_on=0, image_source=None, precision=FLOAT32)
    else:
        source, images = verification_images(store, version_id, inference["verify_images"])
        ok, reason, compared = model_thread.call(_export_and_verify, folder, images,
                                                 inference["torch_threads"], inference["onnx_threads"])
        if compared:
            reason += f" ({source} images)"
        log.info("version %s (id %s): %s", number, version_id, reason)
        if not ok and setting == ONNXRUNTIME:
            raise Conflict(f"version {number} cannot be served by onnxruntime (inference.engine is "
                           f"onnxruntime): {reason}")
        choice = choose_precision(store, config, folder, version_id) if ok else PrecisionChoice(FLOAT32, "")
        if ok:
            reason += f"; {choice.why}"
            log.info("version %s (id %s): %s", number, version_id, choice.why)
        record = VersionEngine(name=ONNXRUNTIME if ok else TORCH, reason=reason[:2048], verified_on=compared,
                               image_source=source if compared else None, precision=choice.precision)
        baseline = choice.profile
    record.version_id, record.setting, record.decided_at = version_id, setting, utcnow()
    return _store_record(store, record, baseline)


# --- serving ----------------------------------------------------------------------------------

def serves_int8(record: VersionEngine | None, config: dict) -> bool:
    """Whether onnxruntime serves the version's int8 network: decided so at publish, and
    ``inference.int8`` of this process is not off."""
    return record is not None and record.precision == INT8 and config["inference"]["int8"] != "off"


def _precision(record: VersionEngine | None, config: dict) -> str:
    return INT8 if serves_int8(record, config) else FLOAT32


def _answering_one_request() -> bool:
    """No HTTP request but the one asking is in progress in this process (see onnx_predictor's
    ``alone``): a forward pass may then keep every core busy."""
    return requests_in_flight() <= 1


def predictor_loader(store: Store, config: dict, model_thread: "ModelThread"):
    """What the predictor cache calls on a miss: the version's predictor for its recorded engine,
    warmed up (see connector.inference.engines for where each engine computes)."""
    inference = config["inference"]

    def load(version_id: int):
        with store.transaction() as s:
            version = s.get(Version, version_id)
            folder, record = version.artifact_dir, version.engine
        engine = serving_engine(record, inference["engine"])
        if engine is None:  # onnxruntime required and never decided for this version: decide now
            record = choose(store, config, model_thread, version_id)
            engine = record.name
        if engine == ONNXRUNTIME:
            try:
                return build_onnxruntime(folder, inference["onnx_threads"], int8=serves_int8(record, config),
                                         alone=_answering_one_request if inference["onnx_spin_when_alone"] else None)
            except Exception as exc:
                if inference["engine"] == ONNXRUNTIME:
                    raise Conflict(f"the ONNX export of version id {version_id} cannot be loaded: {exc}") from exc
                log.exception("version id %s: its ONNX export cannot be loaded; torch serves it", version_id)
        return build_torch(folder, model_thread, inference["torch_threads"])
    return load


def serve(store: Store, config: dict, model_thread: "ModelThread", cache: "PredictorCache",
          version_id: int) -> VersionEngine:
    """Decide (or read) the version's engine and have its predictor loaded and warm in ``cache``;
    returns the decision. A predictor cached earlier for the other engine (a quick test before
    publishing) is replaced."""
    record = choose(store, config, model_thread, version_id)
    engine = serving_engine(record, config["inference"]["engine"])
    cached = cache.get(version_id)
    if cached.engine != engine or (engine == ONNXRUNTIME and cached.precision != _precision(record, config)):
        cache.discard(version_id)
        cache.get(version_id)
    return record
