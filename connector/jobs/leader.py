"""A leader lease in the database: of all the server processes sharing one database, the one
holding it is the leader.

The lease is one row (name, holder, expires_at). Every process calls `tick()` every
`renew_seconds`: the holder moves `expires_at` to now + `lease_seconds`; any other process takes
the row over only once `expires_at` has passed. Both are one conditional UPDATE, which the database
runs atomically (SQLite serializes writers; PostgreSQL re-checks the WHERE clause of a row another
transaction changed), so two processes never both win the same lease.

When the leader dies, another process takes over at most `lease_seconds + renew_seconds` after
the leader's last renewal. A leader that cannot reach the database steps down `renew_seconds`
before its lease could have expired, so that it stops before another process can start. The
time compared is each process's UTC clock: hosts sharing a database need clocks in step (NTP),
far closer than `lease_seconds`. A clean shutdown hands the lease back at once.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from typing import Callable

from sqlalchemy import case, or_, update
from sqlalchemy.exc import IntegrityError

from model_store import Store
from model_store.schema import SchedulerLease, utcnow

log = logging.getLogger("odconnect.leader")


def process_identity() -> str:
    """Host, process id and a random tail: unique even for two apps in one process (tests)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class LeaderLease:
    def __init__(self, store: Store, name: str, lease_seconds: float, renew_seconds: float,
                 on_tick: Callable[[bool], None] | None = None):
        if renew_seconds >= lease_seconds:
            raise ValueError("the lease must outlast several renewals: renew_seconds < lease_seconds")
        self.store, self.name = store, name
        self.lease_seconds, self.renew_seconds = lease_seconds, renew_seconds
        self.on_tick = on_tick
        self.holder = process_identity()
        self.leader = False
        self._held_until = 0.0  # monotonic time until which this process may act as leader
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Try once now (a lone process leads from its start), then keep trying in the background."""
        self.tick()
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.renew_seconds):
            self.tick()

    def tick(self) -> bool:
        """Renew or take the lease; tell `on_tick` whether this process leads now."""
        try:
            won = self._acquire()
            if won:
                self._held_until = time.monotonic() + self.lease_seconds
        except Exception:
            log.exception("lease %s: the database did not answer", self.name)
            won = self.leader and time.monotonic() < self._held_until - self.renew_seconds
        if won != self.leader:
            log.info("lease %s: %s %s", self.name, self.holder, "leads" if won else "stands by")
        self.leader = won
        if self.on_tick is not None:
            try:
                self.on_tick(won)
            except Exception:
                log.exception("lease %s: tick failed", self.name)
        return won

    def _acquire(self) -> bool:
        now = utcnow()
        until = now + dt.timedelta(seconds=self.lease_seconds)
        mine = SchedulerLease.holder == self.holder
        try:
            with self.store.transaction() as s:
                renewed = s.execute(
                    update(SchedulerLease)
                    .where(SchedulerLease.name == self.name, or_(mine, SchedulerLease.expires_at < now))
                    .values(holder=self.holder, expires_at=until,
                            acquired_at=case((mine, SchedulerLease.acquired_at), else_=now))
                    .execution_options(synchronize_session=False))
                if renewed.rowcount == 1:
                    return True
                if s.get(SchedulerLease, self.name) is not None:
                    return False  # held by a live process
                s.add(SchedulerLease(name=self.name, holder=self.holder, expires_at=until, acquired_at=now))
            return True
        except IntegrityError:  # another process created the row first
            return False

    def holder_now(self) -> tuple[str, dt.datetime] | None:
        """(holder, expires_at) as the database has it."""
        with self.store.transaction() as s:
            row = s.get(SchedulerLease, self.name)
            return (row.holder, row.expires_at) if row else None

    def close(self) -> None:
        """Stop renewing and hand the lease back, so another process takes over at its next tick."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.renew_seconds + 5)
        if self.leader:
            try:
                with self.store.transaction() as s:
                    s.execute(update(SchedulerLease)
                              .where(SchedulerLease.name == self.name, SchedulerLease.holder == self.holder)
                              .values(expires_at=utcnow() - dt.timedelta(seconds=1))
                              .execution_options(synchronize_session=False))
            except Exception:
                log.exception("lease %s: could not hand it back; it expires by itself", self.name)
        self.leader = False
