"""The sink's Prometheus ``/metrics`` and its ``/health`` (prometheus-client, wsgiref).

``Settings.metrics_port`` (``RINGTALLY_METRICS_PORT``, 0 = off) starts a small
HTTP server in the sink process (:class:`SinkMetrics`), bound to
``RINGTALLY_WEB_HOST``. ``/health`` answers 200 ``{"status": "ok", ...}`` while
the sink runs with Postgres and Kafka up, 503 with the reason during an outage
(a load balancer or an orchestrator's probe reads it). Its counters are read
from the sink's own :class:`~connectors.postgres.sink.SinkStats` at scrape
time, and its lag from offsets the sink loop samples. The names (all
``ringtally_sink_*``) are listed in :mod:`streams.metrics` beside the
worker's, and explained in ``docs/metrics.md``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from streams.metrics import exposition, register_build_info

__all__ = ["SinkMetrics"]


class _SinkCollector:
    """Reads a running sink's stats and last lag sample at scrape time."""

    def __init__(self, owner: SinkMetrics) -> None:
        self.owner = owner

    def collect(self) -> Iterator[Any]:
        stats = self.owner.sink.stats
        rows = CounterMetricFamily(
            "ringtally_sink_rows",
            "Rows inserted into Postgres, per table (duplicates not counted).",
            labels=["table"],
        )
        rows.add_metric(["ballots"], stats.ballots)
        rows.add_metric(["rejections"], stats.rejections)
        rows.add_metric(["audit_log"], stats.audit)
        rows.add_metric(["tallies"], stats.tallies_changed)
        rows.add_metric(["sink_dead_letters"], stats.dead_letters)
        yield rows
        for name, help_, value in (
            (
                "ringtally_sink_records",
                "Kafka records consumed and committed to Postgres.",
                stats.records,
            ),
            ("ringtally_sink_batches", "Postgres transactions committed.", stats.batches),
            (
                "ringtally_sink_duplicates",
                "Re-emitted records absorbed by the unique keys.",
                stats.duplicates,
            ),
            (
                "ringtally_sink_outcome_conflicts",
                "Ballots and rejections dead-lettered as a second, different outcome for a "
                "votes-topic position (the first is kept).",
                stats.outcome_conflicts,
            ),
            (
                "ringtally_sink_gap_records",
                "Records deleted from a topic before the sink stored them, passed over "
                "because the operator accepted the gap (--accept-gap).",
                stats.gap_records,
            ),
            (
                "ringtally_sink_postgres_outages",
                "Times Postgres became unavailable.",
                stats.postgres_outages,
            ),
        ):
            yield CounterMetricFamily(name, help_, value=value)
        lag = GaugeMetricFamily(
            "ringtally_sink_lag",
            "Records on the topic not yet in Postgres: highwater minus the stored next offset.",
            labels=["topic", "partition"],
        )
        with self.owner.lock:
            sample = dict(self.owner.lag)
        for (topic, partition), value in sorted(sample.items()):
            lag.add_metric([topic, str(partition)], value)
        yield lag
        # A gauge, so not "_total" (the suffix Prometheus keeps for counters).
        yield GaugeMetricFamily(
            "ringtally_sink_lag_overall",
            "Sum of ringtally_sink_lag over all partitions.",
            value=sum(sample.values()),
        )


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """No access log on stderr: a scrape every few seconds would drown the sink's lines."""


class SinkMetrics:
    """The sink's ``/metrics`` endpoint: ``SinkMetrics(sink).start(port)``, ``.stop()``.

    A fresh registry per sink (tests run several sinks in one process). The
    sink loop calls :meth:`sample` with its consumer; the HTTP thread only ever
    reads the copied sample and the stats' integers.
    """

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.lock = threading.Lock()
        self.lag: dict[tuple[str, int], int] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_SinkCollector(self))
        register_build_info(self.registry)
        self._last_sample = 0.0
        self._server: Any = None
        self.port: int | None = None

    def start(self, port: int, host: str = "127.0.0.1") -> SinkMetrics:
        self._server = make_server(host, port, self._app, _Server, handler_class=_Quiet)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def health(self) -> tuple[int, dict[str, Any]]:
        """``(HTTP status, body)``: 200 and ``ok`` while every output the sink keeps is
        current; 503 naming what is down (Postgres, Kafka, or the read model's Redis: a
        read model left behind is a stale dashboard, so no "ok")."""
        sink = self.sink
        down = [name for name, outage in sink.outages().items() if outage.down]
        with self.lock:
            lag = sum(self.lag.values())
        body = {
            "status": "ok" if not down else "unavailable",
            "down": down,
            "lag": lag,
            "records": sink.stats.records,
        }
        return (200 if not down else 503), body

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path not in ("/health", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: the sink serves /metrics and /health\n"]
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            start_response(
                "405 Method Not Allowed",
                [("Content-Type", "text/plain; charset=utf-8"), ("Allow", "GET, HEAD")],
            )
            return [b"method not allowed: GET or HEAD\n"]
        if path == "/health":
            status, body = self.health()
            reason = "OK" if status == 200 else "Service Unavailable"
            start_response(f"{status} {reason}", [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        text, content_type = exposition(self.registry)
        start_response("200 OK", [("Content-Type", content_type)])
        return [text]

    def sample(
        self, consumer: Any, expected: dict[tuple[str, int], int | None], *, every: float = 0.5
    ) -> None:
        """Lag per partition from the consumer's highwaters and the offsets stored in Postgres."""
        now = time.monotonic()
        if now - self._last_sample < every:
            return
        self._last_sample = now
        lag: dict[tuple[str, int], int] = {}
        try:
            assignment = list(consumer.assignment())
        except Exception:  # noqa: BLE001
            return
        for tp in assignment:
            try:
                highwater = consumer.highwater(tp)
            except Exception:  # noqa: BLE001
                continue
            if highwater is None:
                continue
            done = expected.get((tp.topic, tp.partition)) or 0
            lag[(tp.topic, tp.partition)] = max(0, highwater - done)
        with self.lock:
            self.lag = lag

    def text(self) -> bytes:
        return exposition(self.registry)[0]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
