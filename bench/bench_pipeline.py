"""Votes/s through verify -> tally on the local stack, and latency from produce to Tally.

For each worker count (1, then 2): a fresh topic prefix with 12 partitions,
rings of 16, an honest round of signed votes (protocol v2, batchable
signatures, one slot per vote). Registrar-signed rings and submissions are
published first; then every vote is
published at once and the clock runs until the last Ballot appears
(throughput; the tally stage emits a vote's Ballot and the Tally counting it
in the same batch). A second, paced phase at about half that rate gives
latency: produce time of the vote -> Kafka timestamp of its Ballot, p50/p99. In the
same run, a do-nothing Faust passthrough agent forwards the same votes: the
yardstick for what Faust itself costs here.

    python bench/bench_pipeline.py [--votes 10240] [--workers 1 2] [--store memory]
                                   [--repeats 3] [--against passthrough|log-off]
                                   [--results PATH]

Each configuration runs ``--repeats`` times, ringtally and its yardstick
back to back, so each ratio is measured within one pair of runs on this
shared machine; the table shows medians and every run's rate, and the JSON
keeps every run. CPU: the workers' own, and the whole machine's per vote.
``--against log-off`` makes the yardstick the same worker with the submission
log switched off (``bench/nolog_worker.py``): issue 19's budget, the log's
cost measured within each pair, the pair's order swapped every repeat so a
drift of the shared machine's speed does not favour one side.
Prints a table and writes bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from connectors.demo.simulation import build_round  # noqa: E402
from connectors.sdk import SdkProducer  # noqa: E402
from connectors.sdk.registrar import pin_registrar  # noqa: E402
from connectors.stack.harness import WorkerProcess, free_port, wait_group_settled  # noqa: E402
from connectors.stack.process import cpu_seconds  # noqa: E402
from models.internal import vote_id_for_token  # noqa: E402
from streams.errors import ServiceUnavailable  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import delete_topics, ensure_topics, topics_with_prefix  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "pipeline.json"
#: Each ringtally run's throughput over its paired yardstick run's, by yardstick.
RATIOS = {"passthrough": "ratio_to_passthrough", "log-off": "ratio_to_log_off"}
#: What each kind of run starts: ringtally's worker, or a yardstick of it.
MODULES = {
    "ringtally": "connectors.cli",
    "log-off": "bench.nolog_worker",
    "passthrough": "bench.passthrough_app",
}
# Wide enough for the table on a pipe too (rich would fold it at 80 columns).
console = Console(width=None if sys.stdout.isatty() else 150)


@dataclass
class Watch:
    """Counts distinct records on one topic in a background thread, keeping their Kafka
    timestamps (the first copy's): a record that comes twice (a redelivery after a
    rebalance re-emits the same bytes) is counted once."""

    settings: Settings
    topic: str
    stamps: list[tuple[bytes, int]] = field(default_factory=list)
    _seen: set[bytes] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Watch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "group.id": f"bench-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([self.topic])
        while not self._stop.is_set():
            for msg in consumer.consume(1000, timeout=0.2):
                if msg.error() is None and msg.value() not in self._seen:
                    self._seen.add(msg.value())
                    self.stamps.append((msg.value(), msg.timestamp()[1]))
        consumer.close()

    def wait_count(self, n: int, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while len(self.stamps) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.topic}: {len(self.stamps)}/{n} records after {timeout:.0f}s"
                )
            time.sleep(0.02)
        return time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _machine_cpu_seconds() -> float:
    """CPU seconds used by every process on the machine so far (user + system, /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    busy = sum(int(fields[i]) for i in (0, 1, 2, 5, 6, 7))  # user nice system irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def _workers_cpu_seconds(procs: list[WorkerProcess]) -> float:
    return sum(cpu_seconds(p.proc.pid) or 0.0 for p in procs)


def _publish(
    settings: Settings, messages: list[tuple[str, bytes, bytes]], pace: float | None = None
) -> dict[bytes, int]:
    """Publish; returns vote key -> produce wall time (ms) for the latency phase."""
    producer = SdkProducer(settings, **{"linger.ms": 1})
    sent: dict[bytes, int] = {}
    start = time.monotonic()
    for n, (short, key, value) in enumerate(messages):
        if pace:
            delay = start + n / pace - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        sent[key] = int(time.time() * 1000)
        producer.send(settings.topic(short), key, value)
    producer.flush(120)
    return sent


def run_config(kind: str, workers: int, votes: int, store: str, log_dir: Path) -> dict:
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    load_before = os.getloadavg()[0]
    per_reviewer = max(1, votes // (4 * 16))
    round_ = build_round(
        seed=11,
        genres=4,
        ring_size=16,
        submissions_per_genre=max(per_reviewer, 50),
        votes_per_reviewer=per_reviewer,
        attacks=False,
    )
    base = pin_registrar(  # the key that signed the round's rings and submissions
        Settings(topic_prefix=prefix, partitions=12, table_store=store, web_port=free_port())
    )
    ensure_topics(base, internal=True)
    _publish(base, list(round_.control_messages()))
    procs = []
    module = MODULES[kind]
    for i in range(workers):
        s = base.model_copy(update={"web_port": free_port()})
        procs.append(
            WorkerProcess(s, log_dir / f"{kind}-{workers}-{i}.log", module=module).start(
                ready_timeout=120
            )
        )
    wait_group_settled(procs, base.partitions, timeout=120)
    # Completion is counted on Ballots: one per vote, emitted in the same batch step
    # as the Tally that counts it (Tallies are coalesced to one per submission per batch).
    out_topic = base.topic("passthrough") if kind == "passthrough" else base.topic("ballots")
    watch = Watch(base, out_topic).start()
    try:
        # Nothing but votes is on the votes topic (v2): no backlog passes through first.
        baseline = 0
        burst = [("votes", p.key, p.value) for p in round_.votes]
        half = len(burst) * 3 // 4
        t0 = time.monotonic()
        machine0 = _machine_cpu_seconds()
        workers0 = _workers_cpu_seconds(procs)
        _publish(base, burst[:half])
        t1 = watch.wait_count(baseline + half, 600)
        rate = half / (t1 - t0)
        # CPU per vote during the burst: the workers', and the whole machine's
        # (broker, workers, this benchmark's producer and consumer, anything else).
        workers_cpu_ms = (_workers_cpu_seconds(procs) - workers0) * 1000
        machine_cpu_ms = (_machine_cpu_seconds() - machine0) * 1000
        # Latency at about half the measured rate, on the remaining quarter.
        paced = burst[half:]
        sent = _publish(base, paced, pace=rate / 2)
        watch.wait_count(baseline + len(burst), 600)
        latencies = _latencies(kind, sent, watch.stamps)
        if kind != "passthrough":
            _check_log(kind, watch.stamps)
    finally:
        watch.stop()
        for p in procs:
            p.stop()
        # A broker keeps every partition's files open: leave nothing behind.
        delete_topics(base, topics_with_prefix(base, [prefix]))
    return {
        "kind": kind,
        "workers": workers,
        "votes": len(round_.votes),
        "store": store,
        "burst_votes": half,
        "votes_per_s": round(rate, 1),
        "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
        "latency_ms_p99": round(statistics.quantiles(latencies, n=100)[98], 1)
        if len(latencies) > 2
        else None,
        "paced_rate": round(rate / 2, 1),
        "workers_cpu_ms_per_vote": round(workers_cpu_ms / half, 3),
        "machine_cpu_ms_per_vote": round(machine_cpu_ms / half, 3),
        "load_before": round(load_before, 2),
    }


def _check_log(kind: str, ballots: list[tuple[bytes, int]]) -> None:
    """The log is on in a ringtally run (leaf indexes grow) and off in a log-off run (every
    ballot is leaf 0): each kind measures what it claims."""
    top = max(json.loads(value).get("leaf_index") or 0 for value, _ in ballots)
    if (top > 0) != (kind == "ringtally"):
        raise RuntimeError(f"{kind} run: largest ballot leaf_index {top}; the log is not as meant")


def _latencies(kind: str, sent: dict[bytes, int], records: list[tuple[bytes, int]]) -> list[float]:
    """Produce time -> Kafka timestamp of the vote's output record, for the paced votes.

    For ringtally the record is the vote's Ballot, which the tally stage emits in
    the same batch as the Tally that counts it.
    """
    by_token = {}
    for value, ts in records:
        body = json.loads(value)
        if kind == "passthrough" and body.get("type") != "vote_cast":
            continue  # the token issuances passed through too
        token = body.get("token_id") if kind == "passthrough" else str(body.get("vote_id"))
        by_token.setdefault(token, ts)
    out = []
    for key, sent_ms in sent.items():
        ident = key.decode() if kind == "passthrough" else str(vote_id_for_token(key.decode()))
        if ident in by_token:
            out.append(by_token[ident] - sent_ms)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=10240)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--store", choices=["memory", "rocksdb"], default="rocksdb")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of each configuration; the table shows medians (default 3)",
    )
    parser.add_argument(
        "--against",
        choices=["passthrough", "log-off"],
        default="passthrough",
        help="the yardstick paired with each ringtally run: a do-nothing Faust agent, or "
        "the worker with the submission log off (default passthrough)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    if args.repeats < 1 or args.votes < 64 or any(w < 1 for w in args.workers):
        parser.error("--repeats and --workers must be at least 1, --votes at least 64")
    runs = []
    ratio = RATIOS[args.against]
    log_dir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("benchmarking", total=len(args.workers) * 2 * args.repeats)
            for workers in args.workers:
                for repeat in range(args.repeats):
                    # ringtally and its yardstick back to back: their ratio is one run's;
                    # against the log-off worker, which goes first alternates
                    kinds = ["ringtally", args.against]
                    if args.against == "log-off" and repeat % 2:
                        kinds.reverse()
                    pair = {}
                    for kind in kinds:
                        progress.update(
                            task,
                            description=f"{kind}, {workers} worker(s), run {repeat + 1}",
                        )
                        pair[kind] = run_config(kind, workers, args.votes, args.store, log_dir)
                        pair[kind]["repeat"] = repeat
                        progress.console.log(
                            f"{kind}, {workers} worker(s), run {repeat + 1}: "
                            f"{pair[kind]['votes_per_s']:.0f} votes/s, "
                            f"p50/p99 {pair[kind]['latency_ms_p50']}/"
                            f"{pair[kind]['latency_ms_p99']} ms"
                        )
                        progress.advance(task)
                    on, off = pair["ringtally"], pair[args.against]
                    on[ratio] = round(on["votes_per_s"] / off["votes_per_s"], 3)
                    on["cpu_ratio"] = round(
                        on["workers_cpu_ms_per_vote"] / off["workers_cpu_ms_per_vote"], 3
                    )
                    on["against"] = args.against
                    progress.console.log(
                        f"round {repeat + 1}: ringtally / {args.against} throughput "
                        f"{on[ratio]:.3f}, worker CPU per vote {on['cpu_ratio']:.3f}"
                    )
                    runs.extend(pair.values())
    except ServiceUnavailable as exc:  # the local stack is not up: one line, not a traceback
        print(f"bench_pipeline: {exc} (start it with: ringtally stack up)", file=sys.stderr)
        return 2
    summary = _medians(runs)
    table = Table(
        title=f"pipeline: ring 16, 12 partitions, {args.store} tables, "
        f"median of {args.repeats} run(s)"
    )
    for col in (
        "kind",
        "workers",
        "votes/s",
        "runs",
        "p50 ms",
        "p99 ms",
        f"vs {args.against}",
        "worker CPU ms/vote",
        "machine CPU ms/vote",
    ):
        table.add_column(col, justify="right")
    for row in summary:
        table.add_row(
            row["kind"],
            str(row["workers"]),
            f"{row['votes_per_s']:.0f}",
            "/".join(f"{v:.0f}" for v in row["votes_per_s_runs"]),
            _ms(row["latency_ms_p50"]),
            _ms(row["latency_ms_p99"]),
            f"{row[ratio]:.1%}" if row["kind"] == "ringtally" else "",
            f"{row['workers_cpu_ms_per_vote']:.2f}",
            f"{row['machine_cpu_ms_per_vote']:.2f}",
        )
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(
        json.dumps(
            {
                "command": " ".join(sys.argv),
                "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "summary": summary,
                "runs": runs,
                "logs": str(log_dir),
            },
            indent=2,
        )
        + "\n"
    )
    console.print(table)
    console.print(f"wrote {args.results}")
    return 0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _medians(runs: list[dict]) -> list[dict]:
    """One row per (kind, workers): the median of each figure over its runs."""
    rows = []
    for key in dict.fromkeys((r["kind"], r["workers"]) for r in runs):
        mine = [r for r in runs if (r["kind"], r["workers"]) == key]
        row = {"kind": key[0], "workers": key[1], "runs": len(mine)}
        row["votes_per_s_runs"] = [r["votes_per_s"] for r in mine]
        for figure in (
            "votes_per_s",
            "latency_ms_p50",
            "latency_ms_p99",
            *RATIOS.values(),
            "cpu_ratio",
            "workers_cpu_ms_per_vote",
            "machine_cpu_ms_per_vote",
        ):
            values = [r[figure] for r in mine if r.get(figure) is not None]
            row[figure] = round(statistics.median(values), 3) if values else None
        rows.append(row)
    return rows


if __name__ == "__main__":
    sys.exit(main())
