"""Every setting odconnect has, with its default, in one tree.

Like detectron2's ``config/defaults.py``: the defaults live here and nowhere
else. A YAML file (``--config`` or ``ODCONNECT_CONFIG``) and environment
variables (``ODCONNECT_<SECTION>__<KEY>``, e.g. ``ODCONNECT_SERVER__PORT=9000``)
override them, in that order. ``create_app`` receives the merged tree: nothing
reads the environment after start-up.

Overrides are strict: a key that is not in DEFAULTS, or a value of another kind than its
default, is a ConfigError naming the setting (and the nearest known one), so a typo such as
``ODCONNECT_SERVER__PROT`` fails at start instead of being ignored.
"""
from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any, Mapping

import yaml

MB = 1024 * 1024

DEFAULTS: dict[str, Any] = {
    "server": {
        "host": "127.0.0.1",
        "port": 8080,
        # The address clients reach the server at (e.g. https://od.example.org behind a proxy or
        # tunnel). Location headers and webhook links use it; empty means the request's own host
        # for Location headers and server-relative links in webhook payloads.
        "public_url": "",
        # Keep tensor memory in the process between requests (see connector/malloc_tuning.py).
        "tune_malloc": True,
    },
    "storage": {
        # Everything the service writes lives under this folder.
        "root": "./data",
        # Any SQLAlchemy URL; empty means SQLite at <root>/odconnect.db.
        "database_url": "",
        # Server-side COCO import reads only below this folder; empty disables it.
        "import_root": "",
    },
    "security": {
        # Admin keys accepted in the X-API-Key header. ODCONNECT_API_KEYS (comma separated)
        # also works. `odconnect serve` creates <root>/api_key when none is set. Scoped keys
        # (`odconnect keys create`) live in the store and need no setting.
        "api_keys": [],
        # Past this many unknown or revoked keys from one client address in a minute, requests
        # with an unknown key get 429 and Retry-After instead of 401 (0: never).
        "unknown_keys_per_minute": 30,
    },
    "connector": {
        # What the generated Power Platform connector says about its publisher (apiProperties.json,
        # the definition's contact and metadata, the readme): whoever runs the server. Unset values
        # become placeholders under the reserved .invalid domain, which `odconnect connector lint`
        # refuses for a real tenant.
        "publisher": "",
        "website": "",
        "privacy_policy": "",
        "contact_name": "",
        "contact_email": "",
        "contact_url": "",
        # #RRGGBB; certification refuses #007ee5 and #ffffff.
        "brand_color": "#0F6C5C",
        # Offer an on-premises data gateway in the connection (a server only your network reaches).
        "gateway": False,
    },
    "limits": {
        "max_image_bytes": 6 * MB,
        # Small pictures are accepted (detectron2 scales every image to the preset's size); the
        # data check advises on pictures under data_check.small_image_side.
        "min_side": 32,
        "max_side": 10240,
        "formats": ["JPEG", "PNG", "BMP", "GIF", "WEBP"],
        "max_files_per_upload": 64,
        "max_import_bytes": 2048 * MB,
    },
    "data_check": {
        # Fewer images than this for a label blocks training. Custom Vision asks for 15; with the
        # pretrained default preset 5 labeled images per label already train a useful model.
        "min_images_per_label": 5,
        # Under this many, advice: the score will vary from run to run and on new pictures.
        "stable_images_per_label": 15,
        # Under this many, advice: the score may be optimistic.
        "advised_images_per_label": 50,
        "max_imbalance_ratio": 2.0,
        # Pictures under this many pixels on their shorter side get advice (they still train).
        "small_image_side": 256,
        # Two boxes of one label overlapping this much (IoU) on an image are advice: one object
        # boxed twice teaches the model to count it twice.
        "duplicate_box_iou": 0.9,
    },
    "training": {
        # Runs queue and train one at a time per server process: detectron2 keeps training
        # state process-wide.
        "default_preset": "fast",
        "default_budget_minutes": 10,
        "max_budget_minutes": 24 * 60,
        "retry_after_seconds": 5,
        "seed": 0,
        # detectron2 cfg key -> value applied to every run (tests shrink images and iterations here).
        "overrides": {},
    },
    "jobs": {
        # A Redis URL moves training (and dataset suggestion jobs) to Celery workers
        # (`odconnect worker`) on a "train" queue; empty keeps the in-process runner.
        "broker_url": "",
        "queue": "train",
        # A training run's process writes a heartbeat this often; a run whose heartbeat is older
        # than stale_after_seconds (its worker was killed) is failed by the API's reaper, which
        # looks every reaper_seconds: a killed worker's run ends within stale + reaper seconds.
        "heartbeat_seconds": 10.0,
        "stale_after_seconds": 45.0,
        "reaper_seconds": 15.0,
        # CPU threads of a worker's training (torch.set_num_threads); 0: torch's default, every
        # core. Several workers on one machine each want cores / workers: more threads than cores
        # makes every run many times slower, not a little.
        "worker_threads": 0,
    },
    "scheduler": {
        # Any number of server processes may share one database; the one holding the scheduler
        # lease fires the schedules. It renews the lease every renew_seconds; when it dies, another
        # process takes over at most lease_seconds + renew_seconds later, and fires what fell due
        # meanwhile (within misfire_grace_seconds). See connector/jobs/leader.py.
        "lease_seconds": 15.0,
        "renew_seconds": 5.0,
        "misfire_grace_seconds": 3600,
        # Allow a sixth, leading seconds field in schedule crons ("*/5 * * * * *"); tests fire a
        # real schedule every few seconds with it. Off: five fields, at most one firing a minute.
        "cron_seconds": False,
    },
    "suggestions": {
        # Suggesting boxes for a whole dataset (ML-assisted labeling) runs as a job. When the
        # model has no trained version yet, the job first trains a labeling model, provided every
        # label has at least this many images with approved boxes.
        "labeling_min_images_per_label": 5,
        # Training settings of that labeling model's run: short, it only has to pre-label.
        "labeling_settings": {"budgetMinutes": 5},
        "retry_after_seconds": 2,
    },
    "inference": {
        "cache_size": 4,
        # How often each server process loads versions published by another process.
        "warm_poll_seconds": 5.0,
        "torch_threads": 2,
        # Probability a detection needs when the caller gives no threshold. Empty (None): each
        # label's own threshold, chosen when its version was trained so that counts come out
        # right; a number applies that one value to every label instead.
        "default_threshold": None,
        "max_batch": 16,
        # What runs published versions: auto (ONNX Runtime when the version's ONNX export predicts
        # what torch predicts, checked at publish; torch otherwise), onnxruntime (publish fails when
        # it cannot), torch (never exported). See connector/services/engine_choice.py.
        "engine": "auto",
        # Intra-op threads of each ONNX Runtime session (0: as many as the machine has cores).
        # A lone request then uses every core; overlapping requests share them (measured on 2
        # cores: a lone pass 48 ms instead of 73 with 1 thread, 24 passes/s from 4 clients either
        # way). The pool's idle threads sleep, so they do not spin on cores training needs.
        "onnx_threads": 0,
        # The forward pass of the only request in progress runs on a second session whose pool
        # threads spin between the graph's steps instead of sleeping (a lone int8 detect about
        # 3.5 ms faster); passes of overlapping requests keep the sleeping one, where spinning
        # would hold cores other requests need. See onnx_predictor.py.
        "onnx_spin_when_alone": True,
        # How many of the version's evaluation images the publish-time check compares on.
        "verify_images": 8,
        # Whether onnxruntime may serve a version quantized to int8 (about 2x faster on CPU): auto
        # quantizes at publish, calibrated on training images, and serves int8 only when AP50 and
        # AP on the evaluation images stay within int8_max_ap_drop of float; off never quantizes.
        "int8": "auto",
        "int8_max_ap_drop": 0.01,
        # Most evaluation images the int8 check scores both precisions on; when int8 serves, its
        # answers on them become the version's monitoring baseline.
        "int8_check_images": 100,
    },
    "webhooks": {
        # Deliveries wait in the store and are retried: attempt n waits
        # backoff_base_seconds * 2**(n-1) (at most backoff_max_seconds); after
        # max_attempts the delivery is marked failed.
        "enabled": True,
        "max_attempts": 8,
        "backoff_base_seconds": 5.0,
        "backoff_max_seconds": 3600.0,
        "timeout_seconds": 10.0,
        # How often the dispatcher looks for due deliveries (an emit also wakes it).
        "poll_seconds": 2.0,
        "workers": 2,
        # A delivery being sent is leased this long; a crash mid-send retries it after.
        "lease_seconds": 120.0,
        "signature_header": "X-Odconnect-Signature",
        # Callback URLs must be https and resolve to public addresses only (connector/net_guard.py).
        # allow_loopback lets them point at this machine (http too): local receivers and tests.
        "allow_loopback": False,
        # Private networks receivers may be in, as CIDRs (e.g. ["10.20.0.0/16"]): on-premises receivers.
        "allowed_networks": [],
    },
    "capture": {
        # Keeping what flows send to detect is opt-in per model (PUT /models/{id}/capture); these are
        # the values a model's settings start from.
        "band_low": 0.3,
        "band_high": 0.7,
        "sample_rate": 0.1,
        "max_images": 1000,
        "retention_days": 30,
        # Detect hands kept images to a bounded queue that one background thread writes; when it
        # is full (items or bytes) the capture is dropped and counted, never waited for.
        "queue_size": 256,
        "queue_max_bytes": 128 * MB,
        # How long a model's capture setting is cached; a change made through this process applies
        # at once, one made through another process after at most this long.
        "settings_ttl_seconds": 30.0,
        # How often images past their model's retention are purged.
        "purge_interval_seconds": 600.0,
        # Seed of the `sample` mode's random draws; -1 takes a fresh seed at each start.
        "sample_seed": -1,
    },
    "monitoring": {
        # Per version and UTC day: requests, images with no detection, top probabilities, boxes per
        # label. Counted in memory and written every flush_seconds by the capture thread.
        "enabled": True,
        "flush_seconds": 60.0,
        # Drift: two-sample Kolmogorov-Smirnov test of the per-image top probability, a day's
        # images against the version's evaluation images; "needs attention" when p < drift_alpha,
        # once the day has drift_min_images images and the baseline min_baseline_images.
        "drift_alpha": 0.01,
        "drift_min_images": 30,
        "min_baseline_images": 10,
    },
}


