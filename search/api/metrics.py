"""Prometheus metrics with a registry per app, so two apps in one process (tests) never share counts.

HTTP requests are counted and timed by a pure ASGI middleware (no per-request task or body
buffering, unlike ``BaseHTTPMiddleware``), labelled by route template, not raw path, so ids in
URLs cannot explode the number of series. Searches get their own histogram per query type and
target, split into the encoder's time and the rest.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from search.engine.results import SearchResults

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The app's registry and the series the API records."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "mmsearch_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "mmsearch_http_request_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.query_seconds = Histogram(
            "mmsearch_query_seconds",
            "Search latency (whole query) by query type and target",
            ["query_type", "target"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.encode_seconds = Histogram(
            "mmsearch_query_encode_seconds",
            "Time in the model (and image fetch/decode) per search",
            ["query_type"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.store_seconds = Histogram(
            "mmsearch_query_store_seconds",
            "Time in the vector store per search",
            ["target"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.results = Counter("mmsearch_query_results_total", "Results returned", ["target"], registry=r)
        self.query_errors = Counter(
            "mmsearch_query_errors_total", "Requests refused or failed, by error kind", ["error"], registry=r
        )
        self.in_flight = Gauge("mmsearch_http_in_flight", "Requests being served", registry=r)

    def observe_search(self, results: SearchResults) -> None:
        t = results.timings
        self.query_seconds.labels(results.query_type, results.target).observe(t.total_ms / 1000)
        self.encode_seconds.labels(results.query_type).observe(t.encode_ms / 1000)
        self.store_seconds.labels(results.target).observe(t.store_ms / 1000)
        self.results.labels(results.target).inc(len(results.items))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request under its route template."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        started = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_flight.dec()
            route = _route_template(scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(method, route, str(status["code"])).inc()
            self.metrics.request_seconds.labels(method, route).observe(time.perf_counter() - started)


def _route_template(scope: dict) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
