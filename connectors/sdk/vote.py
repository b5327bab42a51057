"""The vote client: build a VoteCast, sign its canonical bytes, publish it keyed by token."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from models.fields import VoteType
from models.internal import vote_id_for_token
from models.votes import VoteCast
from streams.settings import Settings

from .producer import SdkProducer, ensure_topics

__all__ = ["VoteClient", "build_vote"]


def build_vote(
    key: Any,
    ring: Any,
    *,
    submission_id: str,
    ring_id: str,
    vote_type: VoteType | str,
    token_id: str,
    epoch: int,
    batchable: bool = False,
) -> VoteCast:
    """A signed vote. ``key`` is a ``ringcrypto.SecretKey``, ``ring`` a ``ringcrypto.Ring``.

    The vote id is derived from the token (see ``models.internal.vote_id_for_token``).
    """
    import ringcrypto

    unsigned = VoteCast.model_construct(
        vote_id=vote_id_for_token(token_id),
        submission_id=submission_id,
        ring_id=ring_id,
        vote_type=VoteType(vote_type),
        token_id=token_id,
        epoch=epoch,
    )
    signature = ringcrypto.sign(
        key, ring, submission_id.encode("utf-8"), unsigned.signing_bytes(), batchable=batchable
    )
    return VoteCast(
        vote_id=unsigned.vote_id,
        submission_id=submission_id,
        ring_id=ring_id,
        vote_type=VoteType(vote_type),
        token_id=token_id,
        epoch=epoch,
        signature=base64.b64encode(signature).decode("ascii"),
    )


class VoteClient:
    """Holds a reviewer's key; signs and publishes votes (synchronously)."""

    def __init__(self, settings: Settings, key: Any, *, producer: SdkProducer | None = None) -> None:
        self.settings = settings
        self.key = key
        ensure_topics(settings, ["votes"])
        self._producer = producer or SdkProducer(settings)

    def cast(
        self,
        ring: Any,
        *,
        submission_id: str,
        ring_id: str,
        vote_type: VoteType | str,
        token_id: str,
        epoch: int,
        batchable: bool = False,
        flush: bool = True,
    ) -> UUID:
        """Sign and publish one vote; returns its vote id."""
        vote = build_vote(
            self.key, ring, submission_id=submission_id, ring_id=ring_id, vote_type=vote_type,
            token_id=token_id, epoch=epoch, batchable=batchable,
        )
        self.publish(vote, flush=flush)
        return vote.vote_id

    def publish(self, vote: VoteCast, *, flush: bool = True) -> None:
        self.publish_raw(vote.token_id.encode(), vote.to_json(), flush=flush)

    def publish_raw(self, key: bytes, value: bytes, *, flush: bool = True) -> None:
        """Publish bytes as they are (tests and the hostile-input generator use this)."""
        self._producer.send(self.settings.topic("votes"), key, value)
        if flush:
            self._producer.flush()

    def flush(self) -> None:
        self._producer.flush()


def ring_of(public_keys: Sequence[bytes], max_size: int = 1024) -> Any:
    import ringcrypto

    return ringcrypto.Ring(list(public_keys), max_size=max_size)
