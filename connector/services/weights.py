"""Local pretrained weight files (`odconnect weights add PATH`): copied into the store, never downloaded."""
from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

from model_store import Store, atomic_write, sha256_hex
from model_store.schema import WeightFile

from ..errors import Conflict, Invalid
from ..views import weight_view

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SUFFIXES = (".pth", ".pkl", ".pt")


def add_weights(store: Store, source: str | Path, name: str | None = None) -> dict:
    source = Path(source)
    if not source.is_file():
        raise Invalid(f"{source} is not a file")
    if source.suffix not in SUFFIXES:
        raise Invalid(f"{source.name}: weights must be a {'/'.join(SUFFIXES)} file (detectron2 model zoo or torch)")
    name = name or source.name
    if not NAME_RE.match(name):
        raise Invalid(f"weights name {name!r}: use letters, digits, '.', '_' and '-'")
    data = source.read_bytes()
    target = store.root / "weights" / name
    with store.transaction() as s:
        if s.get(WeightFile, name) is not None:
            raise Conflict(f"weights named {name!r} already exist")
        atomic_write(target, data)
        wf = WeightFile(name=name, path=str(target), sha256=sha256_hex(data), size_bytes=len(data))
        s.add(wf)
        s.flush()
        return weight_view(wf)


def list_weights(store: Store) -> list[dict]:
    with store.transaction() as s:
        return [weight_view(w) for w in s.scalars(select(WeightFile).order_by(WeightFile.name))]