# Settings whose value is a free-form mapping (their keys are not odconnect's).
FREE_FORM = {"training.overrides", "suggestions.labeling_settings"}


# The values a setting may take where its kind alone does not say enough.
CHOICES = {"inference.engine": ("auto", "onnxruntime", "torch"), "inference.int8": ("auto", "off")}


class ConfigError(ValueError):
    """A setting that does not exist or has a value of the wrong kind."""


def _kind_ok(default: Any, value: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        return isinstance(value, list)
    if isinstance(default, dict):
        return isinstance(value, Mapping)
    return True


def _deep_merge(base: dict, override: Mapping, source: str, prefix: str = "") -> dict:
    """Merge `override` into `base`, refusing keys `base` does not have (see the module docstring)."""
    if not isinstance(override, Mapping):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'the configuration'} must be a mapping")
    for key, value in override.items():
        path = f"{prefix}{key}"
        if key not in base:
            near = difflib.get_close_matches(path, list(_known_paths(DEFAULTS)), n=1)
            hint = f"; did you mean {near[0]}?" if near else ""
            raise ConfigError(f"{source}: unknown setting {path}{hint}")
        if not _kind_ok(base[key], value):
            raise ConfigError(f"{source}: {path} must be {type(base[key]).__name__}, "
                              f"not {type(value).__name__} ({value!r})")
        if path in CHOICES and value not in CHOICES[path]:
            raise ConfigError(f"{source}: {path} must be one of {', '.join(CHOICES[path])}, not {value!r}")
        if isinstance(base[key], dict) and path not in FREE_FORM:
            _deep_merge(base[key], value, source, path + ".")
        else:
            base[key] = copy.deepcopy(value)
    return base


