"""Schema migrations (Alembic): bring a store's database to the schema this code expects.

How a database is brought up to date when the store opens it:
- empty: the tables are created from the models and stamped with the newest revision (the same
  schema the migrations build; a test compares the two) — by the embedded store itself, or by
  `odconnect db upgrade` for a shared database;
- made before migrations existed (odconnect 0.1: tables but no alembic_version): stamped with the
  baseline revision 0001, then upgraded like any other;
- at an older revision: the embedded SQLite store upgrades itself; any other database (PostgreSQL,
  shared by several processes) is refused with the command to run, `odconnect db upgrade`, so that
  one operator step, not whichever process starts first, changes a shared schema.
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

from .schema import Base

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"


class SchemaOutOfDate(RuntimeError):
    """The database needs `odconnect db upgrade` before this version of odconnect can use it."""


def _config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _state(connection: Connection) -> str | None:
    """The revision, BASELINE for a pre-migrations database, or None for an empty one."""
    revision = current_revision(connection)
    if revision is None and inspect(connection).has_table("models"):
        return BASELINE + "?"  # unversioned: made by odconnect 0.1
    return revision


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Upgrade to the newest revision: (revision before, revision after)."""
    with engine.begin() as connection:
        before = _state(connection)
        cfg = _config(connection)
        if before is None:
            Base.metadata.create_all(connection)
            command.stamp(cfg, "head")
        else:
            if before.endswith("?"):
                command.stamp(cfg, BASELINE)
            command.upgrade(cfg, "head")
    return before, head_revision()


def ensure_schema(engine: Engine, auto_upgrade: bool) -> None:
    """Make the database usable by this code, or raise SchemaOutOfDate saying what to run."""
    head = head_revision()
    with engine.connect() as connection:
        state = _state(connection)
    if state == head:
        return
    if auto_upgrade:
        upgrade(engine)
        return
    if state is None:
        shown = "the database has no odconnect tables yet"
    elif state.endswith("?"):
        shown = "the database was made before schema migrations existed"
    else:
        shown = f"the database is at schema revision {state}"
    raise SchemaOutOfDate(f"{shown} and this odconnect needs revision {head}: "
                          "stop every odconnect process that uses it and run `odconnect db upgrade`")
