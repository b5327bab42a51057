"""Prometheus metrics for the worker (prometheus-client); the sink's are
:mod:`connectors.postgres.metrics`.

Worker: served at ``GET /metrics`` by Faust's own web server, on the worker's
``web_port`` next to ``/health`` (no second port to open or firewall). The
agents' wiring (:mod:`agents.pipeline`) calls the hooks below; consumer lag is
computed when the page is scraped, from the Faust consumer's highwater marks
and committed offsets.

Sink: ``Settings.metrics_port`` (``RINGTALLY_METRICS_PORT``, 0 = off) starts a
small HTTP server in the sink process
(:class:`connectors.postgres.metrics.SinkMetrics`).

Names (all prefixed ``ringtally_``)::

    worker                                       sink
    votes_in_total                               sink_rows_total{table}
    accepted_total                               sink_records_total
    ballots_total                                sink_batches_total
    rejections_total{reason}                     sink_duplicates_total
    tallies_total                                sink_postgres_outages_total
    stall_seeks_total                            sink_lag{topic,partition}
    batch_size{stage}            (histogram)     sink_lag_overall
    batch_duration_seconds{stage} (histogram)
    consumer_lag{topic,partition}
    consumer_highwater / consumer_committed_offset {topic,partition}
    build_info{version,ringcrypto,spec} (worker, sink and gateway alike)

Every endpoint answers in the text exposition format 0.0.4 and says so
(:data:`CONTENT_TYPE`); :func:`exposition` is the one place that pairs them.

See ``docs/metrics.md`` for what each one means and how to scrape them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

__all__ = [
    "CONTENT_TYPE",
    "WORKER_REGISTRY",
    "batch",
    "exposition",
    "install",
    "register_build_info",
    "worker_metrics_text",
]

#: The content type of what :func:`prometheus_client.generate_latest` writes: the text
#: format, version 0.0.4 (prometheus-client's CONTENT_TYPE_LATEST now names 1.0.0).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """A registry's metrics and the content type that says which format they are in."""
    return generate_latest(registry), CONTENT_TYPE


