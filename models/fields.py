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
    "Base64Signature",
    "CredentialHash",
    "IssuerSignature",
    "Epoch",
    "HexDigest",
    "HexPoint",
    "Identifier",
    "Offset",
    "Partition",
    "VoteType",
    "decode_signature",
]

#: Hard cap on ring members a message may carry (the crypto core's default cap).
MAX_RING_MEMBERS = 1024
#: Base64 length of the largest signature: batchable, 1,024 members (1 + 32 + 32 + 96·n bytes).
MAX_SIGNATURE_B64 = 4 * -(-(1 + 32 + 32 + 96 * MAX_RING_MEMBERS) // 3)
#: Base64 length of the largest issuer signature: a ring of one member, batchable (161 bytes).
MAX_ISSUER_SIGNATURE_B64 = 4 * -(-(1 + 32 + 32 + 96) // 3)
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
#: A credential's hash: 32 bytes as lowercase hex.
CredentialHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
#: A ristretto255 point encoding (public key, key image) as lowercase hex.
HexPoint = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
#: A SHA-256 digest as lowercase hex.
HexDigest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Epoch = Annotated[int, Field(ge=0, le=2**32 - 1)]
Partition = Annotated[int, Field(ge=0, le=2**31 - 1)]
Offset = Annotated[int, Field(ge=0, le=2**63 - 1)]


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


#: A ringcrypto signature (compact or batchable), base64.
Base64Signature = Annotated[
    str, Field(min_length=4, max_length=MAX_SIGNATURE_B64), AfterValidator(_check_signature)
]

#: The issuer's ringcrypto signature over a ring of one key (compact or batchable), base64.
IssuerSignature = Annotated[
    str,
    Field(
        min_length=4,
        max_length=MAX_ISSUER_SIGNATURE_B64,
        description="base64 of a ringcrypto signature by the issuer key (a ring of one member)",
    ),
    AfterValidator(_check_signature),
]
