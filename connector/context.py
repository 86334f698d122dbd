"""What a request handler can reach: injected by create_app, stored on the Flask app."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from model_store import Store


@dataclass
class AppContext:
    config: dict
    store: Store
    # Filled in by the parts that own them (training runs, predictors, scheduler).
    services: dict[str, Any] = field(default_factory=dict)

    @property
    def limits(self) -> dict:
        return self.config["limits"]

    def close(self) -> None:
        """Stop background parts (workers, scheduler) in reverse order, then the store."""
        for part in reversed(list(self.services.values())):
            stop = getattr(part, "close", None)
            if stop:
                stop()
        self.store.dispose()


def ctx() -> AppContext:
    return current_app.extensions["odconnect"]
