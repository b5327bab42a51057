"""Prometheus metrics: scrape a real worker's /metrics and a real sink's endpoint after votes."""

from __future__ import annotations

import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.stack.harness import SinkProcess, WorkerProcess, free_port

pytestmark = pytest.mark.integration


def _scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _total(metrics, name: str, **labels: str) -> float:
    return sum(
        v for ls, v in metrics.get(name, []) if all(ls.get(k) == want for k, want in labels.items())
    )


def test_worker_and_sink_metrics_move_after_votes(stack, tmp_path):
    import asyncio

    from connectors.demo.simulation import Publisher, build_round
    from connectors.postgres.migrate import migrate
    from connectors.sdk import load_registrar
    from streams.topics import ensure_topics
    from tests.fixtures.pipeline import pipeline_settings

    settings = pipeline_settings(stack, partitions=2, metrics_port=free_port(), data_dir=tmp_path)
    ensure_topics(settings, internal=True)
    asyncio.run(migrate(settings))
    sink = SinkProcess(settings, tmp_path / "sink.log").start()
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        worker.start(ready_timeout=90)
        before = _scrape(settings.web_port)
        assert _total(before, "ringtally_ballots_total") == 0

        round_ = build_round(
            seed=5,
            genres=1,
            ring_size=16,
            submissions_per_genre=3,
            votes_per_reviewer=2,
            registrar=load_registrar(settings),
        )
        Publisher(settings).publish_phases(round_)
        records = len(round_.all_votes())  # records on the votes topic

        # Settled: the worker took every record, the sink has stored every ballot and
        # rejection the worker counted, and its lag is 0, on two scrapes in a row (one
        # scrape can fall between two waves of ballots, and the lag gauge lags itself).
        deadline = time.monotonic() + 90
        settled = 0
        while settled < 2:
            time.sleep(0.5)
            worker_m = _scrape(settings.web_port)
            sink_m = _scrape(settings.metrics_port)
            if time.monotonic() > deadline:
                pytest.fail(f"metrics never settled; last: worker {worker_m}, sink {sink_m}")
            done = (
                _total(worker_m, "ringtally_votes_in_total") >= records
                and _total(worker_m, "ringtally_ballots_total") > 0
                and _total(sink_m, "ringtally_sink_rows_total", table="ballots")
                == _total(worker_m, "ringtally_ballots_total")
                and _total(sink_m, "ringtally_sink_lag_overall") == 0
                and _total(sink_m, "ringtally_sink_rows_total", table="rejections")
                >= _total(worker_m, "ringtally_rejections_total")
            )
            settled = settled + 1 if done else 0

        votes = settings.topic("votes")
        assert _total(worker_m, "ringtally_votes_in_total") >= records
        assert _total(worker_m, "ringtally_accepted_total") > 0
        assert _total(worker_m, "ringtally_ballots_total") > 0
        assert _total(worker_m, "ringtally_tallies_total") > 0
        assert _total(worker_m, "ringtally_rejections_total", reason="malformed") >= 2
        assert _total(worker_m, "ringtally_batch_size_count", stage="verify") > 0
        assert _total(worker_m, "ringtally_batch_size_sum", stage="verify") >= records
        assert _total(worker_m, "ringtally_batch_duration_seconds_count", stage="tally") > 0
        lag_partitions = {
            ls["partition"]
            for ls, _ in worker_m["ringtally_consumer_highwater"]
            if ls["topic"] == votes
        }
        assert lag_partitions == {"0", "1"}
        assert (
            sum(v for ls, v in worker_m["ringtally_consumer_highwater"] if ls["topic"] == votes)
            == records
        )
        assert "ringtally_consumer_lag" in worker_m
        # the watchdogs' counters are served, and a calm run never trips them
        assert worker_m["ringtally_stall_seeks_total"] == [({}, 0.0)]
        assert worker_m["ringtally_stuck_records_total"] == [({}, 0.0)]

        assert _total(sink_m, "ringtally_sink_rows_total", table="ballots") == _total(
            worker_m, "ringtally_ballots_total"
        )
        assert _total(sink_m, "ringtally_sink_rows_total", table="tallies") > 0
        assert _total(sink_m, "ringtally_sink_records_total") > 0
        assert _total(sink_m, "ringtally_sink_batches_total") > 0
        assert {ls["topic"] for ls, _ in sink_m["ringtally_sink_lag"]} == {
            settings.topic(t) for t in ("ballots", "tallies", "rejections", "audit", "heads")
        }
        assert _total(sink_m, "ringtally_sink_lag_overall") == 0
    finally:
        worker.stop()
        sink.stop()
