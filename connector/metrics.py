"""Prometheus metrics at /metrics (prometheus-client).

Counted as they happen: request latency by operation, images detected on and objects found by
model. Read from the database at each scrape: training runs by state, the queue length and the
training workers' heartbeat ages — so every server process reports the same figures for them.
With several server processes (`serve --workers N`), prometheus-client's multiprocess mode sums
the counted figures of all of them (PROMETHEUS_MULTIPROC_DIR, set by `serve`).
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

REQUEST_SECONDS = Histogram("odconnect_request_seconds", "Time to answer a request, by operation",
                            ["operation", "method", "status"],
                            buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30))
DETECT_IMAGES = Counter("odconnect_detect_images_total", "Images detected on, by model", ["model"])
DETECTIONS = Counter("odconnect_detections_total", "Objects detected (above the threshold), by model", ["model"])

_in_flight = 0  # HTTP requests this process is answering now
_in_flight_lock = threading.Lock()  # one event loop writes it in a server; tests run several


def requests_in_flight() -> int:
    """HTTP requests this process is answering now, counted by :class:`MetricsMiddleware`."""
    return _in_flight


def _count_in_flight(change: int) -> None:
    global _in_flight
    with _in_flight_lock:
        _in_flight += change


class MetricsMiddleware:
    """ASGI middleware placed after Connexion's routing, which names the operation (by its
    resolved handler; `operation_names` maps that back to the spec's operationId)."""

    def __init__(self, app, operation_names: dict[str, str] | None = None):
        self.app = app
        self.operation_names = {} if operation_names is None else operation_names  # filled by add_api later

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]
        _count_in_flight(1)

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            _count_in_flight(-1)
            routing = scope.get("extensions", {}).get("connexion_routing", {})
            handler = routing.get("operation_id")
            operation = self.operation_names.get(handler, handler) if handler else "unmatched"
            REQUEST_SECONDS.labels(operation, scope.get("method", ""), str(status[0])).observe(
                time.perf_counter() - started)


def record_detection(model: str, found: int) -> None:
    DETECT_IMAGES.labels(model).inc()
    DETECTIONS.labels(model).inc(found)


class StoreCollector:
    """Figures read from the database when Prometheus scrapes: `read()` gives
    {"runs": {state: count}, "workers": [{id, device, secondsSinceHeartbeat}, ...],
     "production": {"captured": {model: pending}, "attention": {model: events}}}."""

    def __init__(self, read: Callable[[], dict]):
        self.read = read

    def collect(self):
        figures = self.read()
        states = GaugeMetricFamily("odconnect_runs", "Training runs by state", labels=["state"])
        for state, count in sorted(figures["runs"].items()):
            states.add_metric([state], count)
        yield states
        yield GaugeMetricFamily("odconnect_queue_length", "Training runs waiting for a worker",
                                value=figures["runs"].get("queued", 0))
        ages = GaugeMetricFamily("odconnect_worker_heartbeat_age_seconds",
                                 "Seconds since each training worker's last heartbeat", labels=["worker", "device"])
        for w in figures["workers"]:
            ages.add_metric([w["id"], w["device"]], w["secondsSinceHeartbeat"])
        yield ages
        production = figures["production"]
        for name, key, text in (("odconnect_captured_images_pending", "captured",
                                 "Captured detect images waiting for review, by model"),
                                ("odconnect_attention_events", "attention",
                                 "'Model needs attention' events raised, by model")):
            family = GaugeMetricFamily(name, text, labels=["model"])
            for model, count in sorted(production[key].items()):
                family.add_metric([model], count)
            yield family


def exposition(read: Callable[[], dict]) -> tuple[bytes, str]:
    """The metrics page: this process's (or, in multiprocess mode, all processes') counters plus
    the database's figures."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        multiprocess.MultiProcessCollector(registry)
    else:
        for metric in (REQUEST_SECONDS, DETECT_IMAGES, DETECTIONS):
            registry.register(metric)
    registry.register(StoreCollector(read))
    return generate_latest(registry), CONTENT_TYPE_LATEST
