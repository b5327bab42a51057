"""The canonical signed message of a vote.

Signer and verifier both call :func:`vote_signing_bytes`; the verifier never
trusts a message supplied by the client (DESIGN invariant 3). Layout, all
integers big-endian::

    lp(b"ringtally/vote/v1")   protocol version, as a domain tag
    lp(vote_id.bytes)          16 bytes
    lp(utf8(submission_id))
    lp(utf8(ring_id))
    lp(utf8(vote_type))
    lp(utf8(token_id))
    u64(epoch)

where ``lp(x) = u32(len(x)) || x``. Length prefixes make the encoding
injective: no two different votes share signing bytes.
"""

from __future__ import annotations

from uuid import UUID

__all__ = ["VOTE_PROTOCOL", "length_prefixed", "vote_signing_bytes"]

VOTE_PROTOCOL = b"ringtally/vote/v1"


def length_prefixed(data: bytes) -> bytes:
    """``u32be(len(data)) || data``."""
    return len(data).to_bytes(4, "big") + data


def vote_signing_bytes(
    *,
    vote_id: UUID,
    submission_id: str,
    ring_id: str,
    vote_type: str,
    token_id: str,
    epoch: int,
) -> bytes:
    """The bytes a vote's ring signature signs (see the module docstring)."""
    parts = (
        VOTE_PROTOCOL,
        vote_id.bytes,
        submission_id.encode("utf-8"),
        ring_id.encode("utf-8"),
        vote_type.encode("utf-8"),
        token_id.encode("utf-8"),
    )
    return b"".join(length_prefixed(p) for p in parts) + epoch.to_bytes(8, "big")
