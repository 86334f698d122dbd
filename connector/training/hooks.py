"""Training hooks, one ``HookBase`` per concern.

- :class:`CancelHook`: a ``threading.Event`` -> raises :class:`Canceled` at the next step boundary.
- :class:`BudgetHook`: asks the trainer to stop cleanly before the time budget runs out.
- :class:`LRScheduleHook`: linear warm-up + cosine decay; with a budget, the cosine is planned
  over the iterations the budget is predicted to allow, so short budgets still end at a low LR.
- :class:`GradClipHook`: clips the gradient norm of the whole model (detectron2's own
  ``SOLVER.CLIP_GRADIENTS`` only clips per parameter; we use CLIP_TYPE "full_model" for this).
- :class:`ProgressHook`: calls a callback with iteration, max_iter, elapsed, eta and loss.
- :class:`EMAHook`: keeps an exponential moving average of the weights (torch's AveragedModel).
- :class:`BestCheckpointHook`: scores late snapshots on validation images, keeps the best.

All time-based hooks read one :class:`Clock`, which can be paused (e.g. while a benchmark
evaluates a snapshot), so paused time counts neither against the budget nor in ``elapsed_s``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch
from torch.optim.swa_utils import AveragedModel
from detectron2.engine.train_loop import HookBase

__all__ = ["Canceled", "Clock", "CancelHook", "BudgetHook", "LRScheduleHook", "GradClipHook", "ProgressHook",
           "EMAHook", "BestCheckpointHook", "lr_factor", "ema_decay"]

logger = logging.getLogger("odconnect.training")


class Canceled(Exception):
    """Training was canceled through the ``cancel`` event."""


class Clock:
    """Monotonic stopwatch that can be paused."""

    def __init__(self) -> None:
        self._start: float | None = None
        self._paused_total = 0.0
        self._paused_at: float | None = None

    def start(self) -> None:
        if self._start is None:
            self._start = time.perf_counter()

    def elapsed(self) -> float:
        if self._start is None:
            return 0.0
        now = self._paused_at if self._paused_at is not None else time.perf_counter()
        return now - self._start - self._paused_total

    @contextmanager
    def paused(self) -> Iterator[None]:
        if self._paused_at is not None:  # nested: already paused
            yield
            return
        self._paused_at = time.perf_counter()
        try:
            yield
        finally:
            self._paused_total += time.perf_counter() - self._paused_at
            self._paused_at = None


class _StepTimer:
    """Exponential moving average of the step duration (by the clock)."""

    def __init__(self, clock: Clock, alpha: float = 0.2) -> None:
        self.clock, self.alpha = clock, alpha
        self.avg: float | None = None
        self.last: float | None = None  # the latest step's duration
        self.samples = 0
        self._marked_at: float | None = None

    def mark(self) -> None:
        now = self.clock.elapsed()
        if self._marked_at is not None:
            dt = self.last = now - self._marked_at
            self.avg = dt if self.avg is None else self.alpha * dt + (1 - self.alpha) * self.avg
            self.samples += 1
        self._marked_at = now


class CancelHook(HookBase):
    """Checks the event at every step boundary and, through forward pre-hooks on the model's
    convolutions, inside the forward pass too (slow CPU steps would otherwise delay a cancel by
    a whole iteration)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event
        self._handles: list = []

    def _check(self, *_args) -> None:
        if self.event.is_set():
            raise Canceled("training canceled")

    def before_train(self) -> None:
        self._check()
        model = getattr(self.trainer, "model", None)
        if model is not None:
            self._handles = [m.register_forward_pre_hook(self._check)
                             for m in model.modules() if isinstance(m, torch.nn.Conv2d)]

    def after_train(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def before_step(self) -> None:
        self._check()

    def after_step(self) -> None:
        self._check()


class BudgetHook(HookBase):
    """Stop (``trainer.request_stop("budget")``) when the next step would overrun the budget.

    Always lets at least one step run. The clock starts in ``before_train`` unless already
    started (the API starts it before building the model, so model set-up counts too).
    """

    def __init__(self, clock: Clock, budget_s: float) -> None:
        self.clock, self.budget_s = clock, float(budget_s)
        self._timer = _StepTimer(clock)

    def before_train(self) -> None:
        self.clock.start()
        self._timer.mark()

    def after_step(self) -> None:
        self._timer.mark()
        # the slower of the average and the last step: a machine that just got busy shows it first
        next_step = max(self._timer.avg or 0.0, self._timer.last or 0.0)
        if self.clock.elapsed() + next_step > self.budget_s:
            self.trainer.request_stop("budget")


def lr_factor(it: int, total: int, warmup_iters: int, warmup_factor: float, final_factor: float) -> float:
    """Multiplier of the base LR at iteration ``it`` of ``total``: linear warm-up, cosine decay."""
    p = min(max(it / max(total, 1), 0.0), 1.0)
    f = final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * p))
    warmup_iters = min(warmup_iters, max(total // 3, 1))  # short runs: keep most of them useful
    if it < warmup_iters:
        alpha = it / warmup_iters
        f *= warmup_factor * (1.0 - alpha) + alpha
    return f


class LRScheduleHook(HookBase):
    def __init__(self, optimizer, max_iter: int, warmup_iters: int, warmup_factor: float,
                 final_factor: float, clock: Clock | None = None, budget_s: float | None = None) -> None:
        self.optimizer = optimizer
        self.max_iter = int(max_iter)
        self.warmup_iters = int(warmup_iters)
        self.warmup_factor, self.final_factor = warmup_factor, final_factor
        self.clock, self.budget_s = clock, budget_s
        self._timer = _StepTimer(clock) if clock is not None else None
        self._base_lrs: list[float] = []
        self.planned_iter = self.max_iter

    def before_train(self) -> None:
        self._base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        if self._timer is not None:
            self._timer.mark()

    def _plan(self, it: int) -> int:
        if self.budget_s is None or self._timer is None or self._timer.samples < 5:
            return self.max_iter
        remaining = self.budget_s - self.clock.elapsed()
        predicted = it + int(remaining / max(self._timer.avg, 1e-6))
        return max(it + 1, min(self.max_iter, predicted))

    def before_step(self) -> None:
        it = self.trainer.iter
        self.planned_iter = self._plan(it)
        f = lr_factor(it, self.planned_iter, self.warmup_iters, self.warmup_factor, self.final_factor)
        for g, base in zip(self.optimizer.param_groups, self._base_lrs):
            g["lr"] = base * f
        self.trainer.storage.put_scalar("lr", self._base_lrs[0] * f, smoothing_hint=False)

    def after_step(self) -> None:
        if self._timer is not None:
            self._timer.mark()


class GradClipHook(HookBase):
    def __init__(self, model: torch.nn.Module, max_norm: float, norm_type: float = 2.0) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.max_norm, self.norm_type = float(max_norm), float(norm_type)

    def after_backward(self) -> None:
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.max_norm, self.norm_type)
        self.trainer.storage.put_scalar("grad_norm", float(norm), smoothing_hint=False)


class ProgressHook(HookBase):
    """Calls ``callback({"iteration", "max_iter", "elapsed_s", "eta_s", "loss"})`` at most once per
    ``min_interval`` seconds, and once more when training ends normally (max_iter or budget).

    ``iteration`` counts completed iterations. ``loss`` is the latest total loss. Errors raised
    by the callback are logged, not propagated: a flaky progress sink must not kill a run.
    """

    def __init__(self, clock: Clock, callback: Callable[[dict], None], max_iter: int,
                 budget_s: float | None = None, min_interval: float = 1.0) -> None:
        self.clock, self.callback, self.max_iter = clock, callback, int(max_iter)
        self.budget_s, self.min_interval = budget_s, min_interval
        self._last_emit = -math.inf
        self._start_iter = 0
        self._start_elapsed = 0.0

    def before_train(self) -> None:
        self.clock.start()
        self._start_iter = self.trainer.iter
        self._start_elapsed = self.clock.elapsed()

    def _emit(self, done: int, final: bool) -> None:
        elapsed = self.clock.elapsed()
        eta: float | None = None
        if final:
            eta = 0.0
        elif done > self._start_iter:
            per_iter = (elapsed - self._start_elapsed) / (done - self._start_iter)
            eta = per_iter * (self.max_iter - done)
            if self.budget_s is not None:
                eta = min(eta, max(self.budget_s - elapsed, 0.0))
        loss = None
        hist = self.trainer.storage.histories().get("total_loss")
        if hist is not None and len(hist.values()):
            loss = float(hist.latest())
        payload = {"iteration": int(done), "max_iter": self.max_iter, "elapsed_s": round(elapsed, 3),
                   "eta_s": None if eta is None else round(eta, 3), "loss": loss}
        try:
            self.callback(payload)
        except Exception:  # noqa: BLE001 - see class docstring
            logger.exception("progress callback failed")

    def after_step(self) -> None:
        now = time.perf_counter()
        if now - self._last_emit >= self.min_interval:
            self._last_emit = now
            self._emit(self.trainer.iter + 1, final=False)

    def after_train(self) -> None:
        if getattr(self.trainer, "stopped_by", None) is not None:
            self._emit(self.trainer.iter, final=True)


def ema_decay(updates: int, decay: float) -> float:
    """Decay after ``updates`` averaging steps: ramps up as (1 + n) / (10 + n) to ``decay``.

    A fixed 0.999 would average over ~1000 steps, more than a short CPU run has, and keep the
    early, poor weights in the average; the ramp follows the run's own length.
    """
    return min(float(decay), (1.0 + updates) / (10.0 + updates))


class EMAHook(HookBase):
    """Exponential moving average of the model's weights (and buffers), updated after every step.

    ``averaged`` is the averaged copy (a module of the same structure as the model); the trainer
    evaluates and saves it instead of the raw weights (see ``DetectionTrainer.inference_model``).
    """

    def __init__(self, decay: float) -> None:
        self.decay = float(decay)
        self.ema: AveragedModel | None = None

    def _average(self, averaged: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        d = ema_decay(int(n), self.decay)
        if averaged and torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1.0 - d)
        else:  # integer buffers (BatchNorm's step counter): keep the latest
            for a, c in zip(averaged, current):
                a.copy_(c)

    def before_train(self) -> None:
        # Built here, not in __init__: the trainer may load initial weights after construction.
        self.ema = AveragedModel(self.trainer.model, multi_avg_fn=self._average, use_buffers=True)

    def after_step(self) -> None:
        self.ema.update_parameters(self.trainer.model)

    @property
    def averaged(self) -> torch.nn.Module | None:
        return None if self.ema is None else self.ema.module


def metric_key(metrics: dict) -> tuple[float, float]:
    """How snapshots compare: AP50 (the performance score) first, then AP."""
    return (metrics.get("ap50") if metrics.get("ap50") is not None else -1.0,
            metrics.get("ap") if metrics.get("ap") is not None else -1.0)


def clearly_better(earlier: dict, later: dict, margin: float) -> bool:
    """Do an earlier snapshot's validation metrics beat later weights by more than ``margin``?

    AP50 decides; within the margin, AP does. Anything closer is a tie, and ties go to the later
    weights: they trained longer, on a lower learning rate, and differences that small on a few
    dozen validation images are noise. On bccd (44 validation images, EMA on) the snapshots at
    360, 540 and 720 of 720 iterations scored AP50 0.9055, 0.9061 and 0.9064 there, and AP
    0.577, 0.580 and 0.581 on the test photos: the order that a 0.001 lead would decide was luck.
    """
    (e50, e), (l50, l) = metric_key(earlier), metric_key(later)
    if abs(e50 - l50) > margin:
        return e50 > l50
    return e - l > margin


def _inference_model(trainer) -> torch.nn.Module:
    """The weights a trainer would save now (its EMA copy when it keeps one)."""
    get = getattr(trainer, "inference_model", None)
    return get() if get is not None else trainer.model


class BestCheckpointHook(HookBase):
    """Evaluate a few snapshots late in the run and keep the best weights in memory.

    ``evaluate`` must score on VALIDATION images (carved from the training images), never on
    the images that report the version's score: choosing on those would make it optimistic.

    Snapshots are taken when the run passes each of ``at`` (fractions of its budget, or of
    MAX_ITER without one), with the clock paused, so evaluation never eats training time.
    After training, :meth:`choose` compares the best snapshot with the final weights and loads
    the snapshot into the model only when it is :func:`clearly_better` (by ``margin``).
    """

    def __init__(self, clock: Clock, evaluate: Callable[[torch.nn.Module], dict], budget_s: float | None,
                 max_iter: int, at: Sequence[float] = (0.5, 0.75), margin: float = 0.0) -> None:
        self.clock, self.evaluate = clock, evaluate
        self.budget_s, self.max_iter = budget_s, max_iter
        self.margin = float(margin)  # see clearly_better
        self.pending = sorted(at)
        self.best: tuple[dict, dict, int] | None = None  # (metrics, state dict, iterations)

    def _fraction(self) -> float:
        done = (self.trainer.iter + 1) / max(1, self.max_iter)
        if self.budget_s:
            done = max(done, self.clock.elapsed() / self.budget_s)
        return done

    def after_step(self) -> None:
        if not self.pending or self._fraction() < self.pending[0]:
            return
        while self.pending and self._fraction() >= self.pending[0]:
            self.pending.pop(0)
        model = _inference_model(self.trainer)
        with self.clock.paused():
            metrics = self.evaluate(model)
        if self.best is None or not clearly_better(self.best[0], metrics, self.margin):
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.best = (metrics, state, self.trainer.iter + 1)

    def choose(self, model: torch.nn.Module, final_metrics: dict, final_iterations: int) -> tuple[dict, int]:
        """(metrics, iteration) of the weights now in `model`: the final ones unless a snapshot beat them."""
        if self.best is not None and clearly_better(self.best[0], final_metrics, self.margin):
            metrics, state, iterations = self.best
            model.load_state_dict(state)
            return metrics, iterations
        return final_metrics, final_iterations
