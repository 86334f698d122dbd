"""Cancel and time budget on real (tiny) training runs."""
from __future__ import annotations

import threading
import time

import pytest

from connector.training import Canceled, train
from connector.training.hooks import BudgetHook


def test_cancel_stops_promptly_and_leaves_nothing(tmp_path, make_request):
    out = tmp_path / "canceled"
    cancel = threading.Event()
    events: list[dict] = []
    outcome: dict = {}

    def run():
        try:
            train(make_request(out, max_iter=10_000), progress=events.append, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001
            outcome["exc"] = exc
        outcome["done"] = time.perf_counter()

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.perf_counter() + 60
    while not events and time.perf_counter() < deadline:  # wait until it is really training
        time.sleep(0.05)
    assert events, "training never reported progress"
    set_at = time.perf_counter()
    cancel.set()
    worker.join(30)
    assert not worker.is_alive()
    assert isinstance(outcome.get("exc"), Canceled)
    assert outcome["done"] - set_at < 3.0
    assert events[-1]["iteration"] < 10_000
    assert not out.exists() or not any(out.iterdir())


def test_cancel_before_start(tmp_path, make_request):
    out = tmp_path / "pre"
    out.mkdir()
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Canceled):
        train(make_request(out, max_iter=10), cancel=cancel)
    assert out.exists() and not any(out.iterdir())  # a caller's directory is kept, empty


def test_budget_stops_cleanly_and_keeps_weights(tmp_path, make_request):
    events: list[dict] = []
    result = train(make_request(tmp_path / "budget", max_iter=10_000, budget_seconds=3.0),
                   progress=events.append)
    assert result.stopped_by == "budget"
    assert 0 < result.iterations < 10_000
    assert events[-1]["iteration"] == result.iterations
    # How close to the budget it stops is test_budget_hook_stops_before_a_step_would_overrun's
    # (a fake clock); here the model's set-up and a first step, which always runs, count too, and
    # on a busy machine (CI runs two workers on two cores) they alone can take seconds.
    assert events[-1]["elapsed_s"] <= 3.0 + 5.0
    assert result.weights_path.is_file() and result.config_path.is_file()
    assert result.metrics["eval_images"] == len(result.eval_image_ids) > 0


class _FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def start(self) -> None:
        pass

    def elapsed(self) -> float:
        return self.now


class _StopRecorder:
    def __init__(self) -> None:
        self.reason = None

    def request_stop(self, reason: str) -> None:
        self.reason = reason


def _run_steps(hook: BudgetHook, clock: _FakeClock, durations: list[float]) -> int:
    """Steps run (of ``durations``, in seconds) before the hook asks to stop."""
    hook.trainer = _StopRecorder()
    hook.before_train()
    for done, duration in enumerate(durations, start=1):
        clock.now += duration
        hook.after_step()
        if hook.trainer.reason is not None:
            assert hook.trainer.reason == "budget"
            return done
    return len(durations)


def test_budget_hook_stops_before_a_step_would_overrun():
    clock = _FakeClock()
    # 1-second steps, 10-second budget: after 9 steps a 10th would end at 10.0, a 11th at 11
    assert _run_steps(BudgetHook(clock, 10.0), clock, [1.0] * 20) == 10
    clock = _FakeClock()
    assert _run_steps(BudgetHook(clock, 9.5), clock, [1.0] * 20) == 9  # 9 + 1 > 9.5: stop at 9
    # The machine gets busy: steps take 3 s from the 5th on. The average alone (about 1.4 s after
    # the 5th) would allow a step that ends past the budget; the last step's 3 s does not.
    clock = _FakeClock()
    steps = _run_steps(BudgetHook(clock, 9.0), clock, [1.0] * 4 + [3.0] * 10)
    assert steps == 5 and clock.now == 7.0  # another 3-s step would end at 10 > 9
    # always at least one step, however long
    clock = _FakeClock()
    assert _run_steps(BudgetHook(clock, 1.0), clock, [5.0, 5.0]) == 1
