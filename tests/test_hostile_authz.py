"""F5 (design): token lifecycle events on the votes topic carry no proof of who sent them.

DESIGN.md puts TokenIssued and TokenRevoked on the votes topic (one ordered log
per token). Nothing in ``TokenIssued`` / ``TokenRevoked`` (models/votes.py) or
in ``VoteVerifier._apply`` (agents/verify.py) checks that the issuer sent them,
and Kafka ACLs cannot tell them apart from votes (same topic). So any producer
allowed to publish votes can

* mint tokens for itself: a ring member publishes ``TokenIssued`` for a fresh
  token id and then votes with it, beyond the per-credential per-epoch token
  budget (one vote per submission still holds: key images);
* revoke anyone's unspent token: a ``TokenRevoked`` for a token id it has seen
  or guessed makes its owner's vote ``token_revoked``.

Both tests describe the intended behaviour (an issuance or revocation not
authorised by the issuer changes nothing) and are strict xfails until token
events are authenticated (e.g. signed by an issuer key the workers know, or
moved to a topic only the issuer may write, keeping per-token order some other way).
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime

import pytest

import ringcrypto
from agents.control import ControlState
from agents.records import SourceRecord
from agents.verify import VoteVerifier
from connectors.sdk.vote import build_vote
from models import Ring, Submission, TokenIssued, TokenRevoked
from streams.settings import Settings

SETTINGS = Settings(topic_prefix="authz", partitions=1)
VOTES = SETTINGS.topic("votes")
KEYS = [ringcrypto.SecretKey.from_seed(hashlib.sha256(b"authz%d" % i).digest()) for i in range(3)]
RING = ringcrypto.Ring([k.public_key for k in KEYS])
F5 = (
    "F5 (design): TokenIssued/TokenRevoked on the votes topic are not authenticated; any producer "
    "allowed to vote can mint or revoke tokens (models/votes.py, agents/verify.py _apply)"
)


class _Out:
    def __init__(self) -> None:
        self.rejections: list = []
        self.accepted_votes: list = []

    async def rejection(self, key, r):  # noqa: ANN001
        self.rejections.append(r)

    async def accepted(self, v):  # noqa: ANN001
        self.accepted_votes.append(v)

    async def credential_token(self, e):  # noqa: ANN001
        pass


def _verifier() -> tuple[VoteVerifier, _Out]:
    control = ControlState(SETTINGS)
    control.apply(
        SETTINGS.topic("rings"),
        b"r1",
        Ring(
            ring_id="r1", genre="g", epoch=1, public_keys=[pk.hex() for pk in RING.public_keys]
        ).to_json(),
    )
    control.apply(
        SETTINGS.topic("submissions"),
        b"s1",
        Submission(submission_id="s1", genre="g", epoch=1).to_json(),
    )
    out = _Out()
    return VoteVerifier(
        control=control,
        tokens={},
        outputs=out,
        verify_batch=ringcrypto.verify_batch,
        verify_one=ringcrypto.verify,
    ), out


def _issue(token: str) -> bytes:
    return TokenIssued(
        token_id=token,
        credential_hash="cd" * 32,
        epoch=1,
        issued_at=datetime(2026, 1, 1, tzinfo=UTC),
    ).to_json()


def _vote(token: str) -> bytes:
    return build_vote(
        KEYS[1],
        RING,
        submission_id="s1",
        ring_id="r1",
        vote_type="approve",
        token_id=token,
        epoch=1,
        batchable=True,
    ).to_json()


@pytest.mark.xfail(strict=True, reason=F5)
def test_a_voter_cannot_mint_its_own_token():
    verifier, out = _verifier()
    records = [
        SourceRecord(
            VOTES, 0, 0, b"self-minted", _issue("self-minted")
        ),  # sent by the voter, not the issuer
        SourceRecord(VOTES, 0, 1, b"self-minted", _vote("self-minted")),
    ]
    asyncio.run(verifier.process(records))
    assert out.accepted_votes == [], "a self-issued token was spent by a valid vote"


@pytest.mark.xfail(strict=True, reason=F5)
def test_a_stranger_cannot_revoke_someone_elses_token():
    verifier, out = _verifier()
    asyncio.run(
        verifier.process([SourceRecord(VOTES, 0, 0, b"t1", _issue("t1"))])
    )  # the real issuer
    asyncio.run(
        verifier.process(
            [
                SourceRecord(
                    VOTES, 0, 1, b"t1", TokenRevoked(token_id="t1", reason="griefing").to_json()
                ),  # a stranger
                SourceRecord(VOTES, 0, 2, b"t1", _vote("t1")),  # the owner votes
            ]
        )
    )
    assert [r.reason for r in out.rejections] == [] and len(out.accepted_votes) == 1
