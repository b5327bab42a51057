"""Constrained field types shared by the message models.

Every string on the wire has a cap, so a hostile producer cannot make a worker
hold megabytes per field; the caps are the model's, the ring-size cap that the
verifier enforces is a setting (``RINGTALLY_MAX_RING_SIZE``).
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MAX_RING_MEMBERS",
    "MAX_SIGNATURE_B64",
    "MAX_VOTES_PER_EPOCH",
    "Base64Signature",
    "Epoch",
    "HexDigest",
    "HexPoint",
    "Identifier",
    "Offset",
    "Partition",
    "RegistrarSignature",
    "Slot",
    "VoteType",
    "decode_signature",
]

#: Hard cap on ring members a message may carry (the crypto core's default cap).
MAX_RING_MEMBERS = 1024
#: Largest vote signature a message may carry: batchable, 1,024 members. Bounded from above
#: (tag, I, T, c0, the DLEQ's A, A', t, and s, L, R per member; native/SPEC.md has the exact
#: lengths): the crypto core rejects any length but the exact one for the ring.
MAX_SIGNATURE_B64 = 4 * -(-(1 + 32 * 7 + 96 * MAX_RING_MEMBERS) // 3)
#: Base64 length of the largest registrar signature: a ring of one member, batchable (161 bytes).
MAX_REGISTRAR_SIGNATURE_B64 = 4 * -(-(1 + 32 + 32 + 96) // 3)
#: Most votes one ring member may cast in an epoch (a ring version's ``votes_per_epoch``).
MAX_VOTES_PER_EPOCH = 1024
#: A message longer than this is rejected as malformed before it is parsed.
MAX_PAYLOAD_BYTES = 256 * 1024


class VoteType(StrEnum):
    """What a reviewer says about a submission."""

    APPROVE = "approve"
    REJECT = "reject"
    FLAG = "flag"
    ESCALATE = "escalate"


#: Ids chosen by producers (submission, ring, token): printable ASCII, no spaces.
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
#: A ristretto255 point encoding (public key, key image) as lowercase hex.
HexPoint = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
#: A SHA-256 digest as lowercase hex.
HexDigest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Epoch = Annotated[int, Field(ge=0, le=2**32 - 1)]
Partition = Annotated[int, Field(ge=0, le=2**31 - 1)]
Offset = Annotated[int, Field(ge=0, le=2**63 - 1)]
#: A vote's slot in its epoch: ``0 <= slot < votes_per_epoch`` of the ring version it names.
Slot = Annotated[int, Field(ge=0, lt=MAX_VOTES_PER_EPOCH)]


def decode_signature(value: str) -> bytes:
    """Strict base64: standard alphabet, padded, canonical (re-encodes to itself)."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"signature is not valid base64: {exc}") from None
    if base64.b64encode(raw).decode("ascii") != value:
        raise ValueError("signature base64 is not canonical")
    if not raw:
        raise ValueError("signature is empty")
    return raw


def _check_signature(value: str) -> str:
    decode_signature(value)
    return value


#: A ringcrypto vote signature (compact or batchable), base64.
Base64Signature = Annotated[
    str, Field(min_length=4, max_length=MAX_SIGNATURE_B64), AfterValidator(_check_signature)
]

#: The registrar's ringcrypto signature over a ring of one key (compact or batchable), base64.
RegistrarSignature = Annotated[
    str,
    Field(
        min_length=4,
        max_length=MAX_REGISTRAR_SIGNATURE_B64,
        description="base64 of a ringcrypto signature by the registrar key (a ring of one "
        "member) over the record's signing bytes (native/SPEC.md, Control messages)",
    ),
    AfterValidator(_check_signature),
]
