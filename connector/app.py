"""create_app(config): the Connexion app serving the spec, with its parts built and injected."""
from __future__ import annotations

import functools
import logging

import connexion
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from flask import Response, json
from sqlalchemy.exc import IntegrityError, OperationalError

from model_store import Store

from .api.urls import absolute
from .config import load_config
from .context import AppContext
from .errors import OdError
from .inference.cache import PredictorCache
from .inference.model_thread import ModelThread
from .jobs.background import job_runner
from .jobs.production import ProductionWorker
from .jobs.reaper import RunReaper
from .jobs.runs import run_manager
from .jobs.scheduler import RetrainScheduler
from .jobs.warmer import PublishedWarmer
from .jobs.webhooks import WebhookDispatcher
from .metrics import MetricsMiddleware, exposition
from .routes import METRICS, SWAGGER_UI
from .routing import SnakeCaseResolver
from .security import api_key_handler
from .security.throttle import FailedAuthThrottle
from .services import dataset_suggestions, health
from .services.engine_choice import predictor_loader
from .services.inference import publish
from .spec import SPEC_DIR, SPEC_FILE, load_spec
from .studio import blueprint as studio_blueprint
from .validation import ControlCharacterGuard, validator_map

log = logging.getLogger("odconnect")


def problem(status: int, title: str, detail: str, headers: dict | None = None, **extra) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(json.dumps(body), status=status, headers=headers or {},
                    mimetype="application/problem+json")


def _start_parts(config: dict, store: Store) -> AppContext:
    """Build and start the background parts, in the order AppContext.close() undoes."""
    model_thread = ModelThread()  # before the cache: it closes after it
    predictors = PredictorCache(predictor_loader(store, config, model_thread),
                                config["inference"]["cache_size"])
    warmer = PublishedWarmer(store, predictors, config["inference"]["warm_poll_seconds"])
    warmer.start()
    # Before the runs: closed after them, so that events of runs stopped by a shutdown are stored first.
    webhooks = WebhookDispatcher(store, config)
    webhooks.start()
    if config["jobs"]["broker_url"]:
        from .jobs.celery_app import celery_runners  # Celery is imported only where it is used
        runs, jobs = celery_runners(store, config)
    else:
        # The promotion gate publishes through the publish service: the cache warms, the webhook fires.
        runs = run_manager(store, config, publish=lambda model_id, number: publish(
            store, config, model_thread, predictors, model_id, number))
        # After the runs and predictors it uses: closed before them.
        jobs = job_runner(store, config, functools.partial(dataset_suggestions.execute, store, config, predictors, runs))
    runs.start()
    reaper = RunReaper(store, config)
    reaper.start()
    scheduler = RetrainScheduler(store, config, runs.submit)
    scheduler.start()
    jobs.start()
    production = ProductionWorker(store, config)  # closed before the webhooks: its events are stored first
    production.start()
    return AppContext(config=config, store=store, model_thread=model_thread, predictors=predictors,
                      webhooks=webhooks, runs=runs, reaper=reaper, scheduler=scheduler, warmer=warmer, jobs=jobs,
                      production=production)


def create_app(config: dict | None = None) -> connexion.FlaskApp:
    """Build the service. `config` is a full tree from `load_config` (tests pass overrides through it)."""
    config = config or load_config()
    # Connexion logs a warning per request on operations that accept several content types.
    logging.getLogger("connexion.operations.openapi3").setLevel(logging.ERROR)
    store = Store(config["storage"]["database_url"], config["storage"]["root"])

    keys = api_key_handler(store, config["security"]["api_keys"], load_spec(),
                           FailedAuthThrottle(config["security"]["unknown_keys_per_minute"]))
    app = connexion.FlaskApp(__name__, specification_dir=str(SPEC_DIR), security_map={"apiKey": keys})
    resolver = SnakeCaseResolver()
    app.add_middleware(MetricsMiddleware, position=MiddlewarePosition.BEFORE_SECURITY,  # after routing
                       operation_names=resolver.spec_ids)
    app.add_api(
        SPEC_FILE,
        resolver=resolver,
        pythonic_params=True,
        strict_validation=True,
        validator_map=validator_map(),
        validate_responses=False,
        swagger_ui_options=SwaggerUIOptions(swagger_ui_path=SWAGGER_UI),
    )
    # after the exception middleware (so its 400 is a problem+json answer), before routing
    app.add_middleware(ControlCharacterGuard, position=MiddlewarePosition.BEFORE_SWAGGER)
    flask_app = app.app
    flask_app.config["MAX_CONTENT_LENGTH"] = config["limits"]["max_import_bytes"]

    @flask_app.errorhandler(OdError)
    def _od_error(exc: OdError):
        headers = dict(exc.headers)
        if headers.get("Location", "").startswith("/"):
            headers["Location"] = absolute(headers["Location"])
        return problem(exc.status, exc.title, exc.detail, headers=headers, **exc.extra)

    # Two requests that pass the same check together (the same picture uploaded twice at once)
    # meet at a unique constraint: the later one's transaction is rolled back whole, so sending
    # it again is safe, and then it sees the other's row.
    @flask_app.errorhandler(IntegrityError)
    def _race(exc: IntegrityError):
        logging.getLogger(__name__).info("concurrent write refused: %s", exc.orig)
        return problem(409, "Conflict", "another request changed the same data at the same moment; "
                                        "nothing of this one was stored: send it again")

    @flask_app.errorhandler(OperationalError)
    def _database_busy(exc: OperationalError):
        logging.getLogger(__name__).warning("database unavailable: %s", exc.orig)
        return problem(503, "Service Unavailable", "the database is busy or unreachable; nothing was stored: "
                                                   "try again shortly", headers={"Retry-After": "2"})

    flask_app.register_blueprint(studio_blueprint)  # the web studio at /studio, same origin as the API
    context = _start_parts(config, store)
    flask_app.extensions["odconnect"] = context

    @flask_app.get(METRICS)
    def _metrics():  # for Prometheus, beside the API (no key: expose it only where scrapers reach)
        body, content_type = exposition(lambda: health.figures(context.store, context.config))
        return Response(body, content_type=content_type)

    app.odconnect = context  # tests and the CLI reach the parts here
    return app
