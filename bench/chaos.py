"""Chaos harness: a seeded vote workload through the whole stack while faults are injected.

    python bench/chaos.py --votes 50000 --seed 1   # full run: bench/results/chaos.json
    python bench/chaos.py --short                  # ~3,000 votes, a few faults (make test)
    python bench/chaos.py --short --brokers 3 --broker-kills 1   # a 3-broker KRaft cluster

What runs: a PRIVATE local stack (its own Kafka and PostgreSQL, on free ports,
under ``.ringtally/chaos/<run>``; the shared stack is never touched, so
restarting "the broker" disturbs nobody else), one or two real ``ringtally
worker`` processes (RocksDB tables) and a real ``ringtally sink`` process.

The workload is :func:`connectors.demo.simulation.build_round` (seeded): honest
votes plus double votes, slot reuses, thefts, slots beyond the quota, forged
and transplanted signatures, foreign-partition copies, malformed messages and an
unsigned ring version (protocol v2), each
planned message with the outcome it must reach. Every message's votes-topic
position is captured from the producer's delivery report, so rejections are
matched to planned messages by (partition, offset), not by counting.

Faults, on a seeded schedule (each one fires when a seeded fraction of the
planned outcomes has been seen on the output topics, plus a seeded jitter, so
they land mid-stream whatever the machine's speed), each followed by recovery:

* ``worker_kill``      SIGKILL of a worker (the restarted one reuses its RocksDB dir);
* ``worker_pause``     SIGSTOP of worker 0 past the session timeout while a second
                       worker takes over, then SIGCONT (a zombie resuming);
* ``worker_wipe``      SIGKILL, the worker's RocksDB dir deleted, restart (changelog-only);
* ``broker_kill``      with ``--brokers 3``: SIGKILL of one broker, restarted 2-6 s later;
* ``rebalance``        a second worker joins (partitions split), then leaves
                       (SIGTERM, or SIGKILL for every second rebalance);
* ``broker_restart``   the private Kafka stopped and started again;
* ``postgres_restart`` the private PostgreSQL stopped (fast shutdown) and started;
* ``sink_kill``        SIGKILL of the sink while Postgres shows its connection
                       inside a transaction (mid-batch), then restarted.

A ring rotation and a ring deactivation are published while worker 0 is
SIGKILLed or SIGSTOPped (``Injector.control_during_fault``), between vote phases.

A supervisor restarts any process that died on its own and records it (a
worker exiting with 70 is an agent bug). At the end the harness waits until
every planned message has an outcome and the sink has caught up with the
output topics, then checks the invariants against the ground truth and prints
two tables (faults with recovery times; invariants expected vs got).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.chaos_checks import (  # noqa: E402
    Check,
    Observed,
    Plan,
    evaluate,
    plan_copies,
    producer_copies,
)
from connectors.demo.simulation import (  # noqa: E402
    Planned,
    Publisher,
    ReviewRound,
    build_round,
)
from connectors.sdk.registrar import pin_registrar  # noqa: E402
from connectors.stack.harness import HEALTH_POLL_S, WorkerProcess, free_port  # noqa: E402
from models.reasons import ReasonCode  # noqa: E402
from streams.pause import EXIT_PAUSED  # noqa: E402
from streams.settings import Settings  # noqa: E402

__all__ = ["ChaosConfig", "ChaosResult", "main", "run_chaos"]

RESULTS_DIR = ROOT / "bench" / "results"
FAULT_KINDS = (
    "worker_kill",
    "worker_pause",
    "worker_wipe",
    "rebalance",
    "broker_restart",
    "broker_kill",
    "postgres_restart",
    "sink_kill",
)
#: Votes of the deactivated ring held back until after its deactivation.
DEACTIVATED_VOTES = 6
#: Exit status of a worker that hit an internal bug (agents.pipeline.EXIT_BUG).
EXIT_BUG = 70
#: A fault after which no new outcome appears for this long is a liveness failure (after a
#: broker fault: counted from when Kafka serves every partition again, Cluster.serving).
LIVENESS_S = 60.0
#: How long a broker (or the whole cluster) may take to answer again after a restart:
#: generous, the JVMs took up to 100 s at load average 20-29 (session 10, seed 1).
KAFKA_UP_S = 300.0


# --- configuration ------------------------------------------------------------------


@dataclass
class ChaosConfig:
    votes: int = 50_000
    seed: int = 1
    worker_kills: int = 12
    #: SIGSTOP past the session timeout while a second worker takes over, then SIGCONT
    worker_pauses: int = 2
    #: SIGKILL, the worker's RocksDB dir deleted, restart: recovery from the changelogs only
    worker_wipes: int = 2
    rebalances: int = 2
    broker_restarts: int = 1
    #: Kafka as a KRaft cluster of this many brokers (replication factor min(N, 3))
    brokers: int = 1
    #: SIGKILL of one broker of a multi-broker cluster, restarted after 2-6 s
    broker_kills: int = 0
    postgres_restarts: int = 1
    sink_kills: int = 2
    #: votes/s the producer is paced at (the pipeline does ~700-800/s on 2 cores)
    rate: float = 350.0
    partitions: int = 12
    store: str = "rocksdb"
    ring_size: int = 16
    sink_batch: int = 2000
    #: seconds the whole run may take before it gives up (the checks still run)
    deadline: float = 3600.0
    #: scale of the harness's own waits around a fault (a fault's jitter, how long the
    #: broker or Postgres stays down, a rebalance's dwell, a pause beyond the session
    #: timeout); never of a wait on a condition. The short run uses less: each fault
    #: still runs its whole course, it just idles less (tests/test_chaos.py's time).
    dwell: float = 1.0
    keep: bool = False
    short: bool = False

    @classmethod
    def short_run(cls, **over: Any) -> ChaosConfig:
        base = dict(
            votes=3000,
            worker_kills=3,
            worker_pauses=1,
            worker_wipes=1,
            rebalances=1,
            broker_restarts=1,
            postgres_restarts=1,
            sink_kills=1,
            rate=60.0,
            sink_batch=300,
            deadline=600.0,
            dwell=0.4,
            short=True,
        )
        base.update(over)
        return cls(**base)


@dataclass
class Fault:
    kind: str
    #: fraction of planned outcomes seen when it fires
    at_fraction: float
    jitter: float
    detail: dict[str, Any] = field(default_factory=dict)
    fired_at: float | None = None  # seconds since the votes started
    progress_at_fire: int | None = None
    recovery_s: float | None = None  # until the affected piece is back and healthy
    flowing_s: float | None = None  # until new outcomes were seen again (None: nothing in flight)
    error: str | None = None


@dataclass
class ChaosResult:
    config: dict[str, Any]
    workload: dict[str, Any]
    faults: list[Fault]
    unplanned: list[dict[str, Any]]
    checks: list[Check]
    timings: dict[str, float]
    logs: str

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "config": self.config,
            "workload": self.workload,
            "faults": [asdict(f) for f in self.faults],
            "unplanned_exits": self.unplanned,
            "checks": [asdict(c) for c in self.checks],
            "timings": self.timings,
            "logs": self.logs,
        }


# --- workload -------------------------------------------------------------------------


def _round_shape(votes: int, ring_size: int) -> dict[str, int]:
    """Genres/submissions/votes-per-reviewer giving at least ``votes`` planned messages.

    build_round adds ~12 % attack traffic to its honest votes: double votes,
    slot reuses, thefts and foreign-partition copies (2 % each), slots beyond
    the quota, forged and transplanted signatures (1 % each), then malformed
    messages (1 %) on top.
    """
    per_reviewer = max(5, min(100, votes // 500))
    genres = 1
    while True:
        honest = genres * ring_size * per_reviewer
        planned = honest + 4 * (honest // 50) + 3 * (honest // 100)
        planned += max(2, planned // 100)
        if planned >= votes:
            break
        genres += 1
    return {
        "genres": genres,
        "ring_size": ring_size,
        "votes_per_reviewer": per_reviewer,
        "submissions_per_genre": 2 * per_reviewer,
    }


@dataclass
class Workload:
    """The round, published in phases: votes, a control change made during a fault, votes..."""

    rnd: ReviewRound
    #: ("votes", records) or (control change's name, records), in publishing order
    phases: list[tuple[str, list[Planned]]]

    @property
    def votes(self) -> list[Planned]:
        return [p for kind, records in self.phases if kind == "votes" for p in records]

    @property
    def control(self) -> list[Planned]:
        changes = [p for kind, records in self.phases if kind != "votes" for p in records]
        return [*self.rnd.control, *changes]

    def plan(self, votes_topic: str, votes: list[Planned]) -> Plan:
        """The ground truth for :func:`verify`: ``votes`` is :attr:`votes` as read back
        from the topic (with the producer's re-sends planned, :func:`plan_copies`), not
        this round again (session 10's seed-3 run planned its 2 re-sends, then checked
        against the round without them: 4 checks failed)."""
        return Plan(
            votes=votes,
            control=self.control,
            pairs=self.rnd.pairs,
            min_votes=self.rnd.min_votes,
            flag_threshold=self.rnd.flag_threshold,
            votes_topic=votes_topic,
        )


def build_workload(cfg: ChaosConfig) -> Workload:
    """The seeded round with two control-plane changes between its vote phases.

    A ring rotation (the first genre's reviewer 0 revoked by a registrar-signed
    version 2: their later votes are ``ring_not_in_force``) and a ring
    deactivation (a version with ``active: false``: a few of that genre's votes,
    held back until after it, are ``ring_not_in_force``). The harness makes each
    change while a fault is in progress (:meth:`Injector.control_during_fault`).
    """
    from connectors.sdk.registrar import load_registrar
    from streams.settings import get_settings

    shape = _round_shape(cfg.votes, cfg.ring_size)
    rnd = build_round(
        seed=cfg.seed, attacks=True, revocation=True, batchable=True, threads=2, **shape
    )
    phases: list[tuple[str, list[Planned]]] = [("votes", rnd.votes)]
    if rnd.rotation:
        phases += [("rotation", rnd.rotation), ("votes", rnd.late_votes)]
    if len(rnd.genres) >= 3:  # not the rotated genre, not the one with the unsigned version
        genre = rnd.genres[1]
        ring = rnd.rings[genre]
        referenced = {p.after for p in rnd.votes} | {vid for pair in rnd.pairs for vid in pair}
        vote_ids = Counter(p.vote_id for p in rnd.votes)
        held = [
            p
            for p in rnd.votes
            if p.label == "honest"
            and p.expect == "ballot"
            and p.submission_id in rnd.submissions
            and rnd.submissions[p.submission_id].genre == genre
            and p.after is None
            and p.ref not in referenced
            and p.vote_id not in referenced
            and vote_ids[p.vote_id] == 1
        ][:DEACTIVATED_VOTES]
        for p in held:
            p.expect = ReasonCode.RING_NOT_IN_FORCE.value
            p.label = "deactivated_ring"
        held_ids = {id(p) for p in held}
        phases[0] = ("votes", [p for p in rnd.votes if id(p) not in held_ids])
        inactive = load_registrar(get_settings()).sign_ring(
            ring.model_copy(update={"version": 2, "active": False, "registrar_signature": None})
        )
        record = Planned(
            key=ring.ring_id.encode(),
            value=inactive.to_json(),
            expect="control",
            label="control",
            topic="rings",
            ref=-2,
        )
        phases += [("deactivation", [record]), ("votes", held)]
    return Workload(rnd, phases)


def fault_schedule(cfg: ChaosConfig) -> list[Fault]:
    """Seeded: which faults, in which order, at which fraction of the outcomes."""
    rng = random.Random(f"chaos-schedule/{cfg.seed}")
    kinds = (
        ["worker_kill"] * cfg.worker_kills
        + ["worker_pause"] * cfg.worker_pauses
        + ["worker_wipe"] * cfg.worker_wipes
        + ["rebalance"] * cfg.rebalances
        + ["broker_restart"] * cfg.broker_restarts
        + ["broker_kill"] * (cfg.broker_kills if cfg.brokers > 1 else 0)
        + ["postgres_restart"] * cfg.postgres_restarts
        + ["sink_kill"] * cfg.sink_kills
    )
    rng.shuffle(kinds)
    n = len(kinds)
    # Evenly spread over 3 %..92 % of the outcomes, each point moved a little.
    fractions = sorted(
        min(0.92, max(0.03, 0.03 + 0.89 * (i + rng.uniform(0.1, 0.9)) / n)) for i in range(n)
    )
    return [
        Fault(kind=k, at_fraction=round(f, 4), jitter=round(rng.uniform(0.0, 1.5) * cfg.dwell, 3))
        for k, f in zip(kinds, fractions, strict=True)
    ]


# --- watching the output topics ---------------------------------------------------------


class Watcher:
    """Reads ballots, rejections, tallies and audit in a thread; indexes them by source position."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.votes_topic = settings.topic("votes")
        self.lock = threading.Lock()
        self.ballots: dict[str, set[bytes]] = defaultdict(set)  # vote_id -> distinct record bytes
        self.ballot_pos: dict[tuple[int, int], set[str]] = defaultdict(set)  # position -> vote ids
        self.rejections: dict[tuple[str, int, int], set[str]] = defaultdict(
            set
        )  # source -> reasons
        self.tallies: dict[str, dict[int, set[bytes]]] = defaultdict(lambda: defaultdict(set))
        self.audit: dict[tuple[str, int], set[str]] = defaultdict(set)  # (chain, seq) -> hashes
        self.records = Counter()
        #: every raw value read, by kind (the checks read the topics, not only Postgres)
        self.raw: dict[str, list[bytes]] = defaultdict(list)
        self.positions: set[tuple[int, int]] = set()  # votes-topic positions with any outcome
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    @property
    def progress(self) -> int:
        return len(self.positions)

    def missing(self, positions: dict[int, tuple[int, int]]) -> int:
        """How many of these votes-topic positions have no outcome seen yet."""
        with self.lock:
            return sum(pos not in self.positions for pos in positions.values())

    def _run(self) -> None:
        s = self.settings
        consumer = Consumer(
            {
                "bootstrap.servers": s.kafka_bootstrap,
                "group.id": f"chaos-watch-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "log_level": 2,
            }
        )
        kinds = {s.topic(k): k for k in ("ballots", "rejections", "tallies", "audit")}
        consumer.subscribe(list(kinds))
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(2000, timeout=0.2):
                    if msg.error() is None:
                        self._add(kinds[msg.topic()], msg.value())
        finally:
            consumer.close()

    def _add(self, kind: str, value: bytes) -> None:
        body = json.loads(value)
        with self.lock:
            self.records[kind] += 1
            self.raw[kind].append(value)
            if kind == "ballots":
                pos = (body["source_partition"], body["source_offset"])
                self.ballots[body["vote_id"]].add(value)
                self.ballot_pos[pos].add(body["vote_id"])
                self.positions.add(pos)
            elif kind == "rejections":
                src = (body["source_topic"], body["source_partition"], body["source_offset"])
                self.rejections[src].add(body["reason"])
                if src[0] == self.votes_topic:
                    self.positions.add(src[1:])
            elif kind == "tallies":
                self.tallies[body["submission_id"]][body["version"]].add(value)
            else:
                self.audit[(body["chain"], body["sequence"])].add(body["hash"])


def _topic_records(
    settings: Settings, topic: str, timeout: float = 120.0
) -> list[tuple[int, int, int, bytes]]:
    """Every record of ``topic`` up to its current end: (partition, offset, timestamp,
    value), each partition's in offset order."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"chaos-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "log_level": 2,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=30).topics[topic]
        tps = []
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            if high > low:
                tps.append((p, low, high))
        consumer.assign([TopicPartition(topic, p, low) for p, low, _ in tps])
        remaining = {p: high for p, _, high in tps}
        out: list[tuple[int, int, int, bytes]] = []
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            for msg in consumer.consume(5000, timeout=0.5):
                if msg.error() is None:
                    out.append((msg.partition(), msg.offset(), msg.timestamp()[1], msg.value()))
                    if msg.offset() + 1 >= remaining.get(msg.partition(), 0):
                        remaining.pop(msg.partition(), None)
        return out
    finally:
        consumer.close()


def _end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"chaos-{uuid.uuid4().hex}",
            "log_level": 2,
        }
    )
    try:
        out = {}
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=30).topics[topic]
            for p in meta.partitions:
                high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                if high:
                    out[(topic, p)] = high
        return out
    finally:
        consumer.close()


# --- the cluster under test ----------------------------------------------------------------


def _kafka_ports(brokers: int) -> tuple[list[int], int]:
    """Free broker ports, and a controller port p with p + 2(i-1) free for every node i
    (``connectors.stack.kafka.cluster``'s layout)."""
    from connectors.stack.process import port_free

    broker_ports = [free_port() for _ in range(brokers)]
    while True:
        base = free_port()
        wanted = [base + 2 * i for i in range(brokers)]
        if all(p not in broker_ports and port_free("127.0.0.1", p) for p in wanted):
            return broker_ports, base


class Cluster:
    """Private Kafka + Postgres, workers and the sink, with the fault operations."""

    def __init__(self, cfg: ChaosConfig, run_dir: Path, console: Console) -> None:
        from connectors.stack import LocalStack

        self.cfg = cfg
        self.console = console
        self.run_dir = run_dir
        self.log_dir = run_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        broker_ports, controller_port = _kafka_ports(cfg.brokers)
        self.settings = pin_registrar(  # the development registrar key, not one per run dir
            Settings(
                topic_prefix="chaos",
                postgres_schema="chaos",
                data_dir=run_dir / "data",
                kafka_bootstrap=",".join(f"127.0.0.1:{p}" for p in broker_ports),
                kafka_controller_port=controller_port,
                replication_factor=min(cfg.brokers, 3),
                postgres_dsn=f"postgresql://ringtally@127.0.0.1:{free_port()}/ringtally",
                # unused: the sink runs without the read model
                redis_url=f"redis://127.0.0.1:{free_port()}/0",
                partitions=cfg.partitions,
                table_store=cfg.store,
                web_port=free_port(),
                verify_batch_window=0.02,
            )
        )
        self.stack = LocalStack(
            self.settings, cache_dir=ROOT / ".ringtally" / "cache", brokers=cfg.brokers
        )
        self.ports = [self.settings.web_port, free_port()]
        self.workers: dict[int, WorkerProcess] = {}
        self.sink: subprocess.Popen | None = None
        self.sink_runs = 0
        self.lock = threading.RLock()
        #: exits nobody asked for: {"piece", "code", "at", "tail"}
        self.unplanned: list[dict[str, Any]] = []
        self.t0 = time.monotonic()

    # --- services ---------------------------------------------------------------

    def up(self) -> None:
        self.stack.up(["kafka", "postgres"], timeout=120)
        from connectors.postgres.migrate import migrate
        from connectors.stack.service import run_async
        from streams.topics import ensure_topics

        run_async(lambda: migrate(self.settings))
        ensure_topics(self.settings, internal=True)

    def down(self) -> None:
        with self.lock:
            for w in self.workers.values():
                with contextlib.suppress(Exception):
                    w.kill()
            self._kill_sink()
        with contextlib.suppress(Exception):
            self.stack.down(["kafka", "postgres"])

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RINGTALLY_")}
        env.update(self.settings.to_env())
        env["PYTHONUNBUFFERED"] = "1"
        return env

    # --- workers ------------------------------------------------------------------

    def start_worker(self, slot: int) -> float:
        """Start (or restart) worker ``slot``; returns seconds until /health said ok."""
        t = time.monotonic()
        settings = self.settings.model_copy(update={"web_port": self.ports[slot]})
        w = WorkerProcess(settings, self.log_dir / f"worker-{slot}.log")
        with self.lock:
            self.workers[slot] = w
        w.start(ready_timeout=180)
        return time.monotonic() - t

    def kill_worker(self, slot: int) -> None:
        with self.lock:
            w = self.workers.pop(slot)
        w.kill()

    def signal_worker(self, slot: int, signum: int) -> None:
        """SIGSTOP / SIGCONT a worker's process group (a VM pause, a stopped container)."""
        with self.lock:
            w = self.workers[slot]
        assert w.proc is not None
        os.killpg(w.proc.pid, signum)

    def thaw_worker(self, slot: int, timeout: float = 60.0) -> int | None:
        """SIGCONT a worker stopped past its session timeout. Its pause watchdog
        (streams/pause.py) makes it exit EXIT_PAUSED before it writes again: that exit
        is planned, and the worker is restarted here. Returns the exit code (None: it
        kept running; any other code is left to :meth:`supervise` as unplanned)."""
        self.signal_worker(slot, signal.SIGCONT)
        with self.lock:
            w = self.workers[slot]
        assert w.proc is not None
        deadline = time.monotonic() + timeout
        while w.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        code = w.proc.poll()
        if code == EXIT_PAUSED:
            with self.lock:
                self.workers.pop(slot)
            self.start_worker(slot)
        return code

    def worker_dir(self, slot: int) -> Path:
        """The worker's RocksDB tables (``streams.app.create_app``: one dir per web port)."""
        s = self.settings
        return s.data_dir / "workers" / f"{s.group_id}-{self.ports[slot]}"

    def stop_worker(self, slot: int) -> None:
        with self.lock:
            w = self.workers.pop(slot)
        w.stop()

    def health(self, slot: int) -> dict[str, Any] | None:
        import urllib.request

        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.ports[slot]}/health", timeout=3
            ) as r:
                return json.load(r)
        except Exception:  # noqa: BLE001 - 503 while rebalancing, refused while down
            return None

    def workers_cpu(self) -> float:
        """CPU seconds (user + system) the running worker processes have used so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        with self.lock:
            pids = [w.proc.pid for w in self.workers.values() if w.proc is not None]
        for pid in pids:
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def serving(self, timeout: float = KAFKA_UP_S) -> float:
        """Seconds until Kafka serves again: every partition (the internal topics' too) has a
        leader and at least ``min.insync.replicas`` in sync, and the workers' group
        coordinator answers. Brokers answering a metadata request (what ``stack.up``
        waits for) is not that: after a whole-cluster restart the leaders are elected, the
        replicas catch up and the coordinators load their logs afterwards."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        s = self.settings
        need = s.min_insync or 1
        admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap, "log_level": 2})
        t = time.monotonic()
        last = "no answer"
        while time.monotonic() < t + timeout:
            try:
                meta = admin.list_topics(timeout=5)
                short = [
                    f"{name}[{p}]"
                    for name, topic in meta.topics.items()
                    for p, part in topic.partitions.items()
                    if part.leader < 0 or len(part.isrs) < need
                ]
                if short:
                    last = f"{len(short)} partitions without a leader or in-sync replicas"
                else:
                    admin.describe_consumer_groups([s.group_id])[s.group_id].result(timeout=5)
                    return time.monotonic() - t
            except (KafkaException, TimeoutError) as exc:  # leaders moving, coordinator loading
                last = f"{type(exc).__name__}: {exc}"[:160]
            time.sleep(0.5)
        raise TimeoutError(f"Kafka not serving after {timeout:.0f}s: {last}")

    def wait_owned(self, slots: list[int], timeout: float = 180.0) -> float:
        """Wait until ``slots`` (all healthy) own every votes partition between them, disjointly."""
        t = time.monotonic()
        deadline = t + timeout
        while time.monotonic() < deadline:
            owned = [self.health(s) for s in slots]
            if all(o and o["status"] == "ok" and o["votes_partitions"] for o in owned):
                parts = [p for o in owned for p in o["votes_partitions"]]  # type: ignore[index]
                if sorted(parts) == list(range(self.cfg.partitions)):
                    return time.monotonic() - t
            time.sleep(HEALTH_POLL_S)
        raise TimeoutError(f"workers {slots} never owned all partitions")

    # --- sink -----------------------------------------------------------------------

    def start_sink(self) -> None:
        self.sink_runs += 1
        log = (self.log_dir / "sink.log").open("ab")
        with self.lock:
            self.sink = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from connectors.cli import main; main()",
                    "sink",
                    "--no-readmodel",
                    "--batch-size",
                    str(self.cfg.sink_batch),
                ],
                cwd=ROOT,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        log.close()

    def _kill_sink(self) -> None:
        if self.sink is not None and self.sink.poll() is None:
            os.killpg(self.sink.pid, signal.SIGKILL)
            self.sink.wait(30)

    def stop_sink(self) -> None:
        with self.lock:
            if self.sink is not None and self.sink.poll() is None:
                os.killpg(self.sink.pid, signal.SIGTERM)
                try:
                    self.sink.wait(60)
                except subprocess.TimeoutExpired:
                    self._kill_sink()
            self.sink = None

    # --- supervision ----------------------------------------------------------------

    def supervise(self) -> None:
        """Restart whatever died without being asked to, and write it down."""
        with self.lock:
            dead = [
                (slot, w)
                for slot, w in self.workers.items()
                if w.proc is not None and w.proc.poll() is not None
            ]
            sink_dead = self.sink is not None and self.sink.poll() is not None
        for slot, w in dead:
            code = w.proc.returncode if w.proc else None
            self.unplanned.append(
                {
                    "piece": f"worker-{slot}",
                    "code": code,
                    "at": round(time.monotonic() - self.t0, 1),
                    "tail": w.tail(15),
                }
            )
            self.console.print(f"[red]worker-{slot} exited on its own with {code}; restarting[/]")
            with contextlib.suppress(Exception):
                self.start_worker(slot)
        if sink_dead:
            assert self.sink is not None
            code = self.sink.returncode
            tail = "\n".join(
                (self.log_dir / "sink.log").read_text(errors="replace").splitlines()[-15:]
            )
            self.unplanned.append(
                {
                    "piece": "sink",
                    "code": code,
                    "at": round(time.monotonic() - self.t0, 1),
                    "tail": tail,
                }
            )
            self.console.print(f"[red]the sink exited on its own with {code}; restarting[/]")
            self.start_sink()

    # --- postgres helpers -------------------------------------------------------------

    def pg(self, query: str, *args: Any) -> Any:
        import asyncpg

        from connectors.stack.service import run_async

        async def go() -> Any:
            conn = await asyncpg.connect(self.settings.postgres_dsn, timeout=5)
            try:
                return await conn.fetch(query, *args)
            finally:
                await conn.close()

        return run_async(go)

    def pg_count(self) -> int | None:
        """Rows the sink has written (ballots + rejections + audit), None while Postgres is away."""
        try:
            rows = self.pg(
                "SELECT (SELECT count(*) FROM chaos.ballots)"
                " + (SELECT count(*) FROM chaos.rejections)"
                " + (SELECT count(*) FROM chaos.audit_log) AS n"
            )
            return int(rows[0]["n"])
        except Exception:  # noqa: BLE001 - Postgres restarting
            return None

    def sink_caught_up(self) -> bool:
        """The offsets stored in Postgres reach the output topics' end offsets."""
        s = self.settings
        try:
            ends = _end_offsets(
                s, [s.topic(k) for k in ("ballots", "tallies", "rejections", "audit")]
            )
            stored = {
                (r["topic"], r["partition"]): r["next_offset"]
                for r in self.pg("SELECT topic, partition, next_offset FROM chaos.sink_offsets")
            }
        except Exception:  # noqa: BLE001 - a service is restarting
            return False
        return all(stored.get(k, 0) >= v for k, v in ends.items())

    def sink_in_transaction(self) -> bool:
        try:
            rows = self.pg(
                "SELECT count(*) AS n FROM pg_stat_activity "
                "WHERE application_name = 'ringtally-sink' "
                "AND state IN ('active', 'idle in transaction')"
            )
            return rows[0]["n"] > 0
        except Exception:  # noqa: BLE001
            return False


