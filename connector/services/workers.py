"""Training workers (`odconnect worker`) as the database sees them: a row each, with a heartbeat."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select

from model_store import Store
from model_store.schema import Worker, utcnow

from ..views import iso


def beat(store: Store, worker_id: str, device: str, current_run_id: int | None) -> None:
    import socket
    with store.transaction() as s:
        row = s.get(Worker, worker_id) or Worker(id=worker_id, hostname=socket.gethostname(), device=device)
        row.heartbeat_at, row.current_run_id = utcnow(), current_run_id
        s.add(row)


def gone(store: Store, worker_id: str) -> None:
    with store.transaction() as s:
        s.execute(delete(Worker).where(Worker.id == worker_id))


def listing(store: Store, stale_after_s: float) -> list[dict]:
    """Workers seen within twice the staleness limit, each saying whether it is alive now."""
    now = utcnow()
    with store.transaction() as s:
        rows = s.scalars(select(Worker).where(Worker.heartbeat_at >= now - dt.timedelta(seconds=2 * stale_after_s))
                         .order_by(Worker.id)).all()
        return [{"id": w.id, "hostname": w.hostname, "device": w.device, "currentRunId": w.current_run_id,
                 "lastHeartbeat": iso(w.heartbeat_at),
                 "secondsSinceHeartbeat": round((now - w.heartbeat_at).total_seconds(), 1),
                 "alive": (now - w.heartbeat_at).total_seconds() <= stale_after_s} for w in rows]
