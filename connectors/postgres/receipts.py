"""Receipts and bulletins from the sink's tables (``log_leaves``, ``log_heads``, ``ballots``).

A receipt (native/SPEC.md §14.4) is built (:func:`models.log.receipt_from_log`)
from the latest signed head the sink stored and the leaves up to its size; the
root of those leaves must be the signed one, else the tables disagree with the
workers' log and the receipt is refused (:class:`LogMismatch`), which is itself
the alarm.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from models.log import LogGap, Receipt, SignedHead, receipt_from_log
from models.log import LogMismatch as LogMismatchError
from models.votes import VoteCast
from streams.errors import RingtallyError

__all__ = [
    "BulletinSource",
    "LogMismatch",
    "NotInLog",
    "bulletin_source",
    "build_receipt",
    "load_head",
    "load_leaves",
]


class NotInLog(RingtallyError):
    """No signed head covers the vote yet (or the vote is not in any log)."""


class AmbiguousVote(NotInLog):
    """Several different refused votes carry one vote id: only the voter knows which is
    theirs (its digest)."""


class LogMismatch(RingtallyError):
    """The stored leaves do not give the signed root."""


async def load_head(conn: Any, submission_id: str) -> SignedHead | None:
    row = await conn.fetchrow(
        "SELECT submission_id, tree_size, root_hash, log_key, batch_size, batch_index, "
        "batch_path, signature, closed_ms FROM log_heads WHERE submission_id = $1",
        submission_id,
    )
    return None if row is None else SignedHead(**dict(row))


async def load_leaves(conn: Any, submission_id: str, size: int) -> list[Any]:
    """The stored leaf rows ``[0, size)`` of a submission's log, by index."""
    return list(
        await conn.fetch(
            "SELECT leaf_index, kind, vote_digest, vote_id, source_partition, source_offset, "
            "reason FROM log_leaves WHERE submission_id = $1 AND leaf_index < $2 "
            "ORDER BY leaf_index",
            submission_id,
            size,
        )
    )


