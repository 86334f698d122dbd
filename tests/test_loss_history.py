"""The loss curve a training run's progress carries: every point while short, at most 200 evenly
spread points (the latest last) however long the run, and bounded memory."""
from __future__ import annotations

import math

from connector.services.loss_history import MAX_POINTS, LossHistory
from connector.services.training import ProgressWriter
from model_store import Store
from model_store.schema import Model, TrainingRun


def test_short_runs_keep_every_point_and_the_final_report_replaces_its_twin():
    h = LossHistory()
    for it in range(1, 51):
        h.add(it, 10 / it)
    h.add(50, 0.123456)  # the end-of-training report repeats the last iteration
    h.add(None, 1.0)
    h.add(51, math.nan)
    pts = h.points()
    assert len(pts) == 50 and pts[0] == [1, 10.0] and pts[-1] == [50, 0.1235]


def test_long_runs_are_thinned_evenly_and_memory_stays_bounded():
    h = LossHistory()
    for it in range(1, 100_001):
        h.add(it, 1 + 1 / it)
        assert len(h._kept) <= 2 * MAX_POINTS + 1
    pts = h.points()
    assert len(pts) == MAX_POINTS
    assert pts[0][0] == 1 and pts[-1] == [100_000, 1.0]
    iterations = [p[0] for p in pts]
    gaps = [b - a for a, b in zip(iterations, iterations[1:])]
    assert iterations == sorted(set(iterations))
    assert max(gaps[:-1]) <= 2 * min(gaps[:-1])  # evenly spread (the last gap may be short)


def test_progress_writer_stores_the_curve_in_the_run(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path)
    with store.transaction() as s:
        model = Model(name="m")
        s.add(model)
        s.flush()
        run = TrainingRun(model_id=model.id, status="training")
        s.add(run)
        s.flush()
        run_id = run.id
    write = ProgressWriter(store, run_id, min_interval=0)
    for it in range(1, 501):
        write({"iteration": it, "max_iter": 500, "elapsed_s": it, "eta_s": 500 - it, "loss": 2.0 / it})
    with store.transaction() as s:
        progress = s.get(TrainingRun, run_id).progress
    assert progress["iteration"] == 500 and len(progress["lossHistory"]) == MAX_POINTS
    assert progress["lossHistory"][0] == [1, 2.0] and progress["lossHistory"][-1] == [500, 0.004]
    store.dispose()
