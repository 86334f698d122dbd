"""create_app(config): the Connexion app serving openapi/odconnect.yaml, with its parts injected."""
from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path

import connexion
from connexion.options import SwaggerUIOptions
from flask import Response, json

from model_store import Store

from .config import load_config
from .context import AppContext
from .errors import OdError
from .inference.cache import PredictorCache
from .inference.model_thread import ModelThread
from .jobs.background import JobRunner
from .jobs.runs import RunManager
from .jobs.scheduler import RetrainScheduler
from .jobs.webhooks import WebhookDispatcher
from .services import dataset_suggestions
from .services.inference import predictor_loader, warm_published
from .api.urls import absolute
from .routing import SnakeCaseResolver
from .security import api_key_handler
from .studio import blueprint as studio_blueprint

SPEC_DIR = Path(__file__).resolve().parent.parent / "openapi"
SPEC_FILE = "odconnect.yaml"
API_PREFIX = "/api/v1"
log = logging.getLogger("odconnect")


def problem(status: int, title: str, detail: str, headers: dict | None = None, **extra) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(json.dumps(body), status=status, headers=headers or {},
                    mimetype="application/problem+json")


def create_app(config: dict | None = None) -> connexion.FlaskApp:
    """Build the service. `config` is a full tree from `load_config` (tests pass overrides through it)."""
    config = config or load_config()
    # Connexion logs a warning per request on operations that accept several content types.
    logging.getLogger("connexion.operations.openapi3").setLevel(logging.ERROR)
    store = Store(config["storage"]["database_url"], config["storage"]["root"])
    context = AppContext(config=config, store=store)

    app = connexion.FlaskApp(
        __name__,
        specification_dir=str(SPEC_DIR),
        security_map={"apiKey": api_key_handler(config["security"]["api_keys"])},
    )
    app.add_api(
        SPEC_FILE,
        resolver=SnakeCaseResolver(),
        pythonic_params=True,
        strict_validation=True,
        validate_responses=False,
        swagger_ui_options=SwaggerUIOptions(swagger_ui_path="/ui"),
    )
    flask_app = app.app
    flask_app.config["MAX_CONTENT_LENGTH"] = config["limits"]["max_import_bytes"]
    flask_app.extensions["odconnect"] = context
    flask_app.register_blueprint(studio_blueprint)  # the web studio at /studio, same origin as the API

    @flask_app.errorhandler(OdError)
    def _od_error(exc: OdError):
        headers = dict(exc.headers)
        if headers.get("Location", "").startswith("/"):
            headers["Location"] = absolute(headers["Location"])
        return problem(exc.status, exc.title, exc.detail, headers=headers, **exc.extra)

    threads = config["inference"]["torch_threads"]
    # Created before the cache so that it closes after it (services close in reverse order).
    model_thread = ModelThread()
    context.services["model_thread"] = model_thread
    predictors = PredictorCache(predictor_loader(store, threads, model_thread), config["inference"]["cache_size"])
    context.services["predictors"] = predictors
    threading.Thread(target=warm_published, args=(store, predictors), name="warm-predictors", daemon=True).start()
    # Before the runs: closed after them, so that events of runs stopped by a shutdown are stored first.
    webhooks = WebhookDispatcher(store, config)
    context.services["webhooks"] = webhooks
    webhooks.start()
    runs = RunManager(store, config)
    context.services["runs"] = runs
    runs.start()
    scheduler = RetrainScheduler(store, config, runs.submit)
    context.services["scheduler"] = scheduler
    scheduler.start()
    # After the runs and predictors it uses: closed before them.
    jobs = JobRunner(store, functools.partial(dataset_suggestions.execute, store, config, predictors, runs))
    context.services["jobs"] = jobs
    jobs.start()

    app.odconnect = context  # tests and the CLI reach the parts here
    return app
