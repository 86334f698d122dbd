"""The URL paths the service writes into its own answers (Location headers, webhook links).

The spec (openapi/odconnect.yaml) declares the routes; this module is the one place that builds
paths to them, so that a moved prefix or resource changes here only.
"""
from __future__ import annotations

API_PREFIX = "/api/v1"
SWAGGER_UI = "/ui"
METRICS = "/metrics"  # Prometheus, beside the API


def run_path(model_id: int, run_id: int) -> str:
    return f"{API_PREFIX}/models/{model_id}/runs/{run_id}"


def subscription_path(subscription_id: int) -> str:
    return f"{API_PREFIX}/webhooks/{subscription_id}"


def job_path(model_id: int, job_id: int) -> str:
    return f"{API_PREFIX}/models/{model_id}/jobs/{job_id}"


def monitoring_path(model_id: int) -> str:
    return f"{API_PREFIX}/models/{model_id}/monitoring"