def _known_paths(tree: Mapping, prefix: str = ""):
    for key, value in tree.items():
        path = f"{prefix}{key}"
        yield path
        if isinstance(value, dict) and path not in FREE_FORM:
            yield from _known_paths(value, path + ".")


def _merge_env(cfg: dict, environ: Mapping[str, str]) -> None:
    """ODCONNECT_SECTION__KEY=value sets section.key (the value parsed as YAML), one variable at a
    time so that an error names the variable."""
    for name in sorted(environ):
        if not name.startswith("ODCONNECT_") or "__" not in name:
            continue
        raw = environ[name]
        path = name[len("ODCONNECT_"):].lower().split("__")
        value: Any = yaml.safe_load(raw) if raw else raw
        if isinstance(cfg_default(path), str) and not isinstance(value, str):
            value = raw  # a string setting keeps what was written (e.g. a port-like host name)
        for part in reversed(path):
            value = {part: value}
        _deep_merge(cfg, value, f"environment variable {name}")
    if environ.get("ODCONNECT_API_KEYS"):
        keys = [k.strip() for k in environ["ODCONNECT_API_KEYS"].split(",") if k.strip()]
        cfg["security"]["api_keys"] = keys


def cfg_default(path: list[str]) -> Any:
    """The default at a path of keys, or None where there is none."""
    node: Any = DEFAULTS
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def load_config(path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None,
                overrides: Mapping | None = None) -> dict:
    """Defaults <- YAML file <- environment <- explicit overrides (tests)."""
    environ = os.environ if environ is None else environ
    cfg = copy.deepcopy(DEFAULTS)
    path = path or environ.get("ODCONNECT_CONFIG")
    if path:
        with open(path, encoding="utf-8") as fh:
            try:
                loaded = yaml.safe_load(fh) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"config file {path}: not valid YAML ({exc})") from exc
        _deep_merge(cfg, loaded, f"config file {path}")
    _merge_env(cfg, environ)
    if overrides:
        _deep_merge(cfg, overrides, "overrides")
    return finalize(cfg)


def finalize(cfg: dict) -> dict:
    """Resolve derived values (absolute root, default database URL)."""
    root = Path(cfg["storage"]["root"]).expanduser().resolve()
    cfg["storage"]["root"] = str(root)
    if not cfg["storage"]["database_url"]:
        cfg["storage"]["database_url"] = f"sqlite:///{root / 'odconnect.db'}"
    if cfg["storage"]["import_root"]:
        cfg["storage"]["import_root"] = str(Path(cfg["storage"]["import_root"]).expanduser().resolve())
    return cfg