# --- fault injection ----------------------------------------------------------------------


class Injector(threading.Thread):
    """Fires the scheduled faults in order, each when its share of outcomes has been seen."""

    def __init__(
        self,
        cluster: Cluster,
        watcher: Watcher,
        faults: list[Fault],
        total: int,
        seed: int,
        t0: float,
        console: Console,
    ) -> None:
        super().__init__(name="injector", daemon=True)
        self.cluster, self.watcher, self.faults, self.total = cluster, watcher, faults, total
        self.rng = random.Random(f"chaos-injector/{seed}")
        #: scales the harness's own waits (:attr:`ChaosConfig.dwell`)
        self.dwell = cluster.cfg.dwell
        self.t0 = t0
        self.console = console
        self.stop_event = threading.Event()
        #: one fault at a time: the scheduled ones, and the control changes' faults
        self.op_lock = threading.Lock()
        #: faults made around a control-plane change (rotation, deactivation)
        self.control_faults: list[Fault] = []
        self.error: BaseException | None = None
        #: a fault is being injected or recovered from right now
        self.busy = False
        #: share of the round the producer may run ahead of the next fault
        self.lead = 0.06
        #: votes handed to the producer so far (outcomes beyond it cannot come yet)
        self.published = 0

    def run(self) -> None:
        try:
            for n, fault in enumerate(self.faults, 1):
                while self.watcher.progress < fault.at_fraction * self.total:
                    if self.stop_event.wait(0.2):
                        return
                    self._supervise()
                time.sleep(fault.jitter)
                fault.fired_at = round(time.monotonic() - self.t0, 2)
                fault.progress_at_fire = self.watcher.progress
                self.console.print(
                    f"[yellow]fault {n}/{len(self.faults)}: {fault.kind} at "
                    f"{fault.progress_at_fire}/{self.total} outcomes (t={fault.fired_at}s)[/]"
                )
                self.busy = True
                try:
                    with self.op_lock:
                        getattr(self, f"_{fault.kind}")(fault)
                except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                    fault.error = f"{type(exc).__name__}: {exc}"
                    self.console.print(f"[red]  {fault.kind} failed: {fault.error}[/]")
                finally:
                    self.busy = False
                self.cluster.supervise()
                self.console.print(
                    f"  recovered in {fault.recovery_s}s, outputs flowing after {fault.flowing_s}s"
                )
            while not self.stop_event.wait(0.5):
                self._supervise()
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def _supervise(self) -> None:
        """Restart what died on its own, unless a fault is under way: a control change
        during a pause (:meth:`control_during_fault`, on the publisher's thread) thaws
        the worker itself and restarts it after its planned exit 75. Supervising then
        raced it: the exit was counted unplanned and the worker started twice on one
        port (the CI run of session 9, seed 20126: 'address already in use')."""
        if not self.busy:
            self.cluster.supervise()

    def publish_limit(self) -> float:
        """How many votes may be published now: a bounded backlog ahead of the outcomes seen.

        The producer never runs more than ``lead`` of the round ahead of the pipeline,
        so each fault (fired at a share of the outcomes) finds votes in flight, and the
        pipeline is never idle while a long fault (a rebalance) is being recovered from.
        """
        if all(f.fired_at is not None for f in self.faults):
            return float("inf")
        return self.watcher.progress + self.lead * self.total

    def _flowing(
        self, since: float, fault: Fault, timeout: float = 180.0, supervise: bool = True
    ) -> None:
        """Seconds from ``since`` until a new outcome shows up (None when nothing is pending).

        With the producer always allowed a backlog ahead of the outcomes, "no new
        outcome for ``timeout`` while the round is unfinished" is a stall: it is
        recorded as ``stalled`` and fails the liveness check.
        """
        before = self.watcher.progress
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.watcher.progress > before:
                fault.flowing_s = round(time.monotonic() - since, 2)
                return
            if (
                self.watcher.progress >= max(self.published, 1)
                or self.watcher.progress >= self.total
            ):
                return  # nothing in flight: the producer waits (a control change) or is done
            time.sleep(0.1)
            if supervise:
                self.cluster.supervise()
        fault.flowing_s = round(time.monotonic() - since, 2)
        fault.detail["stalled"] = (
            f"no new outcome for {timeout:.0f}s at {self.watcher.progress}/{self.total}"
        )

    def _worker_kill(self, fault: Fault) -> None:
        c = self.cluster
        slots = sorted(c.workers)
        slot = self.rng.choice(slots)
        fault.detail["slot"] = slot
        t = time.monotonic()
        c.kill_worker(slot)
        fault.detail["ready_s"] = round(c.start_worker(slot), 2)
        c.wait_owned(sorted(c.workers))
        fault.recovery_s = round(time.monotonic() - t, 2)
        self._flowing(t, fault)

    def _worker_pause(self, fault: Fault) -> None:
        """A zombie: worker 0 frozen past the session timeout while worker 1 takes over its
        partitions, then thawed (it resumes with the batch it had prepared)."""
        c = self.cluster
        t = time.monotonic()
        c.start_worker(1)
        c.wait_owned([0, 1])
        fault.detail["join_s"] = round(time.monotonic() - t, 2)
        pause = c.settings.session_timeout + self.rng.uniform(2.0, 6.0) * self.dwell
        t_stop = time.monotonic()
        c.signal_worker(0, signal.SIGSTOP)
        try:
            c.wait_owned([1], timeout=pause + 120)
            fault.detail["takeover_s"] = round(time.monotonic() - t_stop, 2)
            time.sleep(max(0.0, pause - (time.monotonic() - t_stop)))
        finally:
            fault.detail["exit_on_thaw"] = c.thaw_worker(0)
        fault.detail["stopped_s"] = round(time.monotonic() - t_stop, 2)
        t_cont = time.monotonic()
        c.wait_owned([0, 1])
        c.stop_worker(1)
        c.wait_owned([0])
        fault.recovery_s = round(time.monotonic() - t, 2)
        self._flowing(t_cont, fault)

    def _worker_wipe(self, fault: Fault) -> None:
        """SIGKILL, then the worker's table files deleted: it recovers from the changelogs only."""
        c = self.cluster
        slot = self.rng.choice(sorted(c.workers))
        fault.detail["slot"] = slot
        t = time.monotonic()
        c.kill_worker(slot)
        shutil.rmtree(c.worker_dir(slot), ignore_errors=True)
        fault.detail["ready_s"] = round(c.start_worker(slot), 2)
        c.wait_owned(sorted(c.workers))
        fault.recovery_s = round(time.monotonic() - t, 2)
        self._flowing(t, fault)

    def control_during_fault(self, change: str, records: list[Planned], publisher: Any) -> None:
        """Publish a control-plane change while a fault is in progress.

        Odd changes are made while worker 0 is SIGKILLed (published before it
        restarts), even ones while it is SIGSTOPped past the session timeout
        (published while frozen; SIGCONT after). Appended, and the clock past its
        broker time, before the next votes go out, so the ground truth holds.
        """
        c = self.cluster
        during = "worker_kill" if len(self.control_faults) % 2 == 0 else "worker_pause"
        fault = Fault(
            kind=f"{change}_during_{during}",
            at_fraction=round(self.watcher.progress / self.total, 4),
            jitter=0.0,
        )
        self.control_faults.append(fault)
        with self.op_lock:
            self.busy = True
            try:
                fault.fired_at = round(time.monotonic() - self.t0, 2)
                fault.progress_at_fire = self.watcher.progress
                self.console.print(
                    f"[yellow]{change} during {during} at {fault.progress_at_fire}/"
                    f"{self.total} outcomes (t={fault.fired_at}s)[/]"
                )
                t = time.monotonic()
                if during == "worker_kill":
                    c.kill_worker(0)
                else:
                    c.signal_worker(0, signal.SIGSTOP)
                try:
                    publisher.send_all(records)
                    publisher.flush(120)
                    publisher.wait_clock_past(publisher.last_appended_ms())
                    if during == "worker_pause":
                        time.sleep(
                            c.settings.session_timeout + self.rng.uniform(1.0, 4.0) * self.dwell
                        )
                finally:
                    if during == "worker_kill":
                        fault.detail["ready_s"] = round(c.start_worker(0), 2)
                    else:
                        fault.detail["exit_on_thaw"] = c.thaw_worker(0)
                c.wait_owned(sorted(c.workers))
                fault.recovery_s = round(time.monotonic() - t, 2)
                # The next votes go out only after this returns: watch for them in the background.
                threading.Thread(
                    target=self._flowing, args=(t, fault), kwargs={"supervise": False}, daemon=True
                ).start()
            except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                fault.error = f"{type(exc).__name__}: {exc}"
                self.console.print(f"[red]  {fault.kind} failed: {fault.error}[/]")
            finally:
                self.busy = False

    def _rebalance(self, fault: Fault) -> None:
        c = self.cluster
        t = time.monotonic()
        c.start_worker(1)
        c.wait_owned([0, 1])
        fault.detail["join_s"] = round(time.monotonic() - t, 2)
        fault.detail["split"] = [len(c.health(s)["votes_partitions"]) for s in (0, 1)]  # type: ignore[index]
        time.sleep(self.rng.uniform(3.0, 8.0) * self.dwell)
        crash = self.rng.random() < 0.5
        fault.detail["leave"] = "SIGKILL" if crash else "SIGTERM"
        t_leave = time.monotonic()
        if crash:
            c.kill_worker(1)
        else:
            c.stop_worker(1)
        c.wait_owned([0])
        fault.detail["leave_s"] = round(time.monotonic() - t_leave, 2)
        fault.recovery_s = round(time.monotonic() - t, 2)
        self._flowing(t_leave, fault)

    def _broker_restart(self, fault: Fault) -> None:
        """Every broker stopped, then started again. Liveness is measured from when Kafka
        serves every partition again (:meth:`Cluster.serving`), not from the fault: a
        whole cluster's JVMs took 31-100 s to answer at load average 8-29 (session 10),
        which is Kafka's own start, not the pipeline's recovery."""
        c = self.cluster
        t = time.monotonic()
        cpu = c.workers_cpu()
        c.stack.down(["kafka"])
        pause = self.rng.uniform(2.0, 6.0) * self.dwell
        fault.detail["down_s"] = round(pause, 2)
        time.sleep(pause)
        c.stack.up(["kafka"], timeout=KAFKA_UP_S)
        self._back(fault, t, cpu)

    def _broker_kill(self, fault: Fault) -> None:
        """SIGKILL of one broker of the cluster while votes flow; restarted 2-6 s later."""
        c = self.cluster
        name = self.rng.choice(c.stack.kafka_nodes)
        node = c.stack.services[name]
        fault.detail["node"] = name
        t = time.monotonic()
        record = node.running_record()
        if record is None:
            raise RuntimeError(f"{name} has no running process to kill")
        before, cpu = self.watcher.progress, c.workers_cpu()
        os.kill(record.pid, signal.SIGKILL)
        pause = self.rng.uniform(2.0, 6.0) * self.dwell
        fault.detail["down_s"] = round(pause, 2)
        time.sleep(pause)
        node.up(timeout=KAFKA_UP_S)
        # RF 3 with min.insync.replicas=2: the other two brokers keep serving meanwhile
        fault.detail["outcomes_while_restarting"] = self.watcher.progress - before
        self._back(fault, t, cpu)

    def _back(self, fault: Fault, t: float, cpu: float) -> None:
        """After a broker fault: the brokers answer (``kafka_up_s``), then serve every
        partition (``serving_s``), then the workers own theirs (``owned_s``), each from
        the fault; ``flowing_s`` (the liveness figure) counts from ``serving_s``, and
        ``flowing_from_fault_s`` is the whole. ``workers_cpu_until_up``: CPU cores the
        workers used from the fault until the brokers answered (``cpu``: their CPU
        seconds at the fault) -- on 2 cores, what they take from the JVMs starting."""
        c = self.cluster
        fault.detail["kafka_up_s"] = round(time.monotonic() - t, 2)
        fault.detail["workers_cpu_until_up"] = round(
            (c.workers_cpu() - cpu) / max(fault.detail["kafka_up_s"], 0.01), 2
        )
        fault.detail["serving_s"] = round(c.serving() + fault.detail["kafka_up_s"], 2)
        t_serving = time.monotonic()
        c.supervise()
        c.wait_owned(sorted(c.workers), timeout=240)
        fault.detail["owned_s"] = round(time.monotonic() - t, 2)
        fault.recovery_s = fault.detail["owned_s"]
        self._flowing(t_serving, fault, timeout=240)
        if fault.flowing_s is not None:
            fault.detail["flowing_from_fault_s"] = round(fault.flowing_s + t_serving - t, 2)

    def _postgres_restart(self, fault: Fault) -> None:
        c = self.cluster
        t = time.monotonic()
        c.stack.down(["postgres"])
        pause = self.rng.uniform(2.0, 6.0) * self.dwell
        fault.detail["down_s"] = round(pause, 2)
        time.sleep(pause)
        c.stack.up(["postgres"], timeout=120)
        fault.detail["postgres_up_s"] = round(time.monotonic() - t, 2)
        self._sink_writing(c.pg_count() or 0)
        fault.recovery_s = round(time.monotonic() - t, 2)

    def _sink_writing(self, before: int, timeout: float = 180.0) -> None:
        """Wait until the sink wrote rows past ``before``, or caught up with the topics."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self.cluster.pg_count()
            if n is not None and (n > before or self.cluster.sink_caught_up()):
                return
            time.sleep(0.2)
            self.cluster.supervise()

    def _sink_kill(self, fault: Fault) -> None:
        c = self.cluster
        deadline = time.monotonic() + 60
        inside = False
        while time.monotonic() < deadline and not (inside := c.sink_in_transaction()):
            time.sleep(0.005)
        fault.detail["mid_transaction"] = inside
        t = time.monotonic()
        with c.lock:
            c._kill_sink()
            c.sink = None
        fault.detail["rows_before"] = before = c.pg_count() or 0
        c.start_sink()
        self._sink_writing(before)
        fault.recovery_s = round(time.monotonic() - t, 2)


# --- the run ----------------------------------------------------------------------------------


def run_chaos(
    cfg: ChaosConfig, *, console: Console | None = None, results: Path | None = None
) -> ChaosResult:
    console = console or Console()
    started = time.monotonic()
    run_dir = (
        ROOT / ".ringtally" / "chaos" / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    )
    console.print(f"[bold]chaos run[/] seed {cfg.seed}, {cfg.votes} votes target, dir {run_dir}")
    work = build_workload(cfg)
    rnd = work.rnd
    votes = work.votes
    total = len(votes)
    timings = {"build_s": round(time.monotonic() - started, 1)}
    console.print(
        f"workload: {total} planned messages ({dict(Counter(p.label for p in votes))}), "
        f"{rnd.votes_per_epoch} votes per reviewer, {len(rnd.submissions)} submissions, "
        f"built in {timings['build_s']}s"
    )
    faults = fault_schedule(cfg)
    cluster = Cluster(cfg, run_dir, console)
    watcher: Watcher | None = None
    injector: Injector | None = None
    positions: dict[int, tuple[int, int]] = {}
    timestamps: dict[int, int] = {}
    copied: list[tuple[int, tuple[int, int], int]] = []  # the producer's re-sends
    checks: list[Check] = []
    try:
        t = time.monotonic()
        cluster.up()
        timings["stack_up_s"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        cluster.start_worker(0)
        cluster.wait_owned([0])
        timings["first_worker_ready_s"] = round(time.monotonic() - t, 1)
        cluster.start_sink()
        s = cluster.settings
        publisher = Publisher(s, **{"linger.ms": 5, "message.timeout.ms": 600_000, "log_level": 2})
        publisher.append_timeout = 600.0  # a double vote's second half waits through faults

        # control: rings and submissions (and an unsigned ring), registrar-signed
        t = time.monotonic()
        publisher.send_all(rnd.control)
        publisher.flush(120)
        timings["control_s"] = round(time.monotonic() - t, 1)

        # votes, paced, while the injector works
        watcher = Watcher(s).start()
        t0 = time.monotonic()
        injector = Injector(cluster, watcher, faults, total, cfg.seed, t0, console)
        injector.start()

        pace0 = t0  # the pacing clock: it stops while the producer is gated
        i = 0
        for phase, records in work.phases:
            if phase != "votes":  # a control-plane change, made during a fault
                publisher.flush(600)
                publisher.wait_clock_past(publisher.last_appended_ms())
                injector.control_during_fault(phase, records, publisher)
                pace0 = time.monotonic() - i / cfg.rate
                continue
            for planned in records:
                delay = pace0 + i / cfg.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                # Never run far ahead of the next pending fault: it must find votes in flight,
                # not an idle pipeline that has already finished the round.
                while (
                    i > injector.publish_limit()
                    and not injector.stop_event.is_set()
                    and injector.is_alive()
                ):
                    publisher.poll(0.2)
                    pace0 += 0.2
                publisher.send(planned)
                i += 1
                injector.published = i
        publisher.flush(600)
        for n, planned in enumerate(votes):
            if planned.ref in publisher.positions:
                positions[n] = publisher.positions[planned.ref][1:]
                timestamps[n] = publisher.appended[planned.ref]
        timings["publish_s"] = round(time.monotonic() - t0, 1)
        console.print(
            f"published {total} votes in {timings['publish_s']}s; "
            "waiting for the outcomes and faults"
        )

        # every planned message must reach an outcome; the injector must have fired everything
        deadline = started + cfg.deadline
        last_report = 0.0
        stall = 60.0 if cfg.short else 180.0
        last_progress, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            done_faults = all(
                f.fired_at is not None and (f.recovery_s is not None or f.error) for f in faults
            )
            if watcher.progress >= total and done_faults and not watcher.missing(positions):
                break
            if watcher.progress != last_progress:
                last_progress, last_change = watcher.progress, time.monotonic()
            elif time.monotonic() - last_change > stall and not injector.busy:
                console.print(
                    f"[red]no new outcome for {stall:.0f}s at {watcher.progress}/{total}: "
                    "checking now[/]"
                )
                break
            if injector.error:
                raise injector.error
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                console.print(
                    f"  outcomes {watcher.progress}/{total}, faults fired "
                    f"{sum(f.fired_at is not None for f in faults)}/{len(faults)}"
                )
            time.sleep(0.1)
        timings["outcomes_s"] = round(time.monotonic() - t0, 1)
        injector.stop_event.set()
        injector.join(60)

        # read once the faults are over (a broker restart would hold the read up)
        copied = producer_copies(
            _topic_records(s, s.topic("votes")),
            positions,
            timestamps,
            {n: p.value for n, p in enumerate(votes) if p.topic == "votes"},
        )
        plan_copies(votes, positions, timestamps, copied)
        if copied:
            console.print(
                f"[yellow]the producer wrote {len(copied)} extra copies of planned records; "
                "each planned as a record of its own:[/] "
                + ", ".join(f"{votes[n].label}@{positions[n]} again @{w}" for n, w, _ in copied)
            )
        # a copy's outcome may still be on its way (progress counted it as one of the round's)
        until = time.monotonic() + 120
        while watcher.missing(positions) and time.monotonic() < until:
            time.sleep(0.5)

        # the sink must catch up with the output topics
        t = time.monotonic()
        outputs = [s.topic(k) for k in ("ballots", "tallies", "rejections", "audit")]
        while time.monotonic() < deadline + 300:
            cluster.supervise()
            ends = _end_offsets(s, outputs)
            if cluster.sink_caught_up():
                time.sleep(4)  # settle: nothing new on the topics for a few seconds
                if _end_offsets(s, outputs) == ends and cluster.sink_caught_up():
                    break
            time.sleep(1.0)
        timings["sink_catch_up_s"] = round(time.monotonic() - t, 1)
        watcher.stop()
        cluster.stop_sink()
        checks = verify(cluster, work.plan(s.topic("votes"), votes), watcher, positions, timestamps)
    finally:
        _ignore_interrupts(True)  # a second Ctrl-C must not skip the cleanup
        if injector is not None:
            injector.stop_event.set()
        if watcher is not None:
            watcher.stop()
        logs = scan_logs(cluster.log_dir)
        cluster.down()
        if not cfg.keep:
            shutil.rmtree(run_dir / "data", ignore_errors=True)
        _ignore_interrupts(False)
    timings["total_s"] = round(time.monotonic() - started, 1)
    faults = faults + (injector.control_faults if injector is not None else [])
    checks.append(
        Check(
            "no unplanned process exits (a worker exit 70 is an agent bug)",
            0,
            len(cluster.unplanned),
            not cluster.unplanned,
            "; ".join(f"{u['piece']} exit {u['code']} at {u['at']}s" for u in cluster.unplanned),
        )
    )
    checks.append(liveness(faults))
    thawed_exits = sum(1 for f in faults if f.detail.get("exit_on_thaw") == EXIT_PAUSED)
    checks.append(
        Check(
            "each worker paused past its session timeout stopped itself (exit 75, once each)",
            thawed_exits,
            logs["paused_exits"],
            logs["paused_exits"] == thawed_exits,
            f"pause faults: {sum(1 for f in faults if 'exit_on_thaw' in f.detail)}",
        )
    )
    checks.append(
        Check(
            "no Traceback / CRITICAL in worker and sink logs",
            0,
            logs["tracebacks"] + logs["critical"],
            logs["tracebacks"] + logs["critical"] == 0,
            logs["first"] or "",
        )
    )
    result = ChaosResult(
        config=asdict(cfg),
        workload={
            "planned": total,
            "seed": cfg.seed,
            "labels": dict(Counter(p.label for p in [*work.control, *votes] if p.has_outcome)),
            "votes_per_epoch": rnd.votes_per_epoch,
            "submissions": len(rnd.submissions),
            "rings": len(rnd.rings),
            "double_vote_pairs": len(rnd.pairs),
            "expected_ballots": sum(p.expect == "ballot" for p in votes),
            "expected_rejections": dict(
                +Counter(p.expect for p in [*work.control, *votes] if p.has_outcome)
                - Counter({"ballot": total})
            ),
            "control_changes": [kind for kind, _ in work.phases if kind != "votes"],
            "producer_copies": len(copied),
        },
        faults=faults,
        unplanned=cluster.unplanned,
        checks=checks,
        timings=timings,
        logs=str(cluster.log_dir),
    )
    result.timings["log_errors"] = logs["errors"]
    report(result, console)
    if results is not None:
        results.parent.mkdir(parents=True, exist_ok=True)
        payload = result.to_json()
        payload["command"] = " ".join(sys.argv)
        payload["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        payload["machine"] = {
            "cpus": os.cpu_count(),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        }
        results.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        console.print(f"wrote {results}")
    return result


# --- checks -------------------------------------------------------------------------------------


def liveness(faults: list[Fault]) -> Check:
    """Outputs flowing again within :data:`LIVENESS_S` of every fault, counted from when
    Kafka served every partition again after a broker fault (``flowing_s``); a fault that
    failed (Kafka not serving within :data:`KAFKA_UP_S`, a worker that never owned its
    partitions) or stalled fails it too."""
    slow = [
        f"{f.kind}@{f.fired_at}s: " + (f.error or f"{f.flowing_s}s")
        for f in faults
        if f.error or (f.flowing_s is not None and f.flowing_s > LIVENESS_S)
    ]
    return Check(
        f"liveness: outputs flowing again within {LIVENESS_S:.0f}s of every fault"
        " (of Kafka serving again, after a broker fault)",
        0,
        len(slow),
        not slow,
        "; ".join(slow),
    )


def verify(
    cluster: Cluster,
    plan: Plan,
    watcher: Watcher,
    positions: dict[int, tuple[int, int]],
    timestamps: dict[int, int],
) -> list[Check]:
    """Postgres and the output topics against the ground truth of the workload."""
    pg = cluster.pg
    dead = pg("SELECT reason, count(*) AS n FROM chaos.sink_dead_letters GROUP BY reason")
    verify_cmd = subprocess.run(
        [
            sys.executable,
            "-c",
            "from connectors.cli import main; main()",
            "audit",
            "verify",
            "--quiet",
        ],
        cwd=ROOT,
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    observed = Observed(
        positions=positions,
        timestamps=timestamps,
        pg_ballots=[
            dict(r)
            for r in pg(
                "SELECT vote_id::text AS vote_id, submission_id, key_image, vote_type,"
                " source_partition, source_offset FROM chaos.ballots"
            )
        ],
        pg_rejections=[
            dict(r)
            for r in pg(
                "SELECT vote_id::text AS vote_id, reason, source_topic, source_partition,"
                " source_offset FROM chaos.rejections"
            )
        ],
        pg_tallies={r["submission_id"]: dict(r) for r in pg("SELECT * FROM chaos.tallies")},
        pg_audit=[
            dict(r)
            for r in pg(
                "SELECT kind, vote_id::text AS vote_id, source_partition, source_offset"
                " FROM chaos.audit_log"
            )
        ],
        dead_letters={r["reason"]: r["n"] for r in dead},
        topic_ballots=list(watcher.raw["ballots"]),
        topic_rejections=list(watcher.raw["rejections"]),
        topic_tallies=list(watcher.raw["tallies"]),
        topic_audit=list(watcher.raw["audit"]),
        audit_verify=(
            verify_cmd.returncode,
            verify_cmd.stdout.strip() or verify_cmd.stderr.strip(),
        ),
    )
    checks = evaluate(plan, observed)
    if any(not c.ok and "tall" in c.name for c in checks):
        _dump_tallies(plan, observed, cluster.log_dir / "tally-diagnosis.json")
    return checks


def _dump_tallies(plan: Plan, obs: Observed, path: Path) -> None:
    """For a failed tally check: each wrong submission's planned ballots, Postgres row,
    and every tally and ballot the topics carried for it, to tell lost from extra."""
    from bench.chaos_checks import expected_tallies

    expected = expected_tallies(plan)
    tallies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for raw in obs.topic_tallies:
        t = json.loads(raw)
        tallies[t["submission_id"]].append(t)
    ballots: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for raw in obs.topic_ballots:
        b = json.loads(raw)
        ballots[b["submission_id"]].append(b)
    out = {}
    for sub, counts in expected.items():
        row = obs.pg_tallies.get(sub, {})
        versions = tallies.get(sub, [])
        if {k: row.get(k) for k in counts} != counts or len(
            {(t["version"], json.dumps(t["counts"], sort_keys=True)) for t in versions}
        ) != len({t["version"] for t in versions}):
            out[sub] = {
                "expected": counts,
                "postgres": {k: row.get(k) for k in (*counts, "total", "version", "decision")},
                "topic_tallies": sorted(
                    ([t["version"], t["counts"], t["decision"]] for t in versions),
                    key=lambda v: v[0],
                ),
                "topic_ballots": [
                    [b["vote_id"], b["vote_type"], b["source_partition"], b["source_offset"]]
                    for b in ballots.get(sub, [])
                ],
            }
    path.write_text(json.dumps(out, indent=1, default=str) + "\n")


#: The pause watchdog's one CRITICAL line (streams/pause.py), a planned stop.
PAUSED_LINE = "long enough to lose its partitions; stopping"


def scan_logs(log_dir: Path) -> dict[str, Any]:
    """Count ERROR lines, Tracebacks and CRITICALs in the workers' and the sink's logs."""
    out: dict[str, Any] = {
        "errors": 0,
        "tracebacks": 0,
        "critical": 0,
        "paused_exits": 0,
        "first": None,
        "by_file": {},
    }
    for path in sorted(log_dir.glob("*.log")):
        text = path.read_text(errors="replace")
        errors = sum(1 for line in text.splitlines() if " ERROR " in line or "[ERROR]" in line)
        tracebacks = text.count("Traceback (most recent call last)")
        # The pause watchdog's planned stop (streams/pause.py) is counted apart: the
        # harness knows how many pauses it made; any other CRITICAL is a failure.
        paused = sum(1 for line in text.splitlines() if PAUSED_LINE in line)
        critical = sum(1 for line in text.splitlines() if "CRITICAL" in line) - paused
        out["by_file"][path.name] = {
            "errors": errors,
            "tracebacks": tracebacks,
            "critical": critical,
        }
        out["errors"] += errors
        out["tracebacks"] += tracebacks
        out["critical"] += critical
        out["paused_exits"] += paused
        if (tracebacks or critical) and out["first"] is None:
            lines = text.splitlines()
            idx = next(
                i
                for i, line in enumerate(lines)
                if "Traceback" in line or ("CRITICAL" in line and PAUSED_LINE not in line)
            )
            out["first"] = f"{path.name}: " + " | ".join(lines[max(0, idx - 2) : idx + 8])[:1500]
    return out


def report(result: ChaosResult, console: Console) -> None:
    faults = Table(title="faults injected")
    for col in (
        "#",
        "kind",
        "fired at (s)",
        "outcomes seen",
        "recovery (s)",
        "outputs flowing (s)",
        "detail",
    ):
        faults.add_column(col, justify="right" if col not in ("kind", "detail") else "left")
    for n, f in enumerate(result.faults, 1):
        detail = ", ".join(f"{k}={v}" for k, v in f.detail.items())
        if f.error:
            detail = f"[red]{f.error}[/] " + detail
        faults.add_row(
            str(n),
            f.kind,
            str(f.fired_at),
            str(f.progress_at_fire),
            str(f.recovery_s),
            str(f.flowing_s),
            detail,
        )
    console.print(faults)
    if result.unplanned:
        console.print(
            "[red]unplanned exits:[/]", [(u["piece"], u["code"], u["at"]) for u in result.unplanned]
        )
    inv = Table(title=f"invariants ({result.workload['planned']} planned messages)")
    for col in ("invariant", "expected", "got", "result", "note"):
        inv.add_column(col)
    for c in result.checks:
        inv.add_row(
            c.name,
            str(c.expected),
            str(c.got),
            "[green]PASS[/]" if c.ok else "[red]FAIL[/]",
            c.note[:120],
        )
    console.print(inv)
    console.print(f"timings: {result.timings}")
    console.print(
        "[bold green]ALL INVARIANTS HOLD[/]" if result.ok else "[bold red]INVARIANT VIOLATED[/]"
    )


def _ignore_interrupts(on: bool) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN if on else signal.default_int_handler)


def _sigterm(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # runs the cleanup (private stack down) when a timeout kills us


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _sigterm)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--votes", type=int, default=None, help="planned messages, at least (default 50000)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--short", action="store_true", help="~3,000 votes and a few faults (as in make test)"
    )
    parser.add_argument("--rate", type=float, default=None, help="votes/s the producer is paced at")
    parser.add_argument("--worker-kills", type=int, default=None)
    parser.add_argument("--worker-pauses", type=int, default=None)
    parser.add_argument("--worker-wipes", type=int, default=None)
    parser.add_argument("--rebalances", type=int, default=None)
    parser.add_argument("--broker-restarts", type=int, default=None)
    parser.add_argument("--postgres-restarts", type=int, default=None)
    parser.add_argument(
        "--brokers", type=int, default=None, help="Kafka brokers (KRaft cluster; default 1)"
    )
    parser.add_argument(
        "--broker-kills",
        type=int,
        default=None,
        help="SIGKILLs of one broker (needs --brokers > 1)",
    )
    parser.add_argument("--sink-kills", type=int, default=None)
    parser.add_argument("--store", choices=["rocksdb", "memory"], default="rocksdb")
    parser.add_argument("--keep", action="store_true", help="keep the private stack's data dir")
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="JSON output (default bench/results/chaos.json, or chaos-short.json)",
    )
    args = parser.parse_args(argv)
    over = {
        k: v
        for k, v in {
            "votes": args.votes,
            "seed": args.seed,
            "rate": args.rate,
            "worker_kills": args.worker_kills,
            "worker_pauses": args.worker_pauses,
            "worker_wipes": args.worker_wipes,
            "rebalances": args.rebalances,
            "broker_restarts": args.broker_restarts,
            "postgres_restarts": args.postgres_restarts,
            "brokers": args.brokers,
            "broker_kills": args.broker_kills,
            "sink_kills": args.sink_kills,
            "store": args.store,
            "keep": args.keep,
        }.items()
        if v is not None
    }
    cfg = ChaosConfig.short_run(**over) if args.short else ChaosConfig(**over)
    results = args.results or RESULTS_DIR / ("chaos-short.json" if args.short else "chaos.json")
    result = run_chaos(cfg, results=results)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())


def markdown(results: Path) -> str:
    """The fault and invariant tables of a results file, as Markdown (for docs/reliability.md)."""
    d = json.loads(results.read_text())
    w = d["workload"]
    out = [
        f"`{d.get('command', '')}` — {d.get('when', '')}, {w['planned']:,} planned messages "
        f"({w.get('votes_per_epoch', '?')} votes per reviewer, "
        f"{w['submissions']:,} submissions, {w['rings']} rings of "
        f"{d['config']['ring_size']}), {len(d['faults'])} faults, "
        f"total {d['timings'].get('total_s')} s "
        f"(signing the round: {d['timings'].get('build_s')} s), load average at the end "
        f"{d.get('machine', {}).get('load_avg')}.",
        "",
        "| # | fault | fired at (s) | outcomes seen | recovery (s) "
        "| outputs flowing (s) | detail |",
        "| ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for n, f in enumerate(d["faults"], 1):
        detail = ", ".join(f"{k}={v}" for k, v in f["detail"].items())
        if f["error"]:
            detail = f"**{f['error']}** " + detail
        out.append(
            f"| {n} | {f['kind']} | {f['fired_at']} | {f['progress_at_fire']} "
            f"| {f['recovery_s']} | "
            f"{f['flowing_s'] if f['flowing_s'] is not None else '—'} | {detail} |"
        )
    out += ["", "| invariant | expected | got | result |", "| --- | ---: | ---: | --- |"]
    for c in d["checks"]:
        note = f" ({c['note'][:120]})" if c["note"] and not c["ok"] else ""
        out.append(
            f"| {c['name']}{note} | {c['expected']} | {c['got']} "
            f"| {'PASS' if c['ok'] else '**FAIL**'} |"
        )
    return "\n".join(out)
