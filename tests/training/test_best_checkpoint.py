"""The best-checkpoint hook keeps the best late snapshot, and only when it beats the final weights."""
from __future__ import annotations

import time

import torch

from connector.training.hooks import BestCheckpointHook, Clock


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
