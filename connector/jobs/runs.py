"""Training runs on a thread of the serving process: the default when no broker is configured."""
from __future__ import annotations

from typing import Callable

from model_store import Store

from ..services import training
from .identity import is_dead_here, process_id
from .run_watch import watched
from .serial import CancelSignal, SerialRunner

__all__ = ["CancelSignal", "run_manager"]


def run_manager(store: Store, config: dict, publish: Callable[[int, int], object] | None = None) -> SerialRunner:
    """The embedded runner of training runs (see jobs/serial.py for why one at a time).
    `publish(model_id, version_number)`: what the promotion gate of a gated run calls."""
    def execute(run_id: int, cancel: CancelSignal) -> None:
        with watched(lambda: training.heartbeat(store, run_id), cancel, config["jobs"]["heartbeat_seconds"]):
            training.execute_run(store, config, run_id, cancel, process_id(), publish=publish)

    return SerialRunner("train", execute, lambda: training.recover(store, is_dead_here), training.RESTARTED)
