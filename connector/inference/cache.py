"""Loaded predictors, one per version, kept warm in a bounded LRU cache.

A request takes a reference to its version's predictor and keeps it to the end,
so evicting or switching versions never disturbs a request already running.
Loading happens once per version even when many requests ask at the same time.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable


class PredictorCache:
    def __init__(self, loader: Callable[[int], object], capacity: int):
        self.loader = loader
        self.capacity = max(1, capacity)
        self.items: OrderedDict[int, object] = OrderedDict()
        self.lock = threading.Lock()
        self.loading: dict[int, threading.Lock] = {}
        self.loads = 0  # how many times a predictor was built (benchmarks and tests read it)

    def get(self, version_id: int):
        with self.lock:
            if version_id in self.items:
                self.items.move_to_end(version_id)
                return self.items[version_id]
            gate = self.loading.setdefault(version_id, threading.Lock())
        with gate:  # one loader per version; the others wait for it
            with self.lock:
                if version_id in self.items:
                    return self.items[version_id]
            predictor = self.loader(version_id)
            with self.lock:
                self.loads += 1
                self.items[version_id] = predictor
                self.items.move_to_end(version_id)
                while len(self.items) > self.capacity:
                    self.items.popitem(last=False)
                self.loading.pop(version_id, None)
            return predictor

    def discard(self, version_id: int) -> None:
        """Forget a version's predictor (requests holding it finish with it); the next get loads it."""
        with self.lock:
            self.items.pop(version_id, None)

    def __contains__(self, version_id: int) -> bool:
        with self.lock:
            return version_id in self.items

    def close(self) -> None:
        with self.lock:
            self.items.clear()
