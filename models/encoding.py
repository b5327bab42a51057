"""The canonical signed messages: a vote's, and the issuer's token lifecycle events.

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

Issuer messages (finding F5: token lifecycle events must come from the
issuer) are signed with the issuer key as a ringcrypto signature over a ring
of one member, under the context :data:`ISSUER_CONTEXT`. Their signing bytes
start with their own protocol tag and a type tag, so a signature over one
kind of message is never valid for another (nor for a vote: votes are signed
under the submission id as context, and with another protocol tag)::

    token_issued:        lp(b"ringtally/issuer/v1") || lp(b"token_issued")
                         || lp(utf8(token_id)) || lp(credential_hash, 32 bytes)
                         || u64(epoch) || i64(issued_at, microseconds since 1970 UTC)
    token_revoked:       lp(b"ringtally/issuer/v1") || lp(b"token_revoked")
                         || lp(utf8(token_id)) || lp(utf8(reason))
    credential_revoked:  lp(b"ringtally/issuer/v1") || lp(b"credential_revoked")
                         || lp(credential_hash, 32 bytes) || lp(utf8(reason))

``issued_at`` is the instant, not its text: ``...Z`` and ``...+00:00`` sign
the same bytes (the models require a timezone, so the instant is defined).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

__all__ = [
    "ISSUER_CONTEXT",
    "ISSUER_PROTOCOL",
    "VOTE_PROTOCOL",
    "credential_revoked_signing_bytes",
    "length_prefixed",
    "token_issued_signing_bytes",
    "token_revoked_signing_bytes",
    "vote_signing_bytes",
]

VOTE_PROTOCOL = b"ringtally/vote/v1"
ISSUER_PROTOCOL = b"ringtally/issuer/v1"
#: The ringcrypto context of every issuer signature (a vote's context is its submission id).
ISSUER_CONTEXT = b"ringtally/v1/issuer"
_EPOCH_START = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


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


def token_issued_signing_bytes(
    *, token_id: str, credential_hash: str, epoch: int, issued_at: datetime
) -> bytes:
    """The bytes the issuer signs for a TokenIssued (see the module docstring)."""
    if issued_at.utcoffset() is None:
        raise ValueError("issued_at must carry a timezone")
    micros = (issued_at - _EPOCH_START) // _MICROSECOND
    return (
        _issuer_head(b"token_issued")
        + length_prefixed(token_id.encode("utf-8"))
        + length_prefixed(bytes.fromhex(credential_hash))
        + epoch.to_bytes(8, "big")
        + micros.to_bytes(8, "big", signed=True)
    )


def token_revoked_signing_bytes(*, token_id: str, reason: str) -> bytes:
    """The bytes the issuer signs for a TokenRevoked of one token."""
    return (
        _issuer_head(b"token_revoked")
        + length_prefixed(token_id.encode("utf-8"))
        + length_prefixed(reason.encode("utf-8"))
    )


def credential_revoked_signing_bytes(*, credential_hash: str, reason: str) -> bytes:
    """The bytes the issuer signs for a CredentialRevoked."""
    return (
        _issuer_head(b"credential_revoked")
        + length_prefixed(bytes.fromhex(credential_hash))
        + length_prefixed(reason.encode("utf-8"))
    )


def _issuer_head(message_type: bytes) -> bytes:
    return length_prefixed(ISSUER_PROTOCOL) + length_prefixed(message_type)
