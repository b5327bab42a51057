"""Constrained field types shared by the message models.

Every string on the wire has a cap, so a hostile producer cannot make a worker
hold megabytes per field; the caps are the model's, the ring-size cap that the
verifier enforces is a setting (``RINGTALLY_MAX_RING_SIZE``).
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from typing import Annotated, Any

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
    "OpenEnum",
    "Partition",
    "RegistrarSignature",
    "Slot",
    "UnknownCode",
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


class UnknownCode(str):
    """A value of an open enumeration (a rejection reason, a decision, an audit kind) that
    this release does not know: a later release added it. It keeps the string; like an
    enum member it has ``.value`` (and ``.meaning`` says it is unknown), so a reader
    handles it as "something new" instead of dropping the record."""

    __slots__ = ()

    @property
    def value(self) -> str:
        return str(self)

    @property
    def meaning(self) -> str:
        return "a code added by a later release (unknown to this one)"

    def __repr__(self) -> str:
        return f"UnknownCode({str(self)!r})"


#: What a later release's code may look like: a bounded, plain token.
_UNKNOWN_CODE = r"^[A-Za-z0-9_.-]{1,64}$"


class OpenEnum:
    """``Annotated[E, OpenEnum(E)]``: a field of an OUTPUT model whose enumeration may grow.

    Known values parse to ``E``'s members; any other plain token to :class:`UnknownCode`
    (its schema: ``anyOf: [E, string]``), so a consumer on an older release keeps the
    record. Inputs (votes, control records) never use it: they stay closed. ringtally
    itself emits only known values (``OutputModel.to_json`` refuses an UnknownCode).
    """

    def __init__(self, enum: type[StrEnum]) -> None:
        self.enum = enum

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        enum = self.enum

        def known(value: Any) -> Any:
            if isinstance(value, str) and not isinstance(value, enum | UnknownCode):
                try:
                    return enum(value)
                except ValueError:
                    return value
            return value

        unknown = core_schema.no_info_after_validator_function(
            UnknownCode,
            core_schema.str_schema(pattern=_UNKNOWN_CODE, strict=True),
            serialization=core_schema.to_string_ser_schema(),
        )
        return core_schema.no_info_before_validator_function(
            known,
            core_schema.union_schema([handler(enum), unknown], mode="left_to_right"),
        )

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        out = dict(handler(schema))
        branches = out.get("anyOf", [])
        if len(branches) == 2:
            branches[1]["description"] = (
                "any other value: one added by a later release (the list is open); a "
                "reader keeps the record and treats the value as unknown"
            )
        return out
