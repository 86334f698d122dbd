from __future__ import annotations

import importlib.metadata as md

from sqlalchemy import text

from ..context import ctx
from ..errors import OdError


def health_check():
    try:
        with ctx().store.transaction() as s:
            s.execute(text("SELECT 1"))
    except Exception as exc:  # the store is what health means here
        err = OdError(f"the store is not reachable: {exc}")
        err.status, err.title = 503, "Service Unavailable"
        raise err from exc
    return {"status": "ok"}


def get_service_version():
    import torch

    def version(dist: str) -> str:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return "not installed"

    return {"odconnect": version("odconnect"), "detectron2": version("sal-detectron2"),
            "torch": torch.__version__, "device": "cuda" if torch.cuda.is_available() else "cpu"}
