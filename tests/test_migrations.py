"""Alembic migrations: they build the schema the models describe, and bring a 0.1 store (tables
without an alembic_version) up to date without losing a row, on SQLite and on PostgreSQL."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text

from model_store import Store
from model_store.migrate import BASELINE, SchemaOutOfDate, _config, current_revision, head_revision
from model_store.schema import Base, Image, Model, Region, Schedule, TrainingRun
ROOT = Path(__file__).resolve().parent.parent
from tests.servers import postgres_server


def _upgrade_to(engine, revision: str) -> None:
    with engine.begin() as connection:
        command.upgrade(_config(connection), revision)


def _differences(engine) -> list:
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)


def _make_01_store(engine) -> None:
    """A database as odconnect 0.1 left it: the baseline tables, rows in them, no alembic_version."""
    _upgrade_to(engine, BASELINE)
    now = dt.datetime(2026, 1, 2, 3, 4, 5)
    with engine.begin() as c:
        c.execute(text("DROP TABLE alembic_version"))
        rows = [
            ("INSERT INTO models (id, name, description, created_at, updated_at) VALUES (1, 'fruit', 'kept', :t, :t)"),
            ("INSERT INTO labels (id, model_id, name, created_at) VALUES (1, 1, 'apple', :t)"),
            ("INSERT INTO datasets (id, model_id, name, kind, created_at) VALUES (1, 1, 'training', 'training', :t)"),
            ("INSERT INTO images (id, dataset_id, sha256, name, format, width, height, size_bytes, created_at) "
             "VALUES (1, 1, :sha, 'a.jpg', 'jpeg', 640, 480, 1234, :t)"),
            ("INSERT INTO regions (id, image_id, label_id, \"left\", top, width, height, approved, source) "
             "VALUES (1, 1, 1, 0.1, 0.2, 0.3, 0.4, :yes, 'user')"),
            ("INSERT INTO schedules (model_id, cron, only_if_new_data, enabled, last_outcome, last_fired_at, updated_at) "
             "VALUES (1, '0 2 * * *', :yes, :yes, 'trained version 1', :t, :t)"),
            ("INSERT INTO training_runs (id, model_id, status, settings, \"trigger\", progress, reason, created_at) "
             "VALUES (1, 1, 'succeeded', '{}', 'api', '{}', '', :t)"),
        ]
        for sql in rows:
            c.execute(text(sql), {"t": now, "sha": "ab" * 32, "yes": True})


def _assert_rows_kept(engine, blob_root) -> None:
    store = Store(engine.url.render_as_string(hide_password=False), blob_root)
    try:
        with store.transaction() as s:
            model = s.scalars(select(Model)).one()
            assert (model.name, model.description, [label.name for label in model.labels]) == ("fruit", "kept", ["apple"])
            assert (s.get(Image, 1).name, s.get(Image, 1).width) == ("a.jpg", 640)
            region = s.get(Region, 1)
            assert (region.left, region.height, region.approved) == (0.1, 0.4, True)
            schedule = s.scalars(select(Schedule)).one()  # new columns take their defaults
            assert (schedule.cron, schedule.publish, schedule.publish_margin) == ("0 2 * * *", "never", 0.0)
            run = s.get(TrainingRun, 1)
            assert (run.status, run.worker, run.cancel_requested) == ("succeeded", "", False)
    finally:
        store.dispose()


def test_the_migrations_build_what_the_models_describe(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    _upgrade_to(engine, "head")
    assert _differences(engine) == []
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()


def test_a_01_sqlite_store_upgrades_itself_and_keeps_its_rows(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    _make_01_store(engine)
    _assert_rows_kept(engine, tmp_path)  # opening the store upgraded it
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
    assert _differences(engine) == []
    assert "ix_region_image_approved" in {i["name"] for i in inspect(engine).get_indexes("regions")}


def test_a_01_postgresql_database_waits_for_db_upgrade_then_keeps_its_rows(tmp_path):
    with postgres_server() as url:
        engine = create_engine(url)
        _make_01_store(engine)
        with pytest.raises(SchemaOutOfDate, match="odconnect db upgrade"):
            Store(url, tmp_path)  # a shared database is never changed by whichever process starts first
        env = {**os.environ, "ODCONNECT_STORAGE__DATABASE_URL": url, "ODCONNECT_STORAGE__ROOT": str(tmp_path)}
        done = subprocess.run([sys.executable, "-m", "connector.cli", "db", "upgrade"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        _assert_rows_kept(engine, tmp_path)
        assert _differences(engine) == []
        engine.dispose()
