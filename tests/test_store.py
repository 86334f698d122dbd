import os

import pytest
from sqlalchemy import select

from model_store import BlobStore, Store, atomic_write
from model_store.schema import Model


def test_blobs_are_content_addressed_and_deduplicated(tmp_path):
    blobs = BlobStore(tmp_path)
    a = blobs.put(b"hello")
    assert blobs.put(b"hello") == a
    assert blobs.get(a) == b"hello"
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 1
    with pytest.raises(ValueError):
        blobs.path("../../etc/passwd")


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "w.bin"
    atomic_write(target, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["w.bin"]  # no temp file left


def test_transaction_rolls_back_whole(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path)
    with pytest.raises(RuntimeError):
        with store.transaction() as s:
            s.add(Model(name="a"))
            s.flush()
            raise RuntimeError("boom")
    with store.transaction() as s:
        assert s.scalars(select(Model)).all() == []
    store.dispose()
