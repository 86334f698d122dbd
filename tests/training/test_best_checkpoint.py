"""The best-checkpoint hook keeps the best late snapshot, and only when it beats the final weights."""
from __future__ import annotations

import time

import pytest
import torch

from connector.training.hooks import BestCheckpointHook, Clock, clearly_better


class StepOnlyTrainer:
    """What the hook reads from a trainer: the iteration index and the model."""

    def __init__(self, model):
        self.model, self.iter = model, 0


def drive(hook, model, steps):
    for it in range(steps):
        hook.trainer.iter = it
        with torch.no_grad():
            model.weight.fill_(float(it))  # weights that say which step they are from
        hook.after_step()


def test_a_better_snapshot_replaces_the_final_weights():
    model = torch.nn.Linear(2, 1)
    scores = iter([{"ap50": 0.9, "ap": 0.5}, {"ap50": 0.6, "ap": 0.4}])
    clock = Clock()
    clock.start()
    hook = BestCheckpointHook(clock, lambda m: next(scores), None, max_iter=8, at=(0.5, 0.75))
    hook.trainer = StepOnlyTrainer(model)
    drive(hook, model, 8)
    metrics, kept = hook.choose(model, {"ap50": 0.7, "ap": 0.6}, 8)
    assert (metrics["ap50"], kept) == (0.9, 4)  # snapshot after 4 of 8 iterations
    assert torch.all(model.weight == 3.0)


def test_final_weights_stay_when_they_score_higher():
    model = torch.nn.Linear(2, 1)
    clock = Clock()
    clock.start()
    hook = BestCheckpointHook(clock, lambda m: {"ap50": 0.5, "ap": 0.2}, None, max_iter=4)
    hook.trainer = StepOnlyTrainer(model)
    drive(hook, model, 4)
    metrics, kept = hook.choose(model, {"ap50": 0.5, "ap": 0.3}, 4)  # ties on AP50, better AP
    assert (metrics["ap"], kept) == (0.3, 4) and torch.all(model.weight == 3.0)


def test_snapshots_follow_the_budget_and_pause_the_clock():
    model = torch.nn.Linear(2, 1)
    clock = Clock()
    clock.start()
    calls = []

    def slow_evaluate(m):
        time.sleep(0.2)
        calls.append(float(m.weight[0, 0]))
        return {"ap50": 0.1, "ap": 0.1}

    hook = BestCheckpointHook(clock, slow_evaluate, budget_s=0.1, max_iter=10_000, at=(0.5,))
    hook.trainer = StepOnlyTrainer(model)
    drive(hook, model, 1)
    assert calls == []
    time.sleep(0.06)  # past half the budget
    before = clock.elapsed()
    drive(hook, model, 1)
    assert len(calls) == 1 and clock.elapsed() - before < 0.1  # evaluation time is not training time


def test_only_a_clear_lead_beats_later_weights():
    later = {"ap50": 0.906, "ap": 0.550}
    assert not clearly_better({"ap50": 0.9061, "ap": 0.549}, later, 0.01)  # a hair: noise
    assert not clearly_better({"ap50": 0.915, "ap": 0.558}, later, 0.01)  # both within the margin
    assert clearly_better({"ap50": 0.920, "ap": 0.500}, later, 0.01)  # AP50 decides first
    assert clearly_better({"ap50": 0.906, "ap": 0.565}, later, 0.01)  # AP50 tied, AP clearly ahead
    assert not clearly_better({"ap50": 0.890, "ap": 0.600}, later, 0.01)  # AP50 clearly behind
    assert not clearly_better(later, later, 0.0)  # a tie goes to the later weights


def test_with_a_margin_the_latest_of_near_equal_snapshots_is_kept():
    model = torch.nn.Linear(2, 1)
    # the snapshots after 4 and 6 of 8 iterations, then the final weights, each a hair apart
    scores = iter([{"ap50": 0.9055, "ap": 0.543}, {"ap50": 0.9061, "ap": 0.549}])
    clock = Clock()
    clock.start()
    hook = BestCheckpointHook(clock, lambda m: next(scores), None, max_iter=8, at=(0.5, 0.75), margin=0.01)
    hook.trainer = StepOnlyTrainer(model)
    drive(hook, model, 8)
    assert hook.best[2] == 6  # the later snapshot replaced the earlier one it tied with
    metrics, kept = hook.choose(model, {"ap50": 0.9050, "ap": 0.548}, 8)
    assert kept == 8 and torch.all(model.weight == 7.0)  # the final weights stay in the model
    # without the margin, the same 0.001 lead would have swapped in the snapshot
    scores = iter([{"ap50": 0.9055, "ap": 0.543}, {"ap50": 0.9061, "ap": 0.549}])
    hook = BestCheckpointHook(clock, lambda m: next(scores), None, max_iter=8, at=(0.5, 0.75))
    hook.trainer = StepOnlyTrainer(model)
    drive(hook, model, 8)
    assert hook.choose(model, {"ap50": 0.9050, "ap": 0.548}, 8)[1] == 6


def test_presets_call_a_lead_under_one_point_of_the_score_a_tie():
    from connector.training.presets import build_cfg

    cfg = build_cfg("fast", 2, "cpu")
    assert cfg.ODCONNECT.VALIDATION.SNAPSHOT_MARGIN == pytest.approx(0.01)
