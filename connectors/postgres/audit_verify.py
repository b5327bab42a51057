"""``ringtally audit verify``: recompute every audit hash chain stored in Postgres.

The audit_log table refuses UPDATE, DELETE and TRUNCATE, but a superuser can
disable triggers, and disks and backups can rot; the hash chain is what
proves the rows are the events the tally agents emitted. This reads the
table in (chain, sequence) order through a server-side cursor (the primary
key's order, so no sort and constant memory) and checks each link the way
:func:`models.audit.first_break` does: sequences without gaps from 1, each
``prev_hash`` equal to the previous event's ``hash`` (the chain's genesis
hash for the first), and each ``hash`` equal to the hash of the row's own
content. The first break of every broken chain is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import ValidationError

from models import AuditEvent, ChainBreak, genesis_hash
from streams.settings import Settings

from .db import TRANSIENT, connect, unavailable
from .migrate import check_ready

__all__ = ["VerifyResult", "verify"]

_COLUMNS = (
    "chain, sequence, prev_hash, hash, kind, vote_id, submission_id, key_image, reason, "
    "decision, source_partition, source_offset"
)


@dataclass
class VerifyResult:
    events: int = 0
    chains: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks


class _ChainCheck:
    """The streaming form of ``first_break`` for one chain."""

    def __init__(self, chain: str) -> None:
        self.chain = chain
        self.prev = genesis_hash(chain)
        self.expected = 1
        self.broken: ChainBreak | None = None

    def feed(self, row: dict[str, object]) -> None:
        if self.broken is not None:
            return
        seq = int(row["sequence"])  # type: ignore[arg-type]
        if seq != self.expected:
            self.broken = ChainBreak(
                chain=self.chain, sequence=self.expected, problem=f"missing; next is {seq}"
            )
            return
        try:
            event = AuditEvent.model_validate(row, strict=False)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            self.broken = ChainBreak(
                chain=self.chain,
                sequence=seq,
                problem=f"row is not a valid audit event ({where}: {first['msg']})",
            )
            return
        if event.prev_hash != self.prev:
            self.broken = ChainBreak(chain=self.chain, sequence=seq, problem="prev_hash mismatch")
        elif event.expected_hash() != event.hash:
            self.broken = ChainBreak(chain=self.chain, sequence=seq, problem="content altered")
        else:
            self.prev, self.expected = event.hash, seq + 1


async def count_events(settings: Settings, chain: str | None = None) -> int:
    conn = await connect(settings)
    try:
        await check_ready(conn, settings.postgres_schema)  # not a traceback on a fresh schema
        if chain is None:
            return int(await conn.fetchval("SELECT count(*) FROM audit_log"))
        return int(await conn.fetchval("SELECT count(*) FROM audit_log WHERE chain = $1", chain))
    finally:
        await conn.close()


async def verify(
    settings: Settings,
    *,
    chain: str | None = None,
    progress: Callable[[int], None] | None = None,
    prefetch: int = 5000,
) -> VerifyResult:
    """Check every chain (or one); ``progress`` is called with the rows read so far."""
    result = VerifyResult()
    conn = await connect(settings)
    try:
        await check_ready(conn, settings.postgres_schema)
        where, args = ("WHERE chain = $1", [chain]) if chain is not None else ("", [])
        current: _ChainCheck | None = None
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            cursor = conn.cursor(
                f"SELECT {_COLUMNS} FROM audit_log {where} ORDER BY chain, sequence",
                *args,
                prefetch=prefetch,
            )
            async for row in cursor:
                if current is None or row["chain"] != current.chain:
                    if current is not None and current.broken is not None:
                        result.breaks.append(current.broken)
                    current = _ChainCheck(row["chain"])
                    result.chains += 1
                current.feed(dict(row))
                result.events += 1
                if progress is not None and result.events % prefetch == 0:
                    progress(result.events)
        if current is not None and current.broken is not None:
            result.breaks.append(current.broken)
        if progress is not None:
            progress(result.events)
    except TRANSIENT as exc:
        raise unavailable(settings, exc) from None
    finally:
        await conn.close()
    return result
