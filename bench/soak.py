"""Soak: the full pipeline (worker + sink + Postgres) at half its maximum throughput, for long,
with 2 % hostile traffic and a ring rotation every 5 minutes (issue 16).

    python bench/soak.py --minutes 30 --name soak-s10   # bench/results/soak-s10.json and .png
    python bench/soak.py --minutes 3 --rotate-every 60 --window 60 --calibrate 30   # quick

The rate defaults to half of this workload's maximum, measured by an unpaced run
first (``--calibrate`` seconds; 0: half the single-worker votes/s in
bench/results/pipeline.json). Runs on a PRIVATE Kafka and PostgreSQL (free
ports, like bench/chaos.py; the shared stack is not touched). A generator
process signs honest votes on the fly (protocol v2: each on its reviewer's next
slot, unique key images; when a reviewer's ``K`` slots of an epoch are used, the
next epoch's ring and submissions) and publishes them paced, with
``--hostile-share`` of the messages hostile, made by bench/hostile.py's
generators (``SOAK_HOSTILE``). Every ``--rotate-every`` seconds it rotates every
ring (``rotation_members``: the next version drops its oldest member, the
revoked reviewer, and adds a new one), registrar-signed as ``ringtally rings
rotate`` does, after every vote before it is appended; the honest votes after it
are the new version's members' and name it.

Every ``--sample`` seconds the harness records the RSS of the worker and the
sink (from /proc), the worker group's lag on the votes topic, the sink's lag on
the output topics and the ballots in Postgres. At the end it checks, by
votes-topic position, that each hostile message has exactly one rejection on the
rejections topic with an allowed reason (and the same in Postgres), none a
ballot, and that every honest vote is a ballot; it reports RSS per
``--window`` (median), the plateau criterion (``plateau``), every ERROR /
CRITICAL / Traceback line of the logs classified against ``EXPECTED_LOG_LINES``,
and a PNG of RSS and lag with the rotations marked.
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
#: share of hostile messages among all messages (issue 16: 2 %)
HOSTILE_SHARE = 0.02
#: bench/hostile.py categories the soak mixes in, made by its generators
#: (``json_mutation``, ``mutate_signature``, ``_after_attack``); expected reasons from
#: its ``CATEGORIES``. Signature ones go on an honest vote's tag before that vote.
MALFORMED_KINDS = (
    "random_bytes",
    "truncated_json",
    "invalid_json",
    "wrong_types",
    "missing_or_extra_fields",
    "non_ascii_or_bad_utf8",
    "huge_numbers",
    "null_value",
    "key_not_token",
    "vote_id_not_token_bound",
    "non_canonical_base64",
)
SIG_KINDS = (
    "sig:bit_flip",
    "sig:random_well_formed",
    "sig:non_canonical_scalar",
    "sig:invalid_L_R_point",
    "sig:identity_L_R",
    "sig:wrong_length",
)
#: the soak's hostile mix: group -> (weight, allowed reasons; None: the bench/hostile.py
#: category's). ``stale_ring_version``: a vote signed against the version a rotation
#: replaced, by its revoked reviewer or a member still in the ring, appended after the
#: rotation (only once there was one; its weight goes to the others before).
SOAK_HOSTILE: dict[str, tuple[float, frozenset[str] | None]] = {
    "malformed": (0.25, None),
    "bad_signature": (0.25, None),
    "token_replay": (0.1, frozenset({"token_spent"})),
    "duplicate": (0.1, frozenset({"duplicate_record"})),
    "foreign_partition": (0.1, frozenset({"wrong_partition"})),
    "stale_ring_version": (0.2, frozenset({"ring_not_in_force"})),
}
#: ERROR / CRITICAL / Traceback lines the soak expects, by name: (regex, where, why);
#: ``where`` "startup": only in a worker's log before its "Worker]: Ready" line. Every
#: other such line is unexpected and fails the run.
EXPECTED_LOG_LINES: dict[str, tuple[str, str, str]] = {
    "coordinator_not_yet_available": (
        r"\[ERROR\] Group Coordinator Request failed: \[Error 15\] "
        r"GroupCoordinatorNotAvailableError",
        "startup",
        "aiokafka, while the fresh broker creates __consumer_offsets for the first group",
    ),
    "assignor_topic_not_yet_created": (
        r"\[ERROR\] Topic \S+-__assignor-__leader not found in cluster metadata",
        "startup",
        "Faust, polling for its leader topic while it creates it on the fresh broker",
    ),
}


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _keys(seed: int, pool: int = RING) -> dict[str, list[Any]]:
    """Each genre's reviewer keys: ``pool`` of them (version v's members are a window)."""
    import ringcrypto

    return {
        f"g{g}": [
            ringcrypto.SecretKey.from_seed(hashlib.sha256(f"soak/{seed}/{g}/{i}".encode()).digest())
            for i in range(pool)
        ]
        for g in range(GENRES)
    }


def rotation_members(version: int) -> range:
    """Indices (in the genre's key pool) of ring version ``version``'s members: version 1
    has keys 0..15, each rotation revokes the oldest member and adds the next key."""
    return range(version - 1, version - 1 + RING)


def epochs_needed(votes: float) -> int:
    """Epochs a run of ``votes`` votes reaches (each reviewer has K slots per epoch)."""
    return max(1, int(votes // (GENRES * RING * K)) + 1)


def ring_model(genre: str, epoch: int, version: int, keys: list[Any], valid_from: Any) -> Any:
    """Version ``version`` of the ring of ``genre`` and ``epoch`` (unsigned)."""
    from models import Ring

    return Ring(
        ring_id=f"ring-{genre}-e{epoch}",
        version=version,
        genre=genre,
        epoch=epoch,
        public_keys=[keys[i].public_key.hex() for i in rotation_members(version)],
        votes_per_epoch=K,
        valid_from=valid_from,
    )


def control_records(
    seed: int, settings: Settings, epochs: int, first: int = 1
) -> list[tuple[str, bytes, bytes]]:
    """Registrar-signed rings (version 1 per genre and epoch) and K submissions per genre
    and epoch, for epochs ``first``..``epochs``."""
    from connectors.demo.simulation import VALID_FROM
    from connectors.sdk.registrar import load_registrar
    from models import Submission

    registrar = load_registrar(settings)
    out = []
    for genre, keys in _keys(seed).items():
        for epoch in range(first, epochs + 1):
            model = registrar.sign_ring(ring_model(genre, epoch, 1, keys, VALID_FROM))
            out.append(("rings", model.ring_id.encode(), model.to_json()))
            for s in range(K):
                sub = registrar.sign_submission(
                    Submission(submission_id=_sub(genre, epoch, s), genre=genre, epoch=epoch)
                )
                out.append(("submissions", sub.submission_id.encode(), sub.to_json()))
    return out


def _sub(genre: str, epoch: int, n: int) -> str:
    return f"sub-{genre}-e{epoch}-{n:04d}"


class Voters:
    """The reviewers' keys, rings and used slots: honest vote ``n`` is genre ``n % GENRES``,
    the ``(n // GENRES) % RING``-th member of the ring version in force; a key's j-th vote
    is on slot ``j % K`` of epoch ``1 + j // K``, on that epoch's submission ``j % K``
    (unique tags and key images, every slot once)."""

    def __init__(self, seed: int, pool: int) -> None:
        self.keys = _keys(seed, pool)
        self.used: dict[tuple[str, int], int] = {}
        self._rings: dict[tuple[str, int], Any] = {}

    def ring(self, genre: str, version: int) -> Any:
        import ringcrypto

        if (genre, version) not in self._rings:
            members = [self.keys[genre][i].public_key for i in rotation_members(version)]
            self._rings[(genre, version)] = ringcrypto.Ring(members)
        return self._rings[(genre, version)]

    def vote(self, genre: str, member: int, version: int, vote_type: str) -> Any:
        """The next vote of key ``member`` of ``genre``'s pool, signed against ``version``."""
        from connectors.sdk import build_vote

        j = self.used.get((genre, member), 0)
        self.used[(genre, member)] = j + 1
        epoch, slot = 1 + j // K, j % K
        return build_vote(
            self.keys[genre][member],
            self.ring(genre, version),
            submission_id=_sub(genre, epoch, slot),
            ring_id=f"ring-{genre}-e{epoch}",
            ring_version=version,
            vote_type=vote_type,
            epoch=epoch,
            slot=slot,
            batchable=True,
        )

    def honest(self, n: int, version: int) -> Any:
        genre = f"g{n % GENRES}"
        member = rotation_members(version)[(n // GENRES) % RING]
        return self.vote(genre, member, version, ("approve", "reject", "flag", "escalate")[n % 4])


class Hostile:
    """Makes the soak's hostile messages (``SOAK_HOSTILE``) with bench/hostile.py's
    generators; ``plan`` says which go before an honest vote, which after it."""

    def __init__(self, rng: Any, voters: Voters) -> None:
        self.rng = rng
        self.voters = voters

    def group(self, version: int) -> str:
        groups = [g for g in SOAK_HOSTILE if g != "stale_ring_version" or version > 1]
        return self.rng.choices(groups, weights=[SOAK_HOSTILE[g][0] for g in groups])[0]

    def plan(self, group: str, vote: Any, version: int) -> tuple[list[Any], list[Any]]:
        """(messages before ``vote``, messages after it) for one hostile message of ``group``."""
        from bench.hostile import (
            CATEGORIES,
            Msg,
            _after_attack,
            _sig,
            _with_sig,
            json_mutation,
            mutate_signature,
        )

        rng = self.rng
        if group == "malformed":
            kind = rng.choice(MALFORMED_KINDS)
            # on an "approve" copy: json_mutation's non_ascii_or_bad_utf8 rewrites the bytes
            # of "approve"/"reject" only, and left a "flag" vote valid (soak-s10: 9 such)
            base = dict(json.loads(vote.to_json()), vote_type="approve")
            key, value = json_mutation(kind, base, rng)
            return [Msg(key, value, kind, CATEGORIES[kind][1])], []
        if group == "bad_signature":
            kind = rng.choice(SIG_KINDS)
            value = _with_sig(vote, mutate_signature(kind, _sig(vote), RING, rng))
            return [Msg(vote.token_id.encode(), value, kind, CATEGORIES[kind][1])], []
        expect = SOAK_HOSTILE[group][1]
        assert expect is not None
        if group == "token_replay" and vote.vote_type == "reject":
            group, expect = "duplicate", SOAK_HOSTILE["duplicate"][1]  # the replay's bytes
        if group == "token_replay":
            # the vote as "reject" on its spent tag (bench/hostile.py's after:token_replay;
            # a "reject" vote's would be its very bytes: duplicate_record)
            msg = _after_attack("after:token_replay", None, vote, ("", 0, ""))  # type: ignore[arg-type]
            return [], [Msg(msg.key, msg.value, group, expect)]
        if group == "duplicate":
            return [], [Msg(vote.token_id.encode(), vote.to_json(), group, expect)]
        if group == "foreign_partition":
            msg = Msg(vote.token_id.encode(), vote.to_json(), group, expect)
            msg.foreign = True
            return [], [msg]
        # stale_ring_version: the revoked reviewer of the last rotation, or a member still
        # in the ring, signs against the replaced version (its next slot)
        genre = f"g{rng.randrange(GENRES)}"
        old = version - 1
        member = rotation_members(old)[0 if rng.random() < 0.5 else rng.randrange(1, RING)]
        stale = self.voters.vote(genre, member, old, "approve")
        return [Msg(stale.token_id.encode(), stale.to_json(), group, expect)], []


def generator(
    settings_json: str,
    seed: int,
    rate: float,
    seconds: float,
    counter: Any,
    stop: Any,
    start: int = 0,
    hostile_share: float = 0.0,
    rotate_every: float = 0.0,
    epochs: int = 1,
    out_path: str | None = None,
) -> None:
    """Child process: sign and publish messages at ``rate``/s for ``seconds``: honest votes,
    ``hostile_share`` of them hostile, every ``rotate_every`` s a rotation of every ring.

    Writes ``out_path`` (JSON) at the end: honest votes sent, each hostile message's
    category, allowed reasons and (partition, offset), the rotations (wall time, version).
    """
    import random
    from datetime import UTC, datetime

    from confluent_kafka import Producer

    from connectors.sdk import SdkProducer
    from connectors.sdk.registrar import load_registrar
    from streams.kafka_client import kafka_config
    from streams.partitioner import partition_for_key

    settings = Settings.model_validate_json(settings_json)
    rotations_max = int(seconds // rotate_every) + 1 if rotate_every else 0
    voters = Voters(seed, RING + rotations_max)
    # the votes before ``start`` (the calibration's) were made on version 1: their slots
    for n in range(start):
        genre = f"g{n % GENRES}"
        member = rotation_members(1)[(n // GENRES) % RING]
        voters.used[(genre, member)] = voters.used.get((genre, member), 0) + 1
    rng = random.Random(seed * 1_000_003 + start)
    hostile = Hostile(rng, voters)
    per_honest = hostile_share / (1 - hostile_share)
    producer = SdkProducer(settings, **{"linger.ms": 5, "log_level": 2})
    foreign = Producer(kafka_config(settings, **{"linger.ms": 5, "log_level": 2, "acks": "all"}))
    registrar = load_registrar(settings) if rotate_every else None
    votes = settings.topic("votes")
    sent: list[dict[str, Any]] = []  # hostile messages: category, expect, position
    rotations: list[dict[str, Any]] = []
    version = 1

    def send(msg: Any) -> None:
        record = {"category": msg.category, "expect": sorted(msg.expect), "pos": None}
        sent.append(record)

        def delivered(partition: int, offset: int, record: dict[str, Any] = record) -> None:
            record["pos"] = [partition, offset]

        if msg.foreign:
            where = (partition_for_key(msg.key, settings.partitions) + 1) % settings.partitions
            foreign.produce(
                votes,
                key=msg.key,
                value=msg.value,
                partition=where,
                on_delivery=lambda err, m, f=delivered: (
                    f(m.partition(), m.offset()) if err is None else None
                ),
            )
            foreign.poll(0)
        else:
            producer.send(votes, msg.key, msg.value, delivered)

    def rotate() -> None:
        nonlocal version
        # every vote on the old version is appended first; then the new versions
        producer.flush(120)
        time.sleep(0.01)  # past the last vote's broker millisecond
        version += 1
        now = datetime.now(UTC)
        for genre, keys in voters.keys.items():
            for epoch in range(1, epochs + 1):
                model = registrar.sign_ring(ring_model(genre, epoch, version, keys, now))
                producer.send(settings.topic("rings"), model.ring_id.encode(), model.to_json())
        producer.flush(120)
        rotations.append({"wall": time.time(), "version": version})
        time.sleep(0.01)

    t0 = time.monotonic()
    n, m = start, 0  # honest votes, messages
    while not stop.is_set() and time.monotonic() - t0 < seconds:
        if rotate_every and time.monotonic() - t0 >= rotate_every * (len(rotations) + 1):
            rotate()
        delay = t0 + m / rate - time.monotonic()  # rate > 0: main checks
        if delay > 0:
            time.sleep(delay)
        vote = voters.honest(n, version)
        before: list[Any] = []
        after: list[Any] = []
        if per_honest and rng.random() < per_honest:
            before, after = hostile.plan(hostile.group(version), vote, version)
        for msg in before:
            send(msg)
        producer.send(votes, vote.token_id.encode(), vote.to_json())
        for msg in after:
            send(msg)
        n += 1
        m += 1 + len(before) + len(after)
        if n % 200 == 0:
            counter.value = n
    producer.flush(120)
    foreign.flush(120)
    counter.value = n
    if out_path:
        Path(out_path).write_text(
            json.dumps({"honest": n - start, "hostile": sent, "rotations": rotations}) + "\n"
        )


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


def chart(
    samples: list[dict[str, Any]], path: Path, title: str, rotations: list[float] = ()
) -> None:
    """RSS (top) and lag (bottom) over time; dotted lines: the ring rotations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] / 60 for s in samples]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    ax1.plot(t, [(s["worker_rss_kib"] or 0) / 1024 for s in samples], label="worker RSS")
    ax1.plot(t, [(s["sink_rss_kib"] or 0) / 1024 for s in samples], label="sink RSS")
    ax1.set_ylabel("MiB")
    ax1.grid(alpha=0.3)
    ax1.set_title(title, fontsize=10)
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
    for n, at in enumerate(rotations):
        for ax in (ax1, ax2):
            ax.axvline(
                at / 60,
                color="grey",
                linestyle=":",
                label="ring rotation" if n == 0 and ax is ax1 else None,
            )
    ax1.legend(loc="upper left")
    ax2.set_ylabel("records")
    ax2.set_xlabel("minutes")
    ax2.legend(loc="upper left")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def windows(samples: list[dict[str, Any]], key: str, seconds: float) -> list[float]:
    """Median of ``key`` (KiB) per ``seconds`` window, in MiB (a last partial window under
    half a window is left out)."""
    import statistics

    out: list[float] = []
    last = max((s["t"] for s in samples), default=0)
    w = 0
    while w * seconds < last:
        vals = [s[key] for s in samples if w * seconds <= s["t"] < (w + 1) * seconds and s[key]]
        if vals and (w + 0.5) * seconds <= last:
            out.append(round(statistics.median(vals) / 1024, 1))
        w += 1
    return out


def slope_mib_per_10min(samples: list[dict[str, Any]], key: str) -> float | None:
    """Least-squares slope of ``key`` over the second half of the run, MiB per 10 minutes."""
    half = [s for s in samples if s[key] and s["t"] >= samples[-1]["t"] / 2]
    if len(half) < 3:
        return None
    xs = [s["t"] for s in half]
    ys = [s[key] / 1024 for s in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den * 600, 1)


#: plateau: the last two windows' medians differ by less than this (see docs/reliability.md)
PLATEAU_TOLERANCE = 0.05


def plateau(medians: list[float]) -> dict[str, Any]:
    """Whether RSS levelled off: the last two windows' medians within PLATEAU_TOLERANCE."""
    if len(medians) < 2:
        return {"reached": None, "last_two_change": None}
    change = (medians[-1] - medians[-2]) / medians[-2]
    return {"reached": abs(change) < PLATEAU_TOLERANCE, "last_two_change": round(change, 4)}


def classify_logs(log_dir: Path) -> dict[str, Any]:
    """Every ERROR / CRITICAL / Traceback line of the logs, named by EXPECTED_LOG_LINES or
    unexpected."""
    import re

    expected = {
        name: (re.compile(rx), where) for name, (rx, where, _) in EXPECTED_LOG_LINES.items()
    }
    counts: dict[str, int] = {}
    unexpected: list[str] = []
    for path in sorted(log_dir.glob("*.log")):
        startup = path.name.startswith("worker")
        for line in path.read_text(errors="replace").splitlines():
            if startup and "Worker]: Ready" in line:
                startup = False
            if not (
                " ERROR " in line
                or "[ERROR]" in line
                or "CRITICAL" in line
                or "Traceback (most recent call last)" in line
            ):
                continue
            name = next(
                (
                    k
                    for k, (rx, where) in expected.items()
                    if rx.search(line) and (where != "startup" or startup)
                ),
                None,
            )
            if name is None:
                unexpected.append(f"{path.name}: {line[:400]}")
            else:
                counts[name] = counts.get(name, 0) + 1
    return {"expected": counts, "unexpected": len(unexpected), "unexpected_lines": unexpected[:50]}


def check_outcomes(
    cluster: Cluster, hostile: list[dict[str, Any]], honest: int
) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """Each hostile message: exactly one rejection on the rejections topic, with an allowed
    reason, the same in Postgres, no ballot; every honest vote a ballot."""
    from collections import Counter, defaultdict

    from bench.chaos import _topic_records

    s = cluster.settings
    votes = s.topic("votes")
    on_topic: dict[tuple[int, int], list[str]] = defaultdict(list)
    for _p, _o, _ts, value in _topic_records(s, s.topic("rejections"), timeout=300):
        body = json.loads(value)
        if body["source_topic"] == votes:
            on_topic[(body["source_partition"], body["source_offset"])].append(body["reason"])
    in_pg = {
        (r["source_partition"], r["source_offset"]): r["reason"]
        for r in cluster.pg(
            "SELECT source_partition, source_offset, reason FROM chaos.rejections"
            " WHERE source_topic = $1",
            votes,
        )
    }
    positions = {tuple(h["pos"]) for h in hostile if h["pos"]}
    ps, os_ = zip(*positions, strict=True) if positions else ((), ())
    ballots_at_hostile = cluster.pg(
        "SELECT count(*) AS n FROM chaos.ballots b JOIN unnest($1::int[], $2::bigint[])"
        " AS h(p, o) ON b.source_partition = h.p AND b.source_offset = h.o",
        list(ps),
        list(os_),
    )[0]["n"]
    ballots = int(cluster.pg("SELECT count(*) AS n FROM chaos.ballots")[0]["n"])
    votes_records = sum(_end_offsets(s, [votes]).values())
    missing, double, wrong, disagree = [], [], [], []
    by_category: dict[str, Counter[str]] = defaultdict(Counter)
    for h in hostile:
        if not h["pos"]:
            continue
        pos = tuple(h["pos"])
        got = on_topic.get(pos, [])
        by_category[h["category"]][",".join(sorted(got)) or "none"] += 1
        if not got:
            missing.append((h["category"], pos))
        elif len(got) > 1:
            double.append((h["category"], pos, got))
        elif got[0] not in h["expect"]:
            wrong.append((h["category"], pos, got[0]))
        if got and in_pg.get(pos) != got[0]:
            disagree.append((h["category"], pos, got, in_pg.get(pos)))
    stray = [p for p in on_topic if p not in positions]
    checks: list[dict[str, Any]] = []

    def add(name: str, expected: Any, got: Any, note: Any = "") -> None:
        checks.append(
            {
                "name": name,
                "expected": expected,
                "got": got,
                "ok": expected == got,
                "note": str(note),
            }
        )

    add("hostile messages acknowledged by Kafka", len(hostile), len(positions))
    add("hostile messages with no rejection on the topic", 0, len(missing), missing[:3])
    add("hostile messages with more than one rejection", 0, len(double), double[:3])
    add("hostile messages rejected with an unexpected reason", 0, len(wrong), wrong[:5])
    add("hostile rejections the topic and Postgres disagree on", 0, len(disagree), disagree[:3])
    add("ballots at hostile positions (accepted forgeries)", 0, int(ballots_at_hostile))
    add("rejections at honest positions", 0, len(stray), stray[:3])
    add("honest votes counted (ballots in Postgres)", honest, ballots)
    add("votes-topic records = honest + hostile", honest + len(hostile), votes_records)
    return checks, {k: dict(v) for k, v in sorted(by_category.items())}


def _probe_worker(path: Path, every: float, trace: bool) -> None:
    """Start the soak's worker through bench/memprobe.py: its memory, sampled every
    ``every`` s, as JSON lines in ``path`` (RocksDB's figures, glibc's heap, Python's)."""
    import dataclasses

    import bench.chaos
    from connectors.stack.harness import WorkerProcess

    @dataclasses.dataclass
    class ProbedWorker(WorkerProcess):
        module: str = "bench.memprobe"

    os.environ["RINGTALLY_MEMPROBE_OUT"] = str(path)
    os.environ["RINGTALLY_MEMPROBE_EVERY"] = str(every)
    os.environ["RINGTALLY_MEMPROBE_TRACEMALLOC"] = "1" if trace else "0"
    bench.chaos.WorkerProcess = ProbedWorker  # type: ignore[misc]


def _probe_rows(path: Path) -> list[dict[str, Any]] | None:
    from bench.memprobe import summarize

    return summarize(path) if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument(
        "--rate", type=float, default=None, help="messages/s (default: half the measured max)"
    )
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--calibrate",
        type=float,
        default=90.0,
        help="seconds of an unpaced run first, to measure the max (0: use pipeline.json)",
    )
    parser.add_argument(
        "--hostile-share", type=float, default=HOSTILE_SHARE, help="hostile share of messages"
    )
    parser.add_argument(
        "--rotate-every", type=float, default=300.0, help="seconds between ring rotations (0: none)"
    )
    parser.add_argument(
        "--window", type=float, default=300.0, help="seconds per RSS window (plateau)"
    )
    parser.add_argument("--name", default="soak", help="results as bench/results/<name>.json/.png")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--probe",
        type=float,
        default=0.0,
        help="seconds between memory probes of the worker (bench/memprobe.py; 0: off)",
    )
    parser.add_argument(
        "--tracemalloc", action="store_true", help="with --probe: Python allocations too (slow)"
    )
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
    probe_path = RESULTS / f"{args.name}-probe.jsonl"
    if args.probe:
        probe_path.unlink(missing_ok=True)
        _probe_worker(probe_path, args.probe, args.tracemalloc)
    cluster = Cluster(cfg, run_dir, console)
    samples: list[dict[str, Any]] = []
    stop = mp.Event()
    counter = mp.Value("q", 0)
    gen: mp.Process | None = None
    t_start = time.monotonic()
    out_path = run_dir / "generator.json"
    checks: list[dict[str, Any]] = []
    by_category: dict[str, dict[str, int]] = {}
    generated: dict[str, Any] = {"honest": 0, "hostile": [], "rotations": []}
    t0_wall = time.time()
    try:
        cluster.up()
        cluster.start_worker(0)
        cluster.wait_owned([0])
        cluster.start_sink()
        from connectors.sdk import SdkProducer

        producer = SdkProducer(cluster.settings, **{"log_level": 2})
        # the calibration's epoch (640,000 votes); more once the rate is known (each epoch
        # is 40,000 signed submissions the worker reads before its first vote)
        epochs = epochs_needed(args.rate * args.minutes * 60) if args.rate else 1
        for short, key, value in control_records(args.seed, cluster.settings, epochs):
            producer.send(cluster.settings.topic(short), key, value)
        producer.flush(120)
        ctx = mp.get_context("spawn")
        start = 0
        if args.calibrate:
            # this workload's own maximum: the generator unpaced (honest votes only) for
            # ``--calibrate`` s; ballots per second from the first ballot (the worker has
            # read the control plane) until the backlog is drained
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
            c_start = time.monotonic()
            gen.start()
            b0 = _ballots(cluster)
            while b0 == 0 and time.monotonic() - c_start < args.calibrate + 600:
                time.sleep(0.5)
                b0 = _ballots(cluster)
            c0 = time.monotonic()
            gen.join(args.calibrate + 600)
            start = counter.value
            t_drain = time.monotonic()
            while _ballots(cluster) < start and time.monotonic() - t_drain < 600:
                time.sleep(0.5)
            b1, c1 = _ballots(cluster), time.monotonic()
            measured = (b1 - b0) / (c1 - c0) if c1 > c0 else 0.0
            calibration = {
                "seconds": args.calibrate,
                "ballots_per_s": round(measured, 1),
                "published_per_s": round(start / args.calibrate, 1),
                "first_ballot_after_s": round(c0 - c_start, 1),
                "drain_s": round(c1 - t_drain, 1),
            }
            if measured <= 0 or b1 < start:
                console.print(f"[red]calibration failed: {calibration}; give --rate[/]")
                raise SystemExit(2)
            if args.rate is None:
                args.rate = round(measured / 2, 1)
                rate_from = (
                    f"half of {measured:.0f} ballots/s measured by a "
                    f"{args.calibrate:.0f} s unpaced run of this workload (honest votes, "
                    "from the first ballot to the end of the backlog)"
                )
            more = epochs_needed(start + args.rate * args.minutes * 60)
            if more > epochs:  # the rate is known now: the epochs the soak will reach
                for short, key, value in control_records(
                    args.seed, cluster.settings, more, first=epochs + 1
                ):
                    producer.send(cluster.settings.topic(short), key, value)
                producer.flush(120)
                epochs = more
            console.print(f"calibration: {calibration}")
        console.print(
            f"soak: {args.minutes} min at {args.rate} messages/s ({rate_from}), "
            f"{args.hostile_share:.1%} hostile, a rotation every {args.rotate_every:g} s; "
            f"dir {run_dir}"
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
                args.hostile_share,
                args.rotate_every,
                epochs,
                str(out_path),
            ),
            daemon=True,
        )
        t0 = time.monotonic()
        t0_wall = time.time()
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
                    "load_avg_1m": round(os.getloadavg()[0], 2),
                }
                samples.append(sample)
                if len(samples) % 6 == 1:
                    console.print(
                        f"  t={sample['t']:>6}s honest {sample['published']:>7} "
                        f"ballots {sample['ballots_pg']:>7} "
                        f"worker {((sample['worker_rss_kib'] or 0) / 1024):.0f} MiB "
                        f"lag {sample['worker_lag']} "
                        f"sink {((sample['sink_rss_kib'] or 0) / 1024):.0f} MiB "
                        f"lag {sample['sink_lag']} load {sample['load_avg_1m']}"
                    )
            cluster.supervise()
            time.sleep(1.0)
        stop.set()
        gen.join(120)
        generated = json.loads(out_path.read_text())
        published = generated["honest"]
        hostile_n = len(generated["hostile"])
        # drain: the pipeline and the sink catch up with what was published
        drain_t = time.monotonic()
        while time.monotonic() - drain_t < 300:
            outcomes = int(
                cluster.pg(
                    "SELECT (SELECT count(*) FROM chaos.ballots)"
                    " + (SELECT count(*) FROM chaos.rejections) AS n"
                )[0]["n"]
            )
            if outcomes >= start + published + hostile_n and (sink_lag(cluster) or 0) == 0:
                break
            time.sleep(2)
        drain_s = round(time.monotonic() - drain_t, 1)
        checks, by_category = check_outcomes(cluster, generated["hostile"], start + published)
        final_ballots = cluster.pg("SELECT count(*) AS n FROM chaos.ballots")[0]["n"]
        rejections = cluster.pg(
            "SELECT reason, count(*) AS n FROM chaos.rejections GROUP BY reason"
        )
    finally:
        stop.set()
        if gen is not None and gen.is_alive():
            gen.terminate()
        logs = scan_logs(cluster.log_dir)
        classified = classify_logs(cluster.log_dir)
        cluster.down()
        if not args.keep:
            shutil.rmtree(run_dir / "data", ignore_errors=True)

    rotation_at = [round(r["wall"] - t0_wall, 1) for r in generated["rotations"]]
    worker_windows = windows(samples, "worker_rss_kib", args.window)
    sink_windows = windows(samples, "sink_rss_kib", args.window)
    expected_rotations = (
        int((args.minutes * 60 - 1e-9) // args.rotate_every) if args.rotate_every else 0
    )
    worker_plateau = plateau(worker_windows)
    sink_plateau = plateau(sink_windows)
    checks += [
        {
            "name": "ring rotations made",
            "expected": expected_rotations,
            "got": len(rotation_at),
            "ok": len(rotation_at) == expected_rotations,
            "note": str(rotation_at),
        },
        {
            "name": f"worker RSS plateau (last two {args.window:g} s windows within "
            f"{PLATEAU_TOLERANCE:.0%})",
            "expected": True,
            "got": worker_plateau["reached"],
            "ok": worker_plateau["reached"] is True,
            "note": str(worker_windows),
        },
        {
            "name": f"sink RSS flat (last two windows within {PLATEAU_TOLERANCE:.0%})",
            "expected": True,
            "got": sink_plateau["reached"],
            "ok": sink_plateau["reached"] is True,
            "note": str(sink_windows),
        },
        {
            "name": "unexpected ERROR / CRITICAL / Traceback lines",
            "expected": 0,
            "got": classified["unexpected"],
            "ok": classified["unexpected"] == 0,
            "note": str(classified["unexpected_lines"][:3]),
        },
        {
            "name": "unplanned exits",
            "expected": 0,
            "got": len(cluster.unplanned),
            "ok": not cluster.unplanned,
            "note": "",
        },
    ]

    def quarter_mean(key: str, which: int) -> float | None:
        vals = [s[key] for s in samples if s[key] is not None]
        if len(vals) < 8:
            return None
        q = len(vals) // 4
        part = vals[:q] if which == 0 else vals[-q:]
        return round(sum(part) / len(part) / 1024, 1)

    hostile_by_category: dict[str, int] = {}
    for h in generated["hostile"]:
        hostile_by_category[h["category"]] = hostile_by_category.get(h["category"], 0) + 1
    summary = {
        "ok": all(c["ok"] for c in checks),
        "command": " ".join(sys.argv),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "minutes": args.minutes,
        "rate_messages_per_s": args.rate,
        "rate_from": rate_from,
        "hostile_share": args.hostile_share,
        "rotate_every_s": args.rotate_every,
        "calibration": calibration,
        "published_votes": published,
        "published_votes_including_calibration": published + start,
        "hostile_messages": len(generated["hostile"]),
        "hostile_by_category": dict(sorted(hostile_by_category.items())),
        "hostile_outcomes_by_category": by_category,
        "rotations_at_s": rotation_at,
        "ballots_in_postgres": final_ballots,
        "rejections": {r["reason"]: r["n"] for r in rejections},
        "drain_s": drain_s,
        "checks": checks,
        "worker_rss_mib": {
            "window_s": args.window,
            "window_medians": worker_windows,
            "plateau": worker_plateau,
            "second_half_slope_mib_per_10min": slope_mib_per_10min(samples, "worker_rss_kib"),
            "first_quarter": quarter_mean("worker_rss_kib", 0),
            "last_quarter": quarter_mean("worker_rss_kib", 1),
            "max": round(max((s["worker_rss_kib"] or 0) for s in samples) / 1024, 1),
        },
        "sink_rss_mib": {
            "window_s": args.window,
            "window_medians": sink_windows,
            "plateau": sink_plateau,
            "second_half_slope_mib_per_10min": slope_mib_per_10min(samples, "sink_rss_kib"),
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
        "log_lines": classified,
        "log_scan": {k: v for k, v in logs.items()},
        "unplanned_exits": cluster.unplanned,
        "worker_memory_probe": _probe_rows(probe_path) if args.probe else None,
        "machine": {"cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()]},
        "total_s": round(time.monotonic() - t_start, 1),
        "samples": samples,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    chart(
        samples,
        RESULTS / f"{args.name}.png",
        f"soak: {args.minutes:g} min at {args.rate} msg/s, {args.hostile_share:.0%} hostile, "
        f"rotation every {args.rotate_every:g} s (worker + sink, private stack)",
        rotation_at,
    )
    table = Table(title=f"soak {args.minutes:g} min at {args.rate} messages/s")
    table.add_column("figure")
    table.add_column("value")
    for k in (
        "calibration",
        "published_votes",
        "published_votes_including_calibration",
        "hostile_messages",
        "hostile_by_category",
        "rotations_at_s",
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
    table.add_row("expected log lines", str(classified["expected"]))
    console.print(table)
    from bench.hostile import checks_table

    console.print(checks_table(checks))
    console.print(f"wrote {RESULTS / (args.name + '.json')} and {RESULTS / (args.name + '.png')}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
