"""The detectron2 trainer: model, optimizer, data loader and hooks wired from one cfg."""

from __future__ import annotations

import logging
import threading
from typing import Callable, Sequence

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode
from detectron2.data import build_detection_train_loader
from detectron2.data.samplers import TrainingSampler
from detectron2.engine.train_loop import HookBase, SimpleTrainer
from detectron2.solver import build_optimizer
from detectron2.utils.events import EventStorage

from connector.modeling.atss import build_training_model
from connector.modeling.memory_format import to_fast_layout
from connector.training.dataset import TrainMapper
from connector.training.hooks import (
    BudgetHook, Canceled, CancelHook, Clock, EMAHook, GradClipHook, LRScheduleHook, ProgressHook,
)

__all__ = ["DetectionTrainer"]

logger = logging.getLogger("odconnect.training")


class DetectionTrainer(SimpleTrainer):
    """``SimpleTrainer`` for one detector on a list of dataset dicts.

    Unlike ``TrainerBase.train``, :meth:`train` can end early and cleanly when a hook calls
    :meth:`request_stop` (the budget); ``stopped_by`` then says why ("max_iter" | "budget").
    """

    def __init__(self, cfg: CfgNode, dataset_dicts: list[dict], *, clock: Clock | None = None,
                 budget_s: float | None = None, progress: Callable[[dict], None] | None = None,
                 cancel: threading.Event | None = None, extra_hooks: Sequence[HookBase] = ()) -> None:
        if not dataset_dicts:
            raise ValueError("no training images")
        model = to_fast_layout(build_training_model(cfg), cfg.MODEL.DEVICE)
        clip = cfg.SOLVER.CLIP_GRADIENTS
        clip_hook = None
        if clip.ENABLED and clip.CLIP_TYPE == "full_model":  # ours, see hooks.GradClipHook
            opt_cfg = cfg.clone()
            opt_cfg.defrost()
            opt_cfg.SOLVER.CLIP_GRADIENTS.ENABLED = False
            optimizer = build_optimizer(opt_cfg, model)
            clip_hook = GradClipHook(model, clip.CLIP_VALUE, clip.NORM_TYPE)
        else:
            optimizer = build_optimizer(cfg, model)
        loader = build_detection_train_loader(
            dataset_dicts,
            mapper=TrainMapper(cfg),
            sampler=TrainingSampler(len(dataset_dicts), shuffle=True, seed=cfg.SEED),
            total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
            aspect_ratio_grouping=cfg.DATALOADER.ASPECT_RATIO_GROUPING,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
        )
        super().__init__(model, loader, optimizer)
        self.cfg = cfg
        self.clock = clock or Clock()
        self.max_iter = int(cfg.SOLVER.MAX_ITER)
        self.stopped_by: str | None = None
        self._stop_reason: str | None = None
        s = cfg.SOLVER
        # First: it copies the model in before_train, before other hooks attach anything to it.
        self.ema = EMAHook(cfg.ODCONNECT.EMA.DECAY) if cfg.ODCONNECT.EMA.ENABLED else None
        self.register_hooks([
            self.ema,
            CancelHook(cancel) if cancel is not None else None,
            clip_hook,
            LRScheduleHook(optimizer, self.max_iter, s.WARMUP_ITERS, s.WARMUP_FACTOR,
                           cfg.ODCONNECT.FINAL_LR_FACTOR, self.clock, budget_s),
            BudgetHook(self.clock, budget_s) if budget_s is not None else None,
            ProgressHook(self.clock, progress, self.max_iter, budget_s) if progress else None,
            *extra_hooks,
        ])

    def load_weights(self, path: str) -> None:
        """Initialize from a checkpoint (model zoo .pkl/.pth or a previous version's weights);
        parameters whose shapes do not match (e.g. class heads) are skipped with a warning."""
        DetectionCheckpointer(self.model).load(path, checkpointables=[])

    def inference_model(self):
        """The weights to evaluate and save: the moving average when EMA is on, else the model."""
        if self.ema is not None and self.ema.averaged is not None:
            return self.ema.averaged
        return self.model

    def request_stop(self, reason: str) -> None:
        self._stop_reason = reason

    def train(self) -> None:  # type: ignore[override]
        """Run until ``MAX_ITER`` or a stop request; ``self.iter`` = completed iterations."""
        self.iter = self.start_iter = 0
        self.clock.start()
        with EventStorage(0) as self.storage:
            try:
                self.before_train()
                for self.iter in range(0, self.max_iter):
                    self.before_step()
                    self.run_step()
                    self.after_step()
                    if self._stop_reason is not None:
                        break
                self.iter += 1
                self.stopped_by = self._stop_reason or "max_iter"
            except Canceled:
                logger.info("training canceled at iteration %d", self.iter)
                raise
            except Exception:
                logger.exception("exception during training at iteration %d", self.iter)
                raise
            finally:
                self.after_train()
                self._release()

    def _release(self) -> None:
        """Free the data loader iterator (workers) and SimpleTrainer's thread pool."""
        self._data_loader_iter_obj = None
        self.concurrent_executor.shutdown(wait=False)
