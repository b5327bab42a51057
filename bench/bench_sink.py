"""Sink throughput (ballot rows/s into Postgres) and lag (produce -> row visible) under load.

Runs the real ``ringtally sink`` as a subprocess against the stack in the
environment (``RINGTALLY_*``, default: the local stack), on a throw-away
topic prefix and Postgres schema (both removed at the end), and writes
``bench/results/sink.json``.

* throughput: N ballot records pre-produced across the ballots topic's
  partitions; each run gets a fresh schema and consumer group and drains them
  with ``--once``; rows/s = N / (time of the last row - time of the first row),
  watched by polling ``count(*)`` every 20 ms (the process start-up and group
  join are not counted). Median of ``--runs`` runs per loader.
* lag: one sink running, a producer sending ballots at ``--rate`` per second
  for ``--seconds``; a poller reads new rows by id every 10 ms; lag = first
  seen - produce call, p50/p99 (includes up to 10 ms of polling).

Usage: ``python bench/bench_sink.py [--records 200000] [--runs 3] [--rate 2000] [--seconds 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from connectors.postgres.migrate import migrate  # noqa: E402
from connectors.postgres.topics import DLQ, OUTPUTS, ensure_topics  # noqa: E402
from streams.settings import Settings  # noqa: E402
from tests.fixtures.sink_records import drop_schema, make_ballot, settings_env  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "sink.json"
console = Console()


def sink_proc(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from connectors.cli import main; main()",
            "sink",
            "--no-readmodel",
            *args,
        ],
        cwd=ROOT,
        env=settings_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def produce_ballots(settings: Settings, n: int, offset: int = 0) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=20,
        max_batch_size=1024 * 1024,
    )
    await producer.start()
    t0 = time.perf_counter()
    try:
        futs = []
        for i in range(offset, offset + n):
            b = make_ballot(i, f"sub-{i % 997}")
            futs.append(
                await producer.send(
                    settings.topic("ballots"), b.to_json(), key=b.submission_id.encode()
                )
            )
            if len(futs) >= 20_000:
                await asyncio.gather(*futs)
                futs.clear()
        await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return time.perf_counter() - t0


async def throughput_run(base: Settings, n: int, loader: str, batch: int, run: int) -> dict:
    settings = base.model_copy(update={"postgres_schema": f"{base.postgres_schema}_{loader}_{run}"})
    await migrate(settings)
    conn = await asyncpg.connect(settings.postgres_dsn)
    table = f'"{settings.postgres_schema}".ballots'
    proc = sink_proc(
        settings,
        "--once",
        "--loader",
        loader,
        "--batch-size",
        str(batch),
        "--group-id",
        f"{settings.topic_prefix}-{loader}-{run}",
    )
    first = last = None
    try:
        while True:
            count = await conn.fetchval(f"SELECT count(*) FROM {table}")
            now = time.perf_counter()
            if count and first is None:
                first = (now, count)
            if count >= n:
                last = now
                break
            if proc.poll() is not None:
                raise RuntimeError(f"sink exited early: {proc.stderr.read().decode()[-2000:]}")
            await asyncio.sleep(0.02)
        code = await asyncio.to_thread(proc.wait, 120)
        assert code == 0, proc.stderr.read().decode()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        await conn.close()
        await drop_schema(settings)
    assert first is not None and last is not None
    seconds = last - first[0]
    rows = n - first[1]
    return {
        "loader": loader,
        "batch_size": batch,
        "run": run,
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds),
    }


async def lag_run(base: Settings, rate: int, seconds: float, start_at: int) -> dict:
    settings = base.model_copy(update={"postgres_schema": f"{base.postgres_schema}_lag"})
    await migrate(settings)
    conn = await asyncpg.connect(settings.postgres_dsn)
    table = f'"{settings.postgres_schema}".ballots'
    # start from the end: only the new records count
    proc = sink_proc(settings, "--group-id", f"{settings.topic_prefix}-lag")
    produced: dict[uuid.UUID, float] = {}
    seen: dict[uuid.UUID, float] = {}
    try:
        # wait until the sink has caught up with the pre-produced backlog
        while await conn.fetchval(f"SELECT count(*) FROM {table}") < start_at:
            await asyncio.sleep(0.1)
        last_id = await conn.fetchval(f"SELECT coalesce(max(id), 0) FROM {table}")

        async def poll() -> None:
            nonlocal last_id
            while True:
                rows = await conn.fetch(
                    f"SELECT id, vote_id FROM {table} WHERE id > $1 ORDER BY id", last_id
                )
                now = time.perf_counter()
                for r in rows:
                    seen.setdefault(r["vote_id"], now)
                if rows:
                    last_id = rows[-1]["id"]
                await asyncio.sleep(0.01)

        poller = asyncio.create_task(poll())
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=1
        )
        await producer.start()
        try:
            total = int(rate * seconds)
            t0 = time.perf_counter()
            for k in range(total):
                due = t0 + k / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                b = make_ballot(start_at + k, f"sub-{k % 997}")
                produced[b.vote_id] = time.perf_counter()
                await producer.send(
                    settings.topic("ballots"), b.to_json(), key=b.submission_id.encode()
                )
            await producer.flush()
        finally:
            await producer.stop()
        deadline = time.perf_counter() + 60
        while len(seen.keys() & produced.keys()) < len(produced) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        poller.cancel()
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)
        await conn.close()
        await drop_schema(settings)
    lags = sorted((seen[v] - t) * 1000 for v, t in produced.items() if v in seen)
    q = statistics.quantiles(lags, n=100)
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "records": len(produced),
        "landed": len(lags),
        "p50_ms": round(q[49], 1),
        "p99_ms": round(q[98], 1),
        "max_ms": round(lags[-1], 1),
    }


async def main(args: argparse.Namespace) -> None:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    base = Settings(topic_prefix=prefix, postgres_schema=prefix.replace("-", "_"))
    await ensure_topics(base)
    console.print(
        f"[bold]sink bench[/] prefix {prefix}, {args.records:,} ballots, "
        f"{base.partitions} partitions"
    )
    produce_s = await produce_ballots(base, args.records)
    console.print(f"produced {args.records:,} ballots in {produce_s:.1f} s")
    runs = []
    try:
        for loader in args.loaders.split(",") if args.runs else ():
            for run in range(args.runs):
                r = await throughput_run(base, args.records, loader, args.batch_size, run)
                console.print(f"  {loader} run {run}: {r['rows_per_s']:,} rows/s")
                runs.append(r)
        lag = await lag_run(base, args.rate, args.seconds, args.records)
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=base.kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([base.topic(t) for t in (*OUTPUTS, DLQ)])
        finally:
            await admin.close()
    medians = {
        loader: round(statistics.median(r["rows_per_s"] for r in runs if r["loader"] == loader))
        for loader in args.loaders.split(",")
        if args.runs
    }
    table = Table(title="ringtally sink")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for loader, v in medians.items():
        table.add_row(
            f"ballot rows/s, loader={loader}, batch {args.batch_size} (median of {args.runs})",
            f"{v:,}",
        )
    table.add_row(f"lag p50 at {args.rate}/s", f"{lag['p50_ms']} ms")
    table.add_row(f"lag p99 at {args.rate}/s", f"{lag['p99_ms']} ms")
    table.add_row("lag max", f"{lag['max_ms']} ms")
    table.add_row("records landed / produced", f"{lag['landed']:,} / {lag['records']:,}")
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "command": "python bench/bench_sink.py " + " ".join(sys.argv[1:]),
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "records": args.records,
                "partitions": base.partitions,
                "batch_size": args.batch_size,
                "throughput_median_rows_per_s": medians,
                "throughput_runs": runs,
                "lag": lag,
            },
            indent=2,
        )
        + "\n"
    )
    console.print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=5000)
    p.add_argument("--loaders", default="copy,unnest")
    p.add_argument("--rate", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=20.0)
    asyncio.run(main(p.parse_args()))
