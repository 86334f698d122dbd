"""Is the service up, and what does it run on."""
from __future__ import annotations

import importlib.metadata as md

from sqlalchemy import text

from model_store import Store

from ..errors import Unavailable


def check(store: Store) -> dict:
    """Healthy while the store answers a query; 503 saying why otherwise."""
    try:
        with store.transaction() as s:
            s.execute(text("SELECT 1"))
    except Exception as exc:  # any failure of the store is what unhealthy means here
        raise Unavailable(f"the store is not reachable: {exc}") from exc
    return {"status": "ok"}


def _installed(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def versions() -> dict:
    import torch
    return {"odconnect": _installed("odconnect"), "detectron2": _installed("sal-detectron2"),
            "torch": torch.__version__, "device": "cuda" if torch.cuda.is_available() else "cpu"}
