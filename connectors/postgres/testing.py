"""Helpers for the sink's tests and bench: output records, producing them, scratch schemas.

Not used by the sink itself. Records are built with the real models, so what
the tests feed the sink is exactly what the agents emit.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence

import asyncpg
from aiokafka import AIOKafkaProducer

from models import AuditEvent, Ballot, Decision, Rejection, Tally, VoteCounts, genesis_hash
from streams.settings import Settings

from .db import quote_ident

__all__ = [
    "audit_chain",
    "drop_schema",
    "make_ballot",
    "make_rejection",
    "make_tally",
    "produce",
    "produce_ballots",
    "settings_env",
    "wait_until",
]

_NS = uuid.UUID("6f1c1f8e-5d0b-4a51-9a1e-0d5c1a2b3c4d")


def make_ballot(i: int, submission: str = "sub-1", *, partition: int = 0) -> Ballot:
    """The i-th ballot: vote_id and key_image derived from i (and the submission)."""
    return Ballot.model_validate(
        {
            "vote_id": str(uuid.uuid5(_NS, f"{submission}/{i}")),
            "submission_id": submission,
            "key_image": hashlib.sha256(f"ki/{submission}/{i}".encode()).hexdigest(),
            "vote_type": ("approve", "reject", "flag", "escalate")[i % 4],
            "ring_id": "ring-1",
            "epoch": 7,
            "source_partition": partition,
            "source_offset": i,
        },
        strict=False,
    )


def make_tally(
    submission: str,
    version: int,
    *,
    approve: int = 0,
    reject: int = 0,
    flag: int = 0,
    escalate: int = 0,
    decision: Decision | None = None,
) -> Tally:
    counts = VoteCounts(approve=approve, reject=reject, flag=flag, escalate=escalate)
    return Tally(
        submission_id=submission,
        counts=counts,
        total=counts.total,
        decision=decision or Decision.PENDING,
        rules_version="ringtally-rules-v1;min_votes=3;flag_threshold=3",
        version=version,
    )


def make_rejection(i: int, *, topic: str = "ringtally.votes", partition: int = 0) -> Rejection:
    return Rejection.model_validate(
        {
            "vote_id": str(uuid.uuid5(_NS, f"rejected/{i}")),
            "token_id": f"tok-{i}",
            "reason": ("malformed", "bad_signature", "token_spent")[i % 3],
            "detail": f"test rejection {i}",
            "payload_b64": "e30=",
            "source_topic": topic,
            "source_partition": partition,
            "source_offset": i,
        },
        strict=False,
    )


def audit_chain(chain: str, n: int, *, submission: str = "sub-1") -> list[AuditEvent]:
    """n correctly chained events (ballots) of ``chain``."""
    out: list[AuditEvent] = []
    prev = genesis_hash(chain)
    for seq in range(1, n + 1):
        ev = AuditEvent.chained(
            prev_hash=prev,
            chain=chain,
            sequence=seq,
            kind="ballot",
            vote_id=str(uuid.uuid5(_NS, f"{chain}/{seq}")),
            submission_id=submission,
            key_image=hashlib.sha256(f"{chain}/{seq}".encode()).hexdigest(),
            decision="PENDING",
            source_partition=0,
            source_offset=seq,
        )
        out.append(ev)
        prev = ev.hash
    return out


async def produce(
    settings: Settings,
    kind: str,
    values: Iterable[bytes | None],
    *,
    keys: Sequence[bytes | None] | None = None,
    partition: int | None = None,
    linger_ms: int = 5,
) -> int:
    """Produce values to ``<prefix>.<kind>`` (keys cycle over partitions by hash); returns count."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=linger_ms,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    n = 0
    try:
        topic = settings.topic(kind)
        futs = []
        for i, value in enumerate(values):
            key = keys[i] if keys is not None else None
            futs.append(await producer.send(topic, value=value, key=key, partition=partition))
            n += 1
            if len(futs) >= 10_000:
                await asyncio.gather(*futs)
                futs.clear()
        await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return n


async def produce_ballots(settings: Settings, ballots: Sequence[Ballot]) -> int:
    """Produce ballots as the tally agent does: keyed by their submission id."""
    return await produce(
        settings,
        "ballots",
        [b.to_json() for b in ballots],
        keys=[b.submission_id.encode() for b in ballots],
    )


async def drop_schema(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(settings.postgres_schema)} CASCADE")
    finally:
        await conn.close()


def settings_env(settings: Settings) -> dict[str, str]:
    """os.environ plus RINGTALLY_* for these settings (for a child ``ringtally`` process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGTALLY_")}
    for name, value in settings.model_dump(exclude_none=True).items():
        env[f"RINGTALLY_{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return env


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float, *, every: float = 0.2, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what or check}")
        await asyncio.sleep(every)