class _BuildInfo:
    """``ringtally_build_info{version,ringcrypto,spec} 1``: which build answers a scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from .version import versions

        v = versions()
        info = GaugeMetricFamily(
            "ringtally_build_info",
            "Always 1; the labels say which ringtally and Rust core this process runs.",
            labels=["version", "ringcrypto", "spec"],
        )
        info.add_metric([v["version"], v["ringcrypto"], v["spec"]], 1)
        yield info


def register_build_info(registry: CollectorRegistry) -> None:
    """Add ``ringtally_build_info`` to a registry (worker, sink, gateway)."""
    registry.register(_BuildInfo())


# --- worker ------------------------------------------------------------------------

#: One registry per worker process (not prometheus-client's global one, so a
#: test process that also runs sinks never registers a name twice).
WORKER_REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=WORKER_REGISTRY)
PlatformCollector(registry=WORKER_REGISTRY)
register_build_info(WORKER_REGISTRY)

VOTES_IN = Counter(
    "ringtally_votes_in",
    "Records read from the votes topic.",
    registry=WORKER_REGISTRY,
)
ACCEPTED = Counter(
    "ringtally_accepted",
    "Votes that passed the verify stage (slot tag unspent, ring version and signature good).",
    registry=WORKER_REGISTRY,
)
BALLOTS = Counter(
    "ringtally_ballots",
    "Ballots emitted by the tally stage (a redelivered vote re-emits its ballot; "
    "the sink de-duplicates).",
    registry=WORKER_REGISTRY,
)
REJECTIONS = Counter(
    "ringtally_rejections",
    "Rejections emitted, by reason code.",
    ["reason"],
    registry=WORKER_REGISTRY,
)
TALLIES = Counter(
    "ringtally_tallies",
    "Tally updates emitted (at most one per submission per batch).",
    registry=WORKER_REGISTRY,
)
BATCH_SIZE = Histogram(
    "ringtally_batch_size",
    "Records per agent batch.",
    ["stage"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048),
    registry=WORKER_REGISTRY,
)
BATCH_SECONDS = Histogram(
    "ringtally_batch_duration_seconds",
    "Time to process one agent batch (verify: parse, batch signature check, apply).",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=WORKER_REGISTRY,
)
STALL_SEEKS = Counter(
    "ringtally_stall_seeks_total",
    "times the worker sought back to committed offsets because an owned partition "
    "stopped being read, or its commit was held by records never delivered (streams.stall)",
    registry=WORKER_REGISTRY,
)
ORDER_RESEEKS = Counter(
    "ringtally_order_reseeks_total",
    "partitions an agent sought back again because the records its first seek back "
    "asked for had not come after a few seconds (agents.pipeline)",
    registry=WORKER_REGISTRY,
)
ORDER_SEEKS = Counter(
    "ringtally_order_seeks_total",
    "times an agent got a record ahead of its partition's next offset, held it back "
    "and sought the partition back (agents.order)",
    registry=WORKER_REGISTRY,
)
LEAVES_AFTER_FINAL = Counter(
    "ringtally_log_leaves_after_final_total",
    "votes the tally stage refused (submission_closed) instead of appending a leaf to a log "
    "whose final head it had signed: a bug or a broken rule upstream (agents.tally)",
    registry=WORKER_REGISTRY,
)
ORDER_GAPS_SKIPPED = Counter(
    "ringtally_order_gaps_skipped_total",
    "gaps in a source partition that the log proved hold no record (transaction markers, "
    "aborted records) and an agent moved past (agents.order)",
    registry=WORKER_REGISTRY,
)
STUCK_RECORDS = Counter(
    "ringtally_stuck_records_total",
    "times a record stayed with an agent, unacknowledged, for RINGTALLY_STALL_AFTER "
    "seconds (streams.stall; logged with a task dump)",
    registry=WORKER_REGISTRY,
)
FENCED_BATCHES = Counter(
    "ringtally_fenced_batches_total",
    "batches whose changelog writes were dropped because the group generation changed "
    "before their hand-over: the worker was evicted, and stops (exit 75; streams.fence)",
    registry=WORKER_REGISTRY,
)
LEASE_WAITS = Counter(
    "ringtally_lease_waits_total",
    "writes (or produce requests) held because the worker's ownership lease had expired: "
    "no heartbeat of its group generation answered in time (streams.lease)",
    registry=WORKER_REGISTRY,
)
LEASE_LOST = Counter(
    "ringtally_lease_lost_total",
    "writes dropped because the ownership lease was not renewed in the same group "
    "generation: the worker may have lost its partitions, and stops (exit 75; streams.lease)",
    registry=WORKER_REGISTRY,
)
FENCE_SKIPPED = Counter(
    "ringtally_fence_skipped_records_total",
    "changelog records a recovery skipped: written under an older ownership epoch than "
    "one their partition had shown, a paused worker's late writes (streams.fence)",
    registry=WORKER_REGISTRY,
)
FENCE_HEALS = Counter(
    "ringtally_fence_heals_total",
    "keys an owner re-wrote to its changelog because their last record was a paused "
    "worker's late write (streams.fence)",
    registry=WORKER_REGISTRY,
)
CONSUMER_LAG = Gauge(
    "ringtally_consumer_lag",
    "Highwater minus committed offset, per assigned partition (computed at scrape time).",
    ["topic", "partition"],
    registry=WORKER_REGISTRY,
)
CONSUMER_HIGHWATER = Gauge(
    "ringtally_consumer_highwater",
    "Highwater mark (next offset to be written) per assigned partition.",
    ["topic", "partition"],
    registry=WORKER_REGISTRY,
)
CONSUMER_COMMITTED = Gauge(
    "ringtally_consumer_committed_offset",
    "Offset committed by this worker (next offset to read) per assigned partition.",
    ["topic", "partition"],
    registry=WORKER_REGISTRY,
)


@contextlib.contextmanager
def batch(stage: str, size: int) -> Iterator[None]:
    """Observe one agent batch: ``with metrics.batch("verify", len(events)): ...``."""
    BATCH_SIZE.labels(stage).observe(size)
    start = time.perf_counter()
    try:
        yield
    finally:
        BATCH_SECONDS.labels(stage).observe(time.perf_counter() - start)


async def _sample_consumer(app: Any) -> None:
    """Refresh the per-partition gauges from the Faust consumer (highwater, committed)."""
    try:
        consumer = app.consumer
        assignment = sorted(consumer.assignment())
    except Exception:  # noqa: BLE001 - not started yet, or mid-rebalance: no lag to show
        return
    for gauge in (CONSUMER_LAG, CONSUMER_HIGHWATER, CONSUMER_COMMITTED):
        gauge.clear()  # partitions that moved away must not linger
    for tp in assignment:
        labels = (tp.topic, str(tp.partition))
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # noqa: BLE001
            continue
        if highwater is None or highwater < 0:
            continue
        committed = consumer._committed_offset.get(tp)  # noqa: SLF001 - no public accessor
        if committed is None:
            with contextlib.suppress(Exception):
                committed = await consumer.position(tp)
        CONSUMER_HIGHWATER.labels(*labels).set(highwater)
        if committed is not None:
            CONSUMER_COMMITTED.labels(*labels).set(committed)
            CONSUMER_LAG.labels(*labels).set(max(0, highwater - committed))


async def worker_metrics_text(app: Any) -> bytes:
    """The worker's metrics in Prometheus' text format."""
    await _sample_consumer(app)
    return generate_latest(WORKER_REGISTRY)


def install(app: Any) -> None:
    """Serve ``/metrics`` on the worker's web server (idempotent per app)."""
    if getattr(app, "_ringtally_metrics", False):
        return
    app._ringtally_metrics = True  # noqa: SLF001 - our own marker

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        body = await worker_metrics_text(app)
        # As a header: aiohttp's content_type argument refuses parameters (version, charset).
        return web.bytes(body, headers={"Content-Type": CONTENT_TYPE})
