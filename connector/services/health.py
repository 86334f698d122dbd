"""Is the service up, and what does it run on."""
from __future__ import annotations

import importlib.metadata as md

from sqlalchemy import text

from model_store import Store

from ..errors import Unavailable
from . import workers


def check(store: Store, config: dict) -> dict:
    """Which parts are up. 503 when the database is not (nothing works without it); "degraded"
    when training cannot happen (the broker is down, or no worker is alive) but detect still works."""
    try:
        with store.transaction() as s:
            s.execute(text("SELECT 1"))
    except Exception as exc:  # any failure of the store is what unhealthy means here
        raise Unavailable(f"the store is not reachable: {exc}") from exc
    parts = {"database": {"status": "up"}}
    broker = config["jobs"]["broker_url"]
    if broker:
        parts["broker"] = _broker(broker)
        alive = [w for w in workers.listing(store, config["jobs"]["stale_after_seconds"]) if w["alive"]]
        parts["workers"] = {"status": "up" if alive else "down", "alive": len(alive),
                            "devices": sorted({w["device"] for w in alive})}
    else:
        parts["training"] = {"status": "up", "runner": "embedded"}
    degraded = any(p["status"] != "up" for p in parts.values())
    return {"status": "degraded" if degraded else "ok", "parts": parts}


def figures(store: Store, config: dict) -> dict:
    """What the metrics read from the database at each scrape (see connector/metrics.py)."""
    from . import monitoring, training
    return {"runs": training.run_counts(store),
            "workers": workers.listing(store, config["jobs"]["stale_after_seconds"]),
            "production": monitoring.scrape_figures(store)}


def _broker(url: str) -> dict:
    import redis
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
        return {"status": "up"}
    except Exception as exc:  # noqa: BLE001 - any failure means the broker is not usable
        return {"status": "down", "detail": f"{exc.__class__.__name__}: {exc}"}


def _installed(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def versions() -> dict:
    import torch
    return {"odconnect": _installed("odconnect"), "detectron2": _installed("sal-detectron2"),
            "torch": torch.__version__, "device": "cuda" if torch.cuda.is_available() else "cpu"}
