"""The HTTP gateway under load: votes accepted/s and POST latency, and the end-to-end rate.

One ``ringtally gateway`` process and one worker (memory tables, 4 partitions)
on a fresh topic prefix. An honest round of signed votes (rings of 16,
batchable signatures; signed before the clock starts) is POSTed to
``/api/v1/votes`` without ``wait`` by an asyncio load generator (aiohttp,
already a pinned dependency through Faust; ``--concurrency`` requests in
flight on keep-alive connections). A 202 means the broker acknowledged the
vote (acks=all), so "accepted/s" is votes durably on the votes topic per
second. Latency: p50/p99 of each POST, client side. End to end: from the first
POST until the worker has emitted a Ballot for every vote (counted on the
ballots topic), votes/s.

    python bench/bench_gateway.py [--votes 4000] [--concurrency 32] [--results PATH]

Prints a summary and writes bench/results/gateway.json. Short by design
(a few thousand requests): the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from confluent_kafka import Consumer  # noqa: E402

from connectors.demo.simulation import build_round  # noqa: E402
from connectors.sdk import SdkProducer  # noqa: E402
from connectors.stack.harness import WorkerProcess, free_port  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import delete_topics, ensure_topics, topics_with_prefix  # noqa: E402
from tests.fixtures.gateway import GatewayProcess  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "gateway.json"


class BallotCounter:
    """Counts distinct vote ids on the ballots topic in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.seen: set[str] = set()
        self.last = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> BallotCounter:
        self._thread.start()
        return self

    def _run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "group.id": f"bench-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        consumer.subscribe([self.settings.topic("ballots")])
        while not self._stop.is_set():
            for msg in consumer.consume(1000, timeout=0.2):
                if msg.error() is None:
                    vote_id = json.loads(msg.value())["vote_id"]
                    if vote_id not in self.seen:
                        self.seen.add(vote_id)
                        self.last = time.monotonic()
        consumer.close()

    def wait(self, n: int, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while len(self.seen) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.seen)}/{n} ballots after {timeout:.0f}s")
            time.sleep(0.05)
        return self.last

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


async def load(url: str, bodies: list[bytes], concurrency: int) -> tuple[list[float], dict, float]:
    """POST every body (``concurrency`` in flight); (latencies in s, statuses, elapsed s)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = list(reversed(bodies))
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as http:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                t = time.perf_counter()
                async with http.post(url, data=body, headers=headers) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                latencies.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return latencies, statuses, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=4000, help="votes POSTed (measured)")
    parser.add_argument("--warmup", type=int, default=200, help="votes POSTed before the clock")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    total = args.votes + args.warmup
    reviewers = 2 * 16
    per_reviewer = -(-total // reviewers)
    t_sign = time.monotonic()
    round_ = build_round(
        seed=17,
        genres=2,
        ring_size=16,
        submissions_per_genre=max(per_reviewer, 20),
        votes_per_reviewer=per_reviewer,
        attacks=False,
    )
    bodies = [p.value for p in round_.votes][:total]
    print(f"signed {len(bodies)} votes in {time.monotonic() - t_sign:.1f}s")

    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    settings = Settings(
        topic_prefix=prefix, partitions=4, table_store="memory", web_port=free_port()
    )
    ensure_topics(settings, internal=True)
    producer = SdkProducer(settings)
    for short, key, value in round_.control_messages():
        producer.send(settings.topic(short), key, value)
    producer.flush()
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"ringtally-{prefix}"
    worker = WorkerProcess(settings, logs / "worker.log").start(ready_timeout=120)
    gateway = GatewayProcess(settings, logs / "gateway.log").start()
    counter = BallotCounter(settings).start()
    url = f"{gateway.url}/api/v1/votes"
    try:
        asyncio.run(load(url, bodies[: args.warmup], min(8, args.concurrency)))
        counter.wait(args.warmup, 120)
        measured = bodies[args.warmup :]
        t0 = time.monotonic()
        latencies, statuses, elapsed = asyncio.run(load(url, measured, args.concurrency))
        last_ballot = counter.wait(len(bodies), 300)
        e2e = len(measured) / (last_ballot - t0)
    finally:
        counter.stop()
        gateway.stop()
        worker.stop()
        delete_topics(settings, topics_with_prefix(settings, [prefix]))

    accepted = statuses.get(202, 0)
    ms = sorted(x * 1000 for x in latencies)
    result = {
        "bench": "gateway",
        "client": "aiohttp",
        "votes": len(measured),
        "concurrency": args.concurrency,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "accepted_per_s": round(accepted / elapsed, 1),
        "post_latency_ms_p50": round(statistics.median(ms), 2),
        "post_latency_ms_p99": round(statistics.quantiles(ms, n=100)[98], 2),
        "post_latency_ms_max": round(ms[-1], 2),
        "end_to_end_votes_per_s": round(e2e, 1),
        "ring_size": 16,
        "partitions": settings.partitions,
        "workers": 1,
        "cpus": os.cpu_count(),
        "load_before": round(load_before, 2),
    }
    print(
        f"POST /api/v1/votes (no wait), {len(measured)} votes, {args.concurrency} in flight: "
        f"{result['accepted_per_s']} accepted/s, p50 {result['post_latency_ms_p50']} ms, "
        f"p99 {result['post_latency_ms_p99']} ms; statuses {result['statuses']}"
    )
    print(
        "end to end (first POST -> last Ballot, 1 worker): "
        f"{result['end_to_end_votes_per_s']} votes/s"
    )
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.results}")
    return 0 if accepted == len(measured) else 1


if __name__ == "__main__":
    raise SystemExit(main())
