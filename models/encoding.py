"""The canonical signed messages: a vote's, and the registrar's control records.

Signer and verifier both call these functions; the verifier never trusts a
message supplied by the client (DESIGN invariant 3). All integers are
big-endian and ``lp(x) = u32(len(x)) || x``; length prefixes make every
encoding injective. The same bytes are specified in native/SPEC.md
§"Vote message" and §"Control messages".

A vote (protocol v2)::

    lp(b"ringtally/vote/v2")   protocol version, as a domain tag
    lp(vote_id.bytes)          16 bytes
    lp(utf8(submission_id))
    lp(utf8(ring_id))
    u32(ring_version)
    lp(utf8(vote_type))
    lp(utf8(token_id))         hex of the slot tag T
    u64(epoch)
    u32(slot)

The registrar signs control records (rings, submissions) with a ringcrypto
signature over a ring of ONE member, its own key, under the context
:data:`REGISTRAR_CONTEXT`; a signature over one kind of record is never valid
for another, nor for a vote (another context and protocol tag)::

    ring:        lp(b"ringtally/registrar/v2") || lp(b"ring") || lp(utf8(ring_id))
                 || u32(version) || lp(utf8(genre)) || u64(epoch) || u32(n)
                 || P_1 || ... || P_n  (32 bytes each, in message order)
                 || u32(votes_per_epoch) || u8(active) || i64(valid_from, µs since 1970 UTC)
    submission:  lp(b"ringtally/registrar/v2") || lp(b"submission")
                 || lp(utf8(submission_id)) || lp(utf8(genre)) || u64(epoch)
    closing:     lp(b"ringtally/registrar/v2") || lp(b"submission_closed")
                 || lp(utf8(submission_id))

``valid_from`` is the instant, not its text: ``...Z`` and ``...+00:00`` sign
the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

__all__ = [
    "REGISTRAR_CONTEXT",
    "REGISTRAR_PROTOCOL",
    "VOTE_PROTOCOL",
    "epoch_bytes",
    "length_prefixed",
    "micros_since_epoch",
    "ring_signing_bytes",
    "submission_closed_signing_bytes",
    "submission_signing_bytes",
    "vote_signing_bytes",
]

VOTE_PROTOCOL = b"ringtally/vote/v2"
REGISTRAR_PROTOCOL = b"ringtally/registrar/v2"
#: The ringcrypto context of every registrar signature (a vote's context is its submission id).
REGISTRAR_CONTEXT = b"ringtally/v2/registrar"
_EPOCH_START = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def length_prefixed(data: bytes) -> bytes:
    """``u32be(len(data)) || data``."""
    return len(data).to_bytes(4, "big") + data


def epoch_bytes(epoch: int) -> bytes:
    """The epoch as the slot-tag input (native/SPEC.md: ``u64be(epoch)``)."""
    return epoch.to_bytes(8, "big")


def micros_since_epoch(instant: datetime) -> int:
    """Microseconds since 1970-01-01 UTC; the instant must carry a timezone."""
    if instant.utcoffset() is None:
        raise ValueError("the instant must carry a timezone")
    return (instant - _EPOCH_START) // _MICROSECOND


def vote_signing_bytes(
    *,
    vote_id: UUID,
    submission_id: str,
    ring_id: str,
    ring_version: int,
    vote_type: str,
    token_id: str,
    epoch: int,
    slot: int,
) -> bytes:
    """The bytes a vote's signature signs (see the module docstring)."""
    return (
        length_prefixed(VOTE_PROTOCOL)
        + length_prefixed(vote_id.bytes)
        + length_prefixed(submission_id.encode("utf-8"))
        + length_prefixed(ring_id.encode("utf-8"))
        + ring_version.to_bytes(4, "big")
        + length_prefixed(vote_type.encode("utf-8"))
        + length_prefixed(token_id.encode("utf-8"))
        + epoch.to_bytes(8, "big")
        + slot.to_bytes(4, "big")
    )


def ring_signing_bytes(
    *,
    ring_id: str,
    version: int,
    genre: str,
    epoch: int,
    public_keys: Sequence[bytes],
    votes_per_epoch: int,
    active: bool,
    valid_from: datetime,
) -> bytes:
    """The bytes the registrar signs for a ring version."""
    return (
        _registrar_head(b"ring")
        + length_prefixed(ring_id.encode("utf-8"))
        + version.to_bytes(4, "big")
        + length_prefixed(genre.encode("utf-8"))
        + epoch.to_bytes(8, "big")
        + len(public_keys).to_bytes(4, "big")
        + b"".join(public_keys)
        + votes_per_epoch.to_bytes(4, "big")
        + (b"\x01" if active else b"\x00")
        + micros_since_epoch(valid_from).to_bytes(8, "big", signed=True)
    )


def submission_signing_bytes(*, submission_id: str, genre: str, epoch: int) -> bytes:
    """The bytes the registrar signs for a submission."""
    return (
        _registrar_head(b"submission")
        + length_prefixed(submission_id.encode("utf-8"))
        + length_prefixed(genre.encode("utf-8"))
        + epoch.to_bytes(8, "big")
    )


def submission_closed_signing_bytes(*, submission_id: str) -> bytes:
    """The bytes the registrar signs to close a submission."""
    return _registrar_head(b"submission_closed") + length_prefixed(submission_id.encode("utf-8"))


def _registrar_head(record_type: bytes) -> bytes:
    return length_prefixed(REGISTRAR_PROTOCOL) + length_prefixed(record_type)
