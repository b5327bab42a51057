"""Prometheus metrics of one gateway process (``GET /metrics``).

A registry of its own (not the global one), so two apps in one test process
never share counters. Labels are route *templates* (``/api/v1/tallies/{submission_id}``),
methods and status codes: nothing about a client or a vote.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram

from streams.metrics import register_build_info

__all__ = ["GatewayMetrics", "MetricsMiddleware"]

_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        register_build_info(self.registry)
        self.requests = Counter(
            "ringtally_gateway_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ringtally_gateway_request_seconds",
            "time to answer a request (SSE: until the stream closed), by route template",
            ["route", "method"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.votes_accepted = Counter(
            "ringtally_gateway_votes_accepted",
            "votes published to Kafka (acknowledged by the broker)",
            registry=self.registry,
        )
        self.votes_invalid = Counter(
            "ringtally_gateway_votes_invalid",
            "POSTed votes refused before publishing (422, 413)",
            ["status"],
            registry=self.registry,
        )
        self.outcomes = Counter(
            "ringtally_gateway_outcomes",
            "outcomes returned to ?wait requests: counted, rejected (by reason) or pending",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self.sse_clients = Counter(
            "ringtally_gateway_sse_connections", "SSE connections opened", registry=self.registry
        )


class MetricsMiddleware:
    """Pure ASGI (no per-request task as BaseHTTPMiddleware has): counts and times requests."""

    def __init__(  # noqa: ANN001 - ASGI app
        self, app, metrics: GatewayMetrics, fixed_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.metrics = metrics
        #: paths without parameters: a request refused before routing (413, 429) is
        #: labelled with its path when it is one of these, else "unmatched"
        self.fixed_paths = fixed_paths

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message) -> None:  # noqa: ANN001
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None)
            if template is None:
                path = scope.get("path", "")
                template = path if path in self.fixed_paths else "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(template, method, str(status)).inc()
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - start)
