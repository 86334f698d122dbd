"""What a detect hands over once its answer is computed: the image, the version and what it saw.

Capture (services/capture.py) keeps some of these images for review, monitoring
(services/monitoring.py) counts them all; both happen off the request path, on the production
worker (connector/jobs/production.py). Only detect and batch detect on the published version
are handed over: quick test and suggest are a maker's own checks, not production traffic.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Mapping

# Where a call's correlation id is read from, first present wins: an explicit X-Correlation-Id,
# else the run id Power Automate and Logic Apps send with each action, else their client tracking id.
CORRELATION_HEADERS = ("X-Correlation-Id", "x-ms-workflow-run-id", "x-ms-client-tracking-id")
MAX_CORRELATION_ID = 256


def correlation_id(headers: Mapping[str, str]) -> str | None:
    """The caller's correlation id (printable characters, at most 256), or None."""
    for name in CORRELATION_HEADERS:
        value = headers.get(name)
        if value:
            value = "".join(ch for ch in value if ch.isprintable()).strip()[:MAX_CORRELATION_ID]
            if value:
                return value
    return None


class SeenPredictor:
    """The published predictor as detect uses it, remembering every box the version scored.

    It predicts down to the model's own floor (``SCORE_THRESH_TEST``) and filters to the
    probability detect asked for, so detect's answer is the same boxes in the same order,
    while capture and monitoring also see the boxes under the caller's threshold.
    """

    def __init__(self, predictor):
        self.predictor = predictor
        self.found: list = []  # Detection-like (label_index, score, x0, y0, x1, y1), highest first
        self.min_score: float = 0.0

    def prepare(self, picture):
        return self.predictor.prepare(picture)

    def predict(self, image, min_score: float = 0.05):
        self.found, self.min_score = self.predictor.predict(image, 0.0), min_score
        return [d for d in self.found if d.score >= min_score]


@dataclass(frozen=True)
class Served:
    """One image the published version answered."""
    model_id: int
    version_id: int
    labels: tuple[str, ...]  # label index -> name, as the version was trained
    operation: str  # detect | batch
    correlation_id: str | None
    data: bytes
    width: int  # as the caller sees the picture (EXIF-rotated)
    height: int
    found: tuple[Any, ...]  # every box the version scored, highest first
    threshold: float  # the lowest probability detect answered with
    answered: tuple[str, ...]  # the label of each box in the answer
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))

    @property
    def top(self) -> float:
        """The image's top probability: the highest score of any box, 0.0 when there is none."""
        return max((float(d.score) for d in self.found), default=0.0)
