"""The parts of capture and monitoring that need no trained model: the drift test, the capture
decision, the correlation header, the evaluation profile, the in-memory figures."""
from __future__ import annotations

import datetime as dt
import random
from collections import namedtuple
from dataclasses import replace

import pytest

from connector.services.capture import CaptureSettings, in_band, uncertainty, wanted
from connector.services.monitoring import Figures, kolmogorov_q, ks_test
from connector.services.production import SeenPredictor, Served, correlation_id
from connector.training.evaluation import prediction_profile

Det = namedtuple("Det", "label_index score x0 y0 x1 y1")
BAND = CaptureSettings("uncertain", 0.3, 0.7, 0.5, 10, 30)


def served(scores, threshold=0.5, labels=("a", "b")) -> Served:
    found = tuple(sorted((Det(i % 2, s, 0, 0, 10, 10) for i, s in enumerate(scores)), key=lambda d: -d.score))
    return Served(1, 1, labels, "detect", None, b"x", 100, 100, found, threshold,
                  tuple(labels[d.label_index] for d in found if d.score >= threshold))


@pytest.mark.parametrize("lam, q", [(1.36, 0.0494), (1.63, 0.0098), (1.0, 0.2700), (0.5, 0.9639)])
def test_kolmogorov_tail_matches_its_table(lam, q):
    assert kolmogorov_q(lam) == pytest.approx(q, abs=5e-4)
    assert kolmogorov_q(0.1) == 1.0 and kolmogorov_q(5) < 1e-20


def test_ks_two_sample_on_counted_values():
    base = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    same = {f"{v:.3g}": 3 for v in base}
    d, p, n, m = ks_test(base, same)
    assert (d, p, n, m) == (0.0, 1.0, 10, 30)
    d, p, _, _ = ks_test(base, {"0": 40})  # every image scored nothing: all mass below the baseline
    assert d == 1.0 and p < 1e-4
    # a half shift: D is the gap of the distribution functions, p shrinks with the sample sizes
    d_small, p_small, _, _ = ks_test(base, {"0": 5, **{f"{v:.3g}": 1 for v in base[:5]}})
    assert d_small == pytest.approx(0.5)
    d_big, p_big, _, _ = ks_test(base * 10, {"0": 50, **{f"{v:.3g}": 10 for v in base[:5]}})
    assert d_big == pytest.approx(0.5) and p_big < p_small
    assert ks_test([], same)[1] == 1.0 and ks_test(base, {})[1] == 1.0


def test_uncertain_band_and_uncertainty():
    assert in_band(served([0.9, 0.5]), BAND) and uncertainty(served([0.9, 0.5]), BAND) == 1.0
    assert not in_band(served([0.9, 0.2]), BAND) and uncertainty(served([0.9, 0.2]), BAND) == 0.0
    assert uncertainty(served([0.9, 0.6]), BAND) == pytest.approx(0.5)
    # a box under the caller's threshold but inside the band counts; no answer at all counts
    assert in_band(served([0.95, 0.35], threshold=0.9), BAND)
    nothing = served([0.1], threshold=0.5)
    assert in_band(nothing, BAND) and uncertainty(nothing, BAND) == 1.0
    assert in_band(served([0.3, 0.9]), BAND) and in_band(served([0.7, 0.9]), BAND)  # ends included


def test_modes_decide():
    rng = random.Random(3)
    s = served([0.9])
    assert wanted(s, replace(BAND, mode="all"), rng.random)
    assert not wanted(s, replace(BAND, mode="off"), rng.random)
    assert not wanted(s, BAND, rng.random)
    sample = replace(BAND, mode="sample", sample_rate=0.25)
    draws = random.Random(11)
    kept = [wanted(s, sample, draws.random) for _ in range(400)]
    expected = random.Random(11)
    assert kept == [expected.random() < 0.25 for _ in range(400)]
    assert 70 < sum(kept) < 130


def test_correlation_header_order_and_cleaning():
    assert correlation_id({}) is None
    assert correlation_id({"x-ms-client-tracking-id": "t1"}) == "t1"
    assert correlation_id({"x-ms-client-tracking-id": "t1", "x-ms-workflow-run-id": "run-9"}) == "run-9"
    assert correlation_id({"X-Correlation-Id": "mine", "x-ms-workflow-run-id": "run-9"}) == "mine"
    assert correlation_id({"X-Correlation-Id": "a\x00b\nc" + "z" * 400}) == "abc" + "z" * 253
    assert correlation_id({"X-Correlation-Id": "\x01", "x-ms-workflow-run-id": "run-9"}) == "run-9"


def test_seen_predictor_answers_what_was_asked_and_keeps_the_rest():
    class Fake:
        def predict(self, image, min_score=0.05):
            return [d for d in (Det(0, 0.9, 0, 0, 1, 1), Det(1, 0.4, 0, 0, 1, 1), Det(0, 0.06, 0, 0, 1, 1))
                    if d.score >= min_score]
    seen = SeenPredictor(Fake())
    assert seen.predict(None, min_score=0.5) == Fake().predict(None, 0.5)
    assert [d.score for d in seen.found] == [0.9, 0.4, 0.06] and seen.min_score == 0.5


def test_prediction_profile_of_evaluation_detections():
    per_image = [[Det(0, 0.9, 0, 0, 1, 1), Det(1, 0.6, 0, 0, 1, 1)], [Det(1, 0.3, 0, 0, 1, 1)], []]
    p = prediction_profile(per_image, ["a", "b"])
    assert p["images"] == 3 and p["topScores"] == [0.0, 0.3, 0.9]
    assert p["noDetectionRate"] == pytest.approx(2 / 3, abs=1e-4) and p["meanTopProbability"] == 0.4
    assert p["boxesPerImage"] == {"a": pytest.approx(1 / 3, abs=1e-4), "b": pytest.approx(1 / 3, abs=1e-4)}
    many = prediction_profile([[Det(0, i / 5000, 0, 0, 1, 1)] for i in range(5000)], ["a", "b"])
    assert len(many["topScores"]) == 1000 and many["topScores"][0] == 0.0 and many["topScores"][-1] == 0.9998
    assert many["images"] == 5000


def test_figures_count_per_version_and_day_and_survive_a_failed_flush():
    figures = Figures()
    day = dt.datetime(2026, 11, 23, 10)
    for scores in ([0.2, 0.9], [], [0.55]):
        figures.add(replace(served(scores), at=day))
    taken = figures.take()
    assert list(taken) == [(1, 1, day.date())]
    f = taken[(1, 1, day.date())]
    assert (f.requests, f.no_detection) == (3, 1)
    assert f.top_sum == pytest.approx(1.45) and f.tops == {"0.9": 1, "0": 1, "0.55": 1}
    assert f.labels == {"a": 1, "b": 1}
    assert figures.take() == {}
    figures.put_back(taken)
    figures.put_back(taken)
    assert figures.take()[(1, 1, day.date())].requests == 6
