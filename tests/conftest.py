"""Shared fixtures: a real app on a temp SQLite store, and images drawn with Pillow."""
from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from connector.app import create_app
from connector.config import load_config

API = "/api/v1"
KEY = "test-key"


def pytest_collection_modifyitems(items):
    """Schemathesis gives every operation's test the node id of its test function; pytest-xdist
    tells tests apart by node id and would run one operation of each. The item's name has the
    operation: make it the node id's last part, the same in every worker."""
    for item in items:
        if type(item).__name__ == "SchemathesisFunction" and not item.nodeid.endswith("]"):
            if hasattr(item, "_id"):  # pytest 9
                item._id = item.parent.id.child(item.name)
            else:
                item._nodeid = f"{item.parent.nodeid}::{item.name}"


def make_config(root: Path, **sections) -> dict:
    overrides = {"storage": {"root": str(root)}, "security": {"api_keys": [KEY]}}
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_config(environ={}, overrides=overrides)


class Api:
    """The test client with the API prefix and key filled in."""

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()
        self.headers = {"X-API-Key": KEY}

    def __getattr__(self, method):
        call = getattr(self.client, method)

        def send(path, **kw):
            kw["headers"] = {**self.headers, **kw.get("headers", {})}
            return call(API + path, **kw)

        return send

    # helpers for the common set-up steps
    def model(self, name="fruit", labels=("apple", "banana")):
        r = self.post("/models", json={"name": name, "labels": list(labels)})
        assert r.status_code == 201, r.text
        body = r.json()
        body["datasetId"] = self.get(f"/models/{body['id']}/datasets").json()[0]["id"]
        return body


@pytest.fixture
def make_app(tmp_path):
    apps = []

    def factory(root=None, **sections):
        app = create_app(make_config(root or tmp_path / "store", **sections))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.odconnect.close()


@pytest.fixture
def api(make_app):
    return Api(make_app())


def png_bytes(width=320, height=256, color=(200, 30, 30), fmt="PNG", seed=0) -> bytes:
    """A real picture: a coloured rectangle on a gradient, distinct per seed."""
    img = Image.new("RGB", (width, height), (seed * 37 % 256, 90, 160))
    draw = ImageDraw.Draw(img)
    draw.rectangle([width // 4, height // 4, width // 2, height // 2], fill=color)
    draw.text((5, 5), f"#{seed}", fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height with almost no data: a decompression-bomb probe."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def store_snapshot(app) -> dict:
    """Everything an API call could change: row counts and contents per table, and blob files."""
    from sqlalchemy import text
    store = app.odconnect.store
    out = {}
    with store.engine.connect() as conn:
        for table in ("models", "labels", "datasets", "images", "regions", "versions", "training_runs", "drafts"):
            out[table] = [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]
    out["blobs"] = sorted(p.name for p in store.blobs.root.rglob("*") if p.is_file())
    return out


def queued_run(app, model_id: int) -> int:
    """A training run row left queued, as if waiting for a worker (no training needed)."""
    from model_store.schema import TrainingRun
    with app.odconnect.store.transaction() as s:
        run = TrainingRun(model_id=model_id, status="queued", settings={"preset": "scratch"})
        s.add(run)
        s.flush()
        return run.id
