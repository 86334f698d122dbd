"""Unknown API keys per client address per minute: past the limit the answer is 429 with Retry-After.

A client that keeps sending a wrong or revoked key (a misconfigured connection, a script guessing)
is told to back off instead of getting an endless stream of 401s; valid keys from the same address
keep working, since behind a reverse proxy every client shares one address.
"""
from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque

WINDOW_SECONDS = 60.0
MAX_ADDRESSES = 10_000  # oldest addresses are forgotten first, so memory stays bounded


class FailedAuthThrottle:
    def __init__(self, limit_per_minute: int, clock=time.monotonic):
        self.limit = int(limit_per_minute)
        self.clock = clock
        self.failures: OrderedDict[str, deque] = OrderedDict()
        self.lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque:
        stamps = self.failures.get(address)
        if stamps is None:
            return deque()
        while stamps and now - stamps[0] >= WINDOW_SECONDS:
            stamps.popleft()
        return stamps

    def fail(self, address: str) -> int | None:
        """Count one unknown key; returns seconds to wait when the address is over the limit, else None."""
        if self.limit <= 0:
            return None
        now = self.clock()
        with self.lock:
            stamps = self._recent(address, now)
            stamps.append(now)
            self.failures[address] = stamps
            self.failures.move_to_end(address)
            while len(self.failures) > MAX_ADDRESSES:
                self.failures.popitem(last=False)
            if len(stamps) <= self.limit:
                return None
            # 401s again once the oldest of the last `limit` failures has left the window
            return max(1, math.ceil(WINDOW_SECONDS - (now - stamps[-self.limit])))
