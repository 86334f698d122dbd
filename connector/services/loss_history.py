"""A training run's loss curve, short enough to send on every poll of the run.

The trainer reports (iteration, loss) about once a second; a day-long run would pile up tens of
thousands of points. Memory stays bounded by keeping every `stride`-th point and doubling the
stride whenever twice the limit is reached (the kept points stay evenly spaced), and the wire
gets at most `limit` of them, picked evenly, always ending with the latest.
"""
from __future__ import annotations

import math

MAX_POINTS = 200


class LossHistory:
    def __init__(self, limit: int = MAX_POINTS):
        self.limit = max(2, limit)
        self._kept: list[list] = []
        self._latest: list | None = None
        self._seen = 0
        self._stride = 1

    def add(self, iteration, loss) -> None:
        if iteration is None or loss is None or not math.isfinite(loss):
            return
        point = [int(iteration), round(float(loss), 4)]
        if self._latest is not None and self._latest[0] == point[0]:
            self._latest = point  # the final report repeats the last iteration
            if self._kept and self._kept[-1][0] == point[0]:
                self._kept[-1] = point
            return
        self._latest = point
        if self._seen % self._stride == 0:
            self._kept.append(point)
            if len(self._kept) > 2 * self.limit:
                self._kept = self._kept[::2]
                self._stride *= 2
        self._seen += 1

    def points(self) -> list[list]:
        """At most `limit` [iteration, loss] pairs, evenly spread, the latest one last."""
        pts = list(self._kept)
        if self._latest is not None and (not pts or pts[-1][0] != self._latest[0]):
            pts.append(self._latest)
        n = len(pts)
        if n <= self.limit:
            return pts
        picks = sorted({round(k * (n - 1) / (self.limit - 1)) for k in range(self.limit)})
        return [pts[i] for i in picks]
