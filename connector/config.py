"""Every setting odconnect has, with its default, in one tree.

Like detectron2's ``config/defaults.py``: the defaults live here and nowhere
else. A YAML file (``--config`` or ``ODCONNECT_CONFIG``) and environment
variables (``ODCONNECT_<SECTION>__<KEY>``, e.g. ``ODCONNECT_SERVER__PORT=9000``)
override them, in that order. ``create_app`` receives the merged tree: nothing
reads the environment after start-up.
"""
from __future__ import annotations

import copy
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
        # Keys accepted in the header below. ODCONNECT_API_KEYS (comma separated)
        # also works. `odconnect serve` creates <root>/api_key when none is set.
        "api_keys": [],
        "header": "X-API-Key",
    },
    "limits": {
        "max_image_bytes": 6 * MB,
        "min_side": 256,
        "max_side": 10240,
        "formats": ["JPEG", "PNG", "BMP", "GIF", "WEBP"],
        "max_files_per_upload": 64,
        "max_import_bytes": 2048 * MB,
        "page_size_max": 256,
    },
    "data_check": {
        # Custom Vision and AI Builder refuse to train a label with fewer than 15 images.
        "min_images_per_label": 15,
        "advised_images_per_label": 50,
        "max_imbalance_ratio": 2.0,
    },
    "training": {
        # Runs queue and train one at a time per server process (detectron2 keeps training
        # state process-wide); more workers are accepted but not used in parallel.
        "workers": 1,
        "default_preset": "fast",
        "default_budget_minutes": 10,
        "max_budget_minutes": 24 * 60,
        "retry_after_seconds": 5,
        "seed": 0,
        # cfg key -> value applied to every run (tests shrink images and iterations here).
        "overrides": {},
        # Schedules for retraining on new data: a list of {model, cron} (APScheduler cron syntax).
        "schedules": [],
    },
    "weights": {
        # Local weight files a version may start from, by name -> path (`odconnect weights add`).
        "registry_file": "",
    },
    "inference": {
        "cache_size": 4,
        "torch_threads": 2,
        # Probability a detection needs when the caller gives no threshold. Empty (None): each
        # label's own threshold, chosen when its version was trained so that counts come out
        # right; a number applies that one value to every label instead.
        "default_threshold": None,
        "max_batch": 16,
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
    },
}


def _deep_merge(base: dict, override: Mapping) -> dict:
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _env_overrides(environ: Mapping[str, str]) -> dict:
    """ODCONNECT_SECTION__KEY=value -> {"section": {"key": value}} (values parsed as YAML)."""
    out: dict = {}
    for name, raw in environ.items():
        if not name.startswith("ODCONNECT_") or "__" not in name:
            continue
        path = name[len("ODCONNECT_"):].lower().split("__")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = yaml.safe_load(raw) if raw else raw
    if environ.get("ODCONNECT_API_KEYS"):
        keys = [k.strip() for k in environ["ODCONNECT_API_KEYS"].split(",") if k.strip()]
        out.setdefault("security", {})["api_keys"] = keys
    return out


def load_config(path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None,
                overrides: Mapping | None = None) -> dict:
    """Defaults <- YAML file <- environment <- explicit overrides (tests)."""
    environ = os.environ if environ is None else environ
    cfg = copy.deepcopy(DEFAULTS)
    path = path or environ.get("ODCONNECT_CONFIG")
    if path:
        with open(path, encoding="utf-8") as fh:
            _deep_merge(cfg, yaml.safe_load(fh) or {})
    _deep_merge(cfg, _env_overrides(environ))
    if overrides:
        _deep_merge(cfg, overrides)
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
