"""Keeps the published versions loaded: at start, and whenever a publish happens elsewhere.

With several server processes, a publish is handled by one of them; the others see the new
published version in the database on their next detect anyway, but loading it then would make
that request slow. So each process looks every `inference.warm_poll_seconds` and loads what
became published.
"""
from __future__ import annotations

import logging
import threading

from model_store import Store

from ..services.inference import warm_published

log = logging.getLogger("odconnect.inference")


class PublishedWarmer:
    def __init__(self, store: Store, predictors, every_s: float):
        self.store, self.predictors, self.every = store, predictors, every_s
        self.failed: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="warm-predictors", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                self.failed |= warm_published(self.store, self.predictors, self.failed)
            except Exception:  # the store may be briefly unreachable; look again next time
                log.exception("warming the published versions failed")
            if self._stop.wait(self.every):
                return

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
