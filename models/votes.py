"""Messages on the votes topic (key: token_id, the vote's slot tag in hex).

Only votes: protocol v2 has no issued tokens (docs/protocol.md). A vote's
token id is its slot tag ``T = x·H_slot(epoch, slot)``, so everything that
decides whether the tag is spent lies in one ordered log: the tag's partition.
"""

from __future__ import annotations

import base64
from typing import Literal
from uuid import UUID

from pydantic import Field, TypeAdapter

from .base import WireModel
from .encoding import epoch_bytes, vote_signing_bytes
from .fields import Base64Signature, Epoch, HexPoint, Identifier, Slot, VoteType

__all__ = ["VoteCast", "VotesMessage", "parse_votes_message"]


class VoteCast(WireModel):
    """A reviewer's anonymous vote (votes topic), signed for one version of the ring of its
    submission's genre.

    Rules a producer must meet beyond the types; a vote that breaks one is
    rejected with the reason in brackets:

    - ``token_id`` is the slot tag ``T = x*H_slot(epoch, slot)`` of the signer's
      ring key ``x``, lowercase hex, and the tag the signature carries [malformed];
    - ``vote_id`` is ``uuid5(d24b4bfc-31aa-5c5e-827f-955cf2a17a90, token_id)``
      (RFC 9562 name-based UUID, SHA-1; the name is the token_id text) [malformed];
    - the record key is the token_id's ASCII bytes [malformed], and the record
      sits on the partition Kafka's Java default partitioner (murmur2 of the key,
      positive, modulo the partition count) gives that key [wrong_partition];
    - ``signature`` is a ringtally-v2 vote signature (native/SPEC.md, section 7)
      by a member of the named ring version, with context utf8(submission_id),
      epoch u64(epoch), slot ``slot``, over the message (SPEC section 13.1;
      integers big-endian, strings UTF-8, ``lp(x) = u32(len(x)) || x``)
      ``lp("ringtally/vote/v2") || lp(vote_id as 16 bytes) || lp(submission_id)
      || lp(ring_id) || u32(ring_version) || lp(vote_type) || lp(token_id)
      || u64(epoch) || u32(slot)`` [bad_signature];
    - ``submission_id`` names a registered submission [unknown_submission], and
      ``ring_id`` with ``ring_version`` a registered ring version [unknown_ring];
    - ``slot`` is below the ring version's ``votes_per_epoch`` [slot_out_of_range];
      the vote's, ring's and submission's epochs agree [epoch_mismatch]; the ring
      version in force at the vote's broker timestamp is active [inactive_ring],
      the named version is the one in force then [ring_not_in_force], and its
      genre is the submission's [ring_genre_mismatch]; the submission was not
      closed (a registrar-signed SubmissionClosed) before the vote's broker
      timestamp [submission_closed];
    - the JSON value is at most 262,144 bytes, has no field beyond these, and
      each value has its exact JSON type (no "1" for 1) [malformed];
    - a vote is published once: the same bytes again at another position (a
      producer's retry that wrote twice, or anyone's replay) are refused, the
      first copy's outcome stands [duplicate_record].
    """

    type: Literal["vote_cast"] = "vote_cast"
    vote_id: UUID = Field(
        description="uuid5(d24b4bfc-31aa-5c5e-827f-955cf2a17a90, token_id): the name is the "
        "token_id's lowercase hex text (as Python's uuid.uuid5); any other id is malformed"
    )
    submission_id: Identifier
    ring_id: Identifier
    ring_version: int = Field(ge=1, le=2**32 - 1, description="the ring version signed against")
    vote_type: VoteType
    epoch: Epoch
    slot: Slot = Field(description="0 <= slot < the ring version's votes_per_epoch")
    token_id: HexPoint = Field(
        description="the slot tag x*H_slot(epoch, slot), lowercase hex; also the record key"
    )
    signature: Base64Signature = Field(
        description="base64 of a ringcrypto vote signature (native/SPEC.md)"
    )

    def signing_bytes(self) -> bytes:
        """The canonical message the signature covers (every field but the signature)."""
        return vote_signing_bytes(
            vote_id=self.vote_id,
            submission_id=self.submission_id,
            ring_id=self.ring_id,
            ring_version=self.ring_version,
            vote_type=self.vote_type.value,
            token_id=self.token_id,
            epoch=self.epoch,
            slot=self.slot,
        )

    def context(self) -> bytes:
        """The key-image context: the submission id, so one key image per (reviewer, submission)."""
        return self.submission_id.encode("utf-8")

    def epoch_bytes(self) -> bytes:
        """The epoch as the slot tag's input."""
        return epoch_bytes(self.epoch)

    def signature_bytes(self) -> bytes:
        """The decoded signature. Parsing checked it is canonical base64 (the model is
        frozen), so it is decoded here without checking again: half the cost."""
        return base64.b64decode(self.signature)


#: The votes topic carries one kind of message; the name stays for readers of v1 code.
VotesMessage = VoteCast
_votes_adapter: TypeAdapter[VoteCast] = TypeAdapter(VoteCast)


def parse_votes_message(raw: bytes) -> VoteCast:
    """Parse one votes-topic value; raises ``pydantic.ValidationError`` when malformed."""
    return _votes_adapter.validate_json(raw)
