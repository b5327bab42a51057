"""Soak: the full pipeline (worker + sink + Postgres) at half its maximum throughput, for long.

    python bench/soak.py --minutes 30            # writes bench/results/soak.json and soak.png

The rate defaults to half the single-worker votes/s in bench/results/pipeline.json
(ring of 16, RocksDB tables). Runs on a PRIVATE Kafka and PostgreSQL (like
bench/chaos.py). A generator process signs honest votes on the fly (protocol
v2: each on its reviewer's next slot, unique key images; when a reviewer's
``K`` slots of an epoch are used, the next epoch's ring and submissions) and
publishes them paced; every ``--sample`` seconds the harness records the RSS of the worker and
the sink (from /proc), the worker group's lag on the votes topic, the sink's lag
on the output topics (Postgres offsets vs end offsets) and the counts of
ballots in Postgres. At the end: RSS growth (first vs last quarter), maximum
lag, ERROR/Traceback lines in the logs, and a PNG of RSS and lag over time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.chaos import ChaosConfig, Cluster, _end_offsets, scan_logs  # noqa: E402
from streams.settings import Settings  # noqa: E402

RESULTS = ROOT / "bench" / "results"
GENRES = 40
RING = 16
#: votes_per_epoch of the soak's rings, and submissions per genre and epoch
K = 1000


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _keys(seed: int) -> dict[str, list[Any]]:
    import ringcrypto

    return {
        f"g{g}": [
            ringcrypto.SecretKey.from_seed(hashlib.sha256(f"soak/{seed}/{g}/{i}".encode()).digest())
            for i in range(RING)
        ]
        for g in range(GENRES)
    }


def epochs_needed(votes: float) -> int:
    """Epochs a run of ``votes`` votes reaches (each reviewer has K slots per epoch)."""
    return max(1, int(votes // (GENRES * RING * K)) + 1)


def control_records(seed: int, settings: Settings, epochs: int) -> list[tuple[str, bytes, bytes]]:
    """Registrar-signed rings (one per genre and epoch) and K submissions per genre and epoch."""
    import ringcrypto
    from connectors.demo.simulation import VALID_FROM
    from connectors.sdk.registrar import load_registrar
    from models import Ring, Submission

    registrar = load_registrar(settings)
    out = []
    for genre, keys in _keys(seed).items():
        ring = ringcrypto.Ring([k.public_key for k in keys])
        for epoch in range(1, epochs + 1):
            model = registrar.sign_ring(
                Ring(
                    ring_id=f"ring-{genre}-e{epoch}",
                    version=1,
                    genre=genre,
                    epoch=epoch,
                    public_keys=[pk.hex() for pk in ring.public_keys],
                    votes_per_epoch=K,
                    valid_from=VALID_FROM,
                )
            )
            out.append(("rings", model.ring_id.encode(), model.to_json()))
            for s in range(K):
                sub = registrar.sign_submission(
                    Submission(submission_id=_sub(genre, epoch, s), genre=genre, epoch=epoch)
                )
                out.append(("submissions", sub.submission_id.encode(), sub.to_json()))
    return out


def _sub(genre: str, epoch: int, n: int) -> str:
    return f"sub-{genre}-e{epoch}-{n:04d}"


def generator(
    settings_json: str,
    seed: int,
    rate: float,
    seconds: float,
    counter: Any,
    stop: Any,
    start: int = 0,
) -> None:
    """Child process: sign and publish honest votes at ``rate``/s for ``seconds``."""
    import ringcrypto
    from connectors.sdk import SdkProducer, build_vote

    settings = Settings.model_validate_json(settings_json)
    keys = _keys(seed)
    rings = {g: ringcrypto.Ring([k.public_key for k in ks]) for g, ks in keys.items()}
    producer = SdkProducer(settings, **{"linger.ms": 5, "log_level": 2})
    votes = settings.topic("votes")
    t0 = time.monotonic()
    n = start
    # vote n: genre n % GENRES, member (n // GENRES) % RING, that member's j-th vote
    # (j = n // (GENRES * RING)) on slot j % K of epoch 1 + j // K, on submission j % K of
    # that epoch: unique key images, every slot once
    while not stop.is_set() and time.monotonic() - t0 < seconds:
        delay = t0 + (n - start) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        genre = f"g{n % GENRES}"
        member = (n // GENRES) % RING
        j = n // (GENRES * RING)
        epoch, slot = 1 + j // K, j % K
        vote = build_vote(
            keys[genre][member],
            rings[genre],
            submission_id=_sub(genre, epoch, slot),
            ring_id=f"ring-{genre}-e{epoch}",
            ring_version=1,
            vote_type=("approve", "reject", "flag", "escalate")[n % 4],
            epoch=epoch,
            slot=slot,
            batchable=True,
        )
        producer.send(votes, vote.token_id.encode(), vote.to_json())
        n += 1
        if n % 200 == 0:
            counter.value = n
    producer.flush(120)
    counter.value = n


def _ballots(cluster: Cluster) -> int:
    try:
        return int(cluster.pg("SELECT count(*) AS n FROM chaos.ballots")[0]["n"])
    except Exception:  # noqa: BLE001
        return 0


def group_lag(settings: Settings, group: str, topic: str) -> int | None:
    c = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "log_level": 2,
        }
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        committed = c.committed(tps, timeout=10)
        lag = 0
        for tp in committed:
            high = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)[1]
            lag += high - max(tp.offset, 0)
        return lag
    except Exception:  # noqa: BLE001
        return None
    finally:
        c.close()


def sink_lag(cluster: Cluster) -> int | None:
    s = cluster.settings
    try:
        ends = _end_offsets(s, [s.topic(k) for k in ("ballots", "tallies", "rejections", "audit")])
        stored = {
            (r["topic"], r["partition"]): r["next_offset"]
            for r in cluster.pg("SELECT topic, partition, next_offset FROM chaos.sink_offsets")
        }
    except Exception:  # noqa: BLE001
        return None
    return sum(max(0, end - stored.get(k, 0)) for k, end in ends.items())


def chart(samples: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] / 60 for s in samples]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    ax1.plot(t, [(s["worker_rss_kib"] or 0) / 1024 for s in samples], label="worker RSS")
    ax1.plot(t, [(s["sink_rss_kib"] or 0) / 1024 for s in samples], label="sink RSS")
    ax1.set_ylabel("MiB")
    ax1.legend(loc="upper left")
    ax1.grid(alpha=0.3)
    ax1.set_title(title)
    ax2.plot(
        t,
        [s["worker_lag"] if s["worker_lag"] is not None else float("nan") for s in samples],
        label="worker lag (votes topic)",
    )
    ax2.plot(
        t,
        [s["sink_lag"] if s["sink_lag"] is not None else float("nan") for s in samples],
        label="sink lag (output topics)",
    )
    ax2.set_ylabel("records")
    ax2.set_xlabel("minutes")
    ax2.legend(loc="upper left")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument(
        "--rate", type=float, default=None, help="votes/s (default: half of pipeline.json)"
    )
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--calibrate",
        type=float,
        default=90.0,
        help="seconds of an unpaced run first, to measure the max (0: use pipeline.json)",
    )
    parser.add_argument("--name", default="soak", help="results as bench/results/<name>.json/.png")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    import signal

    from bench.chaos import _sigterm

    signal.signal(signal.SIGTERM, _sigterm)
    console = Console()
    calibration: dict[str, Any] = {}
    if args.rate is None and not args.calibrate:
        rows = json.loads((RESULTS / "pipeline.json").read_text())["results"]
        best = next(r for r in rows if r["kind"] == "ringtally" and r["workers"] == 1)
        args.rate = round(best["votes_per_s"] / 2, 1)
        rate_from = (
            f"half of {best['votes_per_s']} votes/s "
            f"(bench/results/pipeline.json, 1 worker, {best['store']})"
        )
    else:
        rate_from = "--rate"  # or the calibration below
    run_dir = (
        ROOT / ".ringtally" / "soak" / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    )
    cfg = ChaosConfig(partitions=12, store="rocksdb", sink_batch=2000)
    cluster = Cluster(cfg, run_dir, console)
    samples: list[dict[str, Any]] = []
    stop = mp.Event()
    counter = mp.Value("q", 0)
    gen: mp.Process | None = None
    t_start = time.monotonic()
    try:
        cluster.up()
        cluster.start_worker(0)
        cluster.wait_owned([0])
        cluster.start_sink()
        from connectors.sdk import SdkProducer

        producer = SdkProducer(cluster.settings, **{"log_level": 2})
        planned = (args.rate or 5000.0) * args.minutes * 60
        for short, key, value in control_records(
            args.seed, cluster.settings, epochs_needed(planned)
        ):
            producer.send(cluster.settings.topic(short), key, value)
        producer.flush(120)
        ctx = mp.get_context("spawn")
        start = 0
        if args.calibrate:
            # this workload's own maximum: the generator unpaced, ballots counted over the last part
            stop, counter = ctx.Event(), ctx.Value("q", 0)
            gen = ctx.Process(
                target=generator,
                args=(
                    cluster.settings.model_dump_json(),
                    args.seed,
                    1e9,
                    args.calibrate,
                    counter,
                    stop,
                ),
                daemon=True,
            )
            gen.start()
            time.sleep(args.calibrate / 3)
            b0, p0, c0 = _ballots(cluster), counter.value, time.monotonic()
            gen.join(args.calibrate + 60)
            b1, p1, c1 = _ballots(cluster), counter.value, time.monotonic()
            measured = (b1 - b0) / (c1 - c0)
            calibration = {
                "seconds": args.calibrate,
                "ballots_per_s": round(measured, 1),
                "published_per_s": round((p1 - p0) / (c1 - c0), 1),
            }
            start = counter.value
            t_drain = time.monotonic()
            while _ballots(cluster) < start and time.monotonic() - t_drain < 300:
                time.sleep(2)
            calibration["drain_s"] = round(time.monotonic() - t_drain, 1)
            if args.rate is None:
                args.rate = round(measured / 2, 1)
                rate_from = (
                    f"half of {measured:.0f} votes/s measured by a "
                    f"{args.calibrate:.0f} s unpaced run of "
                    f"this workload (TokenIssued + VoteCast per vote)"
                )
            console.print(f"calibration: {calibration}")
        console.print(
            f"soak: {args.minutes} min at {args.rate} votes/s ({rate_from}); dir {run_dir}"
        )
        seconds = args.minutes * 60
        stop, counter = ctx.Event(), ctx.Value("q", start)
        gen = ctx.Process(
            target=generator,
            args=(
                cluster.settings.model_dump_json(),
                args.seed,
                args.rate,
                seconds,
                counter,
                stop,
                start,
            ),
            daemon=True,
        )
        t0 = time.monotonic()
        gen.start()
        next_sample = t0
        while time.monotonic() - t0 < seconds + 5:
            if time.monotonic() >= next_sample:
                next_sample += args.sample
                w = cluster.workers.get(0)
                sample = {
                    "t": round(time.monotonic() - t0, 1),
                    "published": counter.value - start,
                    "worker_rss_kib": _rss_kib(w.proc.pid) if w and w.proc else None,
                    "sink_rss_kib": _rss_kib(cluster.sink.pid) if cluster.sink else None,
                    "worker_lag": group_lag(
                        cluster.settings, cluster.settings.group_id, cluster.settings.topic("votes")
                    ),
                    "sink_lag": sink_lag(cluster),
                    "ballots_pg": (cluster.pg("SELECT count(*) AS n FROM chaos.ballots")[0]["n"]),
                }
                samples.append(sample)
                if len(samples) % 6 == 1:
                    console.print(
                        f"  t={sample['t']:>6}s published {sample['published']:>7} "
                        f"ballots {sample['ballots_pg']:>7} "
                        f"worker {((sample['worker_rss_kib'] or 0) / 1024):.0f} MiB "
                        f"lag {sample['worker_lag']} "
                        f"sink {((sample['sink_rss_kib'] or 0) / 1024):.0f} MiB "
                        f"lag {sample['sink_lag']}"
                    )
            cluster.supervise()
            time.sleep(1.0)
        stop.set()
        gen.join(60)
        # drain: the pipeline and the sink catch up with what was published
        drain_t = time.monotonic()
        published = counter.value - start
        while time.monotonic() - drain_t < 300:
            n = _ballots(cluster)
            if n >= counter.value and (sink_lag(cluster) or 0) == 0:
                break
            time.sleep(2)
        drain_s = round(time.monotonic() - drain_t, 1)
        final_ballots = cluster.pg("SELECT count(*) AS n FROM chaos.ballots")[0]["n"]
        rejections = cluster.pg(
            "SELECT reason, count(*) AS n FROM chaos.rejections GROUP BY reason"
        )
    finally:
        stop.set()
        if gen is not None and gen.is_alive():
            gen.terminate()
        logs = scan_logs(cluster.log_dir)
        cluster.down()
        if not args.keep:
            shutil.rmtree(run_dir / "data", ignore_errors=True)

    def quarter_mean(key: str, which: int) -> float | None:
        vals = [s[key] for s in samples if s[key] is not None]
        if len(vals) < 8:
            return None
        q = len(vals) // 4
        part = vals[:q] if which == 0 else vals[-q:]
        return round(sum(part) / len(part) / 1024, 1)

    summary = {
        "command": " ".join(sys.argv),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "minutes": args.minutes,
        "rate_votes_per_s": args.rate,
        "rate_from": rate_from,
        "calibration": calibration,
        "published_votes": published,
        "published_votes_including_calibration": published + start,
        "ballots_in_postgres": final_ballots,
        "rejections": {r["reason"]: r["n"] for r in rejections},
        "drain_s": drain_s,
        "worker_rss_mib": {
            "first_quarter": quarter_mean("worker_rss_kib", 0),
            "last_quarter": quarter_mean("worker_rss_kib", 1),
            "max": round(max((s["worker_rss_kib"] or 0) for s in samples) / 1024, 1),
        },
        "sink_rss_mib": {
            "first_quarter": quarter_mean("sink_rss_kib", 0),
            "last_quarter": quarter_mean("sink_rss_kib", 1),
            "max": round(max((s["sink_rss_kib"] or 0) for s in samples) / 1024, 1),
        },
        "worker_lag": {
            "max": max((s["worker_lag"] or 0) for s in samples),
            "last": samples[-1]["worker_lag"],
        },
        "sink_lag": {
            "max": max((s["sink_lag"] or 0) for s in samples),
            "last": samples[-1]["sink_lag"],
        },
        "log_scan": {k: v for k, v in logs.items()},
        "unplanned_exits": cluster.unplanned,
        "machine": {"cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()]},
        "total_s": round(time.monotonic() - t_start, 1),
        "samples": samples,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    chart(
        samples,
        RESULTS / f"{args.name}.png",
        f"soak: {args.minutes:g} min at {args.rate} votes/s (worker + sink, private stack)",
    )
    table = Table(title=f"soak {args.minutes:g} min at {args.rate} votes/s")
    table.add_column("figure")
    table.add_column("value")
    for k in (
        "calibration",
        "published_votes",
        "published_votes_including_calibration",
        "ballots_in_postgres",
        "rejections",
        "drain_s",
        "worker_rss_mib",
        "sink_rss_mib",
        "worker_lag",
        "sink_lag",
        "unplanned_exits",
    ):
        table.add_row(k, str(summary[k]))
    table.add_row(
        "log errors / tracebacks / critical",
        f"{logs['errors']} / {logs['tracebacks']} / {logs['critical']}",
    )
    console.print(table)
    console.print(f"wrote {RESULTS / (args.name + '.json')} and {RESULTS / (args.name + '.png')}")
    ok = final_ballots == published + start and not cluster.unplanned and logs["tracebacks"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