async def build_receipt(
    conn: Any,
    vote: str,
    *,
    since: Receipt | None = None,
    load_vote: Callable[[int, int], VoteCast | None] | None = None,
) -> Receipt:
    """The receipt of ``vote`` (a vote id, the digest of the vote sent, or the key image
    of a counted vote) under the
    latest stored head: of its ``ballot`` leaf, or of its ``retraction`` leaf when the vote
    was counted and then withdrawn, or, never counted, of its latest ``rejection`` leaf
    (a refused well-formed vote; the receipt carries the reason); with ``since``, also
    the consistency proof from its head. ``load_vote(partition, offset)`` reads the
    VoteCast at its votes-topic position: the receipt carries it (what ties the leaf to
    the vote); without it, or when the vote is gone from the topic, the receipt proves
    only the digest."""
    columns = (
        "submission_id, leaf_index, kind, vote_digest, source_partition, source_offset, vote_id"
    )
    leaf = None
    try:
        vote_id = uuid.UUID(vote)
    except ValueError:
        # a vote digest (the leaf of exactly the vote sent), else a counted key image
        leaf = await conn.fetchrow(
            f"SELECT {columns} FROM log_leaves WHERE vote_digest = $1 "  # noqa: S608 - constant
            "AND kind IN ('ballot', 'rejection') ORDER BY kind = 'ballot' DESC LIMIT 1",
            vote.lower(),
        )
        if leaf is not None:
            vote_id = leaf["vote_id"]
        else:
            found = await conn.fetchval("SELECT vote_id FROM ballots WHERE key_image = $1", vote)
            if found is None:
                raise NotInLog(f"no counted vote with key image or vote digest {vote}") from None
            vote_id = found
    if leaf is None:
        # Its ballot leaf if counted (a token_spent refusal shares the vote id of the vote
        # that spent the tag, which wins here); else its refusal. A vote id is its slot
        # tag's, so anyone who can write the votes topic can send altered copies of a
        # refused vote under it: with two different refused votes, only the digest of
        # the vote sent tells which leaf is the voter's.
        leaves = await conn.fetch(
            f"SELECT {columns} FROM log_leaves WHERE vote_id = $1 "  # noqa: S608 - constant
            "AND kind IN ('ballot', 'rejection') ORDER BY kind = 'ballot' DESC, leaf_index DESC",
            vote_id,
        )
        leaf = leaves[0] if leaves else None
        digests = {r["vote_digest"] for r in leaves}
        if leaf is not None and leaf["kind"] != "ballot" and len(digests) > 1:
            raise AmbiguousVote(
                f"vote {vote_id} has {len(digests)} different refused votes in the logs "
                "(copies altered by a producer); ask for yours by its digest: "
                "ringtally receipt show <vote digest> (the SDK's vote_digest of the vote sent)"
            )
    if leaf is None:
        raise NotInLog(
            f"vote {vote_id} has no leaf in any log (not decided yet, not stored yet, or "
            "refused before reaching a log: malformed, unknown or closed submission)"
        )
    submission_id = leaf["submission_id"]
    head = await load_head(conn, submission_id)
    if head is None or head.tree_size <= leaf["leaf_index"]:
        raise NotInLog(
            f"vote {vote_id} is leaf {leaf['leaf_index']} of {submission_id}, but no signed "
            "head covers it yet; retry in a moment"
        )
    rows = await load_leaves(conn, submission_id, head.tree_size)
    cast = None
    if load_vote is not None:
        cast = load_vote(leaf["source_partition"], leaf["source_offset"])
    try:
        return receipt_from_log(
            head,
            (
                (r["leaf_index"], r["kind"], bytes.fromhex(r["vote_digest"]), r["reason"])
                for r in rows
            ),
            vote_id=vote_id,
            vote_digest=bytes.fromhex(leaf["vote_digest"]),
            since=since,
            vote=cast,
        )
    except LogGap as exc:
        raise NotInLog(f"log of {submission_id}: {exc}; the sink may be behind, retry") from None
    except LogMismatchError as exc:
        raise LogMismatch(f"log of {submission_id}: {exc}") from None
    except LookupError as exc:
        raise NotInLog(str(exc)) from None
    except ValueError as exc:  # the votes topic holds another vote at the leaf's position
        raise LogMismatch(f"log of {submission_id}: {exc}") from None


@dataclass
class BulletinSource:
    """What a bulletin is made of, from the tables: the head, the rules version, and each
    leaf (index, kind, vote id, the votes-topic position of that vote)."""

    head: SignedHead
    rules_version: str
    leaves: list[tuple[int, str, uuid.UUID, int, int]]
    #: The reason code of each ``rejection`` leaf, by index.
    reasons: dict[int, str] = field(default_factory=dict)


async def bulletin_source(conn: Any, submission_id: str) -> BulletinSource:
    """The latest stored head of ``submission_id`` and its leaves ``[0, size)``."""
    head = await load_head(conn, submission_id)
    if head is None:
        raise NotInLog(f"submission {submission_id} has no signed head stored")
    rules = await conn.fetchval(
        "SELECT rules_version FROM tallies WHERE submission_id = $1", submission_id
    )
    rows = await load_leaves(conn, submission_id, head.tree_size)
    if len(rows) < head.tree_size:
        raise NotInLog(
            f"log of {submission_id}: {len(rows)} leaves stored, the head has "
            f"{head.tree_size}; the sink may be behind, retry"
        )
    positions = {
        r["vote_id"]: (r["source_partition"], r["source_offset"])
        for r in rows
        if r["kind"] == "ballot"
    }
    leaves, reasons = [], {}
    for r in rows:
        if r["kind"] == "rejection":  # the refused vote's own position
            position = (r["source_partition"], r["source_offset"])
            leaves.append((r["leaf_index"], r["kind"], r["vote_id"], *position))
            reasons[r["leaf_index"]] = r["reason"]
            continue
        if r["vote_id"] not in positions:  # a retraction of a vote counted before the log
            raise NotInLog(f"log of {submission_id}: leaf {r['leaf_index']} has no vote stored")
        leaves.append((r["leaf_index"], r["kind"], r["vote_id"], *positions[r["vote_id"]]))
    return BulletinSource(head, rules, leaves, reasons)
