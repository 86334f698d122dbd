"""The store: one database (any SQLAlchemy URL, SQLite by default) plus a blob folder."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .blobs import BlobStore
from .migrate import ensure_schema


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    # WAL lets the API read while a training worker writes progress.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def lock_row(session: Session, entity, row_id) -> None:
    """Take one row's write lock before reading it, so that concurrent read-modify-writes of it
    run one after the other instead of interleaving (two replacements of an image's boxes would
    otherwise both survive, merged).

    The no-op UPDATE is portable: on SQLite it begins the transaction and takes the database's
    write lock (readers go on, in WAL mode); on PostgreSQL it takes the row's lock. Both last
    until the transaction ends.
    """
    key = entity.__mapper__.primary_key[0]
    session.execute(update(entity).where(key == row_id).values({key.key: key})
                    .execution_options(synchronize_session=False))


class Store:
    """Database + blobs + artifacts. Every write goes through `transaction()`."""

    def __init__(self, database_url: str, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(database_url)
        # The embedded SQLite store upgrades itself; a shared database waits for `odconnect db upgrade`.
        ensure_schema(self.engine, auto_upgrade=self.engine.dialect.name == "sqlite")
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.blobs = BlobStore(self.root / "blobs")
        self.artifacts_root = self.root / "artifacts"
        self.artifacts_root.mkdir(exist_ok=True)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed whole, or rolled back whole."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
