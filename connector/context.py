"""What a request handler can reach: the parts create_app builds, as typed fields.

Handlers take the context with `ctx()` and hand the parts a use case needs to one service
function; nothing is looked up by a string key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

from model_store import Store

if TYPE_CHECKING:  # the parts import torch and APScheduler; the context itself stays light
    from .inference.cache import PredictorCache
    from .inference.model_thread import ModelThread
    from .jobs.celery_app import CeleryRunner
    from .jobs.production import ProductionWorker
    from .jobs.reaper import RunReaper
    from .jobs.serial import SerialRunner
    from .jobs.scheduler import RetrainScheduler
    from .jobs.warmer import PublishedWarmer
    from .jobs.webhooks import WebhookDispatcher


@dataclass
class AppContext:
    config: dict
    store: Store
    model_thread: "ModelThread"
    predictors: "PredictorCache"
    webhooks: "WebhookDispatcher"
    runs: "SerialRunner | CeleryRunner"  # training runs: on a thread here, or on Celery workers (jobs.broker_url)
    reaper: "RunReaper"
    scheduler: "RetrainScheduler"
    warmer: "PublishedWarmer"
    jobs: "SerialRunner | CeleryRunner"  # background jobs of models (dataset-wide suggestions), likewise
    production: "ProductionWorker"  # capture and monitoring: what detect hands over

    @property
    def limits(self) -> dict:
        return self.config["limits"]

    def close(self) -> None:
        """Stop the background parts in the reverse order of their start, then the store.

        The scheduler stops first (no new runs), then the background jobs (they use the runs and
        the predictors), the reaper and the runs (their end events are stored), the production
        worker (queued captures and counted figures are written, attention events stored), the
        webhook dispatcher, the warmer, the predictors and finally the model thread they run on.
        """
        for part in (self.scheduler, self.jobs, self.reaper, self.runs, self.production, self.webhooks,
                     self.warmer, self.predictors, self.model_thread):
            part.close()
        self.store.dispose()


def ctx() -> AppContext:
    return current_app.extensions["odconnect"]
