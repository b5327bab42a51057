"""Bugs the hostile-input suite and the fuzzers found; fixed, and kept as regression tests.

F2 (fuzz/fuzz_tokens.py, fuzz/fuzz_verifier.py, first minute of fuzzing):
``agents/tokens.py`` ``TokenState.to_dict`` (line 59) drops every None field,
but ``TokenState.from_dict`` (line 63) passes the dict to the dataclass whose
``credential_hash`` and ``epoch`` have no default. A token revoked before any
issuance (``TokenState.revoke(None, ...)``, a case ``TokenState.issue``
explicitly handles: "Revoked before its issuance arrived") is stored as
``{"phase": "revoked", "changed_offset": .., "revoked_reason": ..}``; the next
record on that token id makes ``VoteVerifier._load`` (agents/verify.py line
307) raise TypeError, the verify agent dies, and ``stop_worker_on_bug`` exits
the worker with 70. The record is redelivered to the restarted worker, which
dies again: anyone who can write to the votes topic stops a partition for
good with two small messages (a TokenRevoked for an unknown token id, then
anything on that key).

Fixed: ``credential_hash`` and ``epoch`` default to None, so the stored form
round-trips.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

import pytest

from agents.records import SourceRecord
from agents.tokens import TokenState
from agents.verify import VoteVerifier
from streams.settings import Settings
from tests.fixtures.issuer import ISSUER, issuer_keys

SETTINGS = Settings(topic_prefix="unit", partitions=1)
VOTES = SETTINGS.topic("votes")
F2 = (
    "F2: TokenState.to_dict dropped None credential_hash/epoch that from_dict required "
    "(agents/tokens.py:59-63)"
)


def test_a_token_revoked_before_its_issuance_survives_the_table_round_trip():
    revoked = TokenState.revoke(None, reason="leaked", offset=5).state
    assert revoked is not None
    assert TokenState.from_dict(revoked.to_dict()) == revoked


class _Out:
    def __init__(self) -> None:
        self.rejections: list = []
        self.accepted_votes: list = []
        self.index: list = []

    async def rejection(self, key, r):  # noqa: ANN001
        self.rejections.append(r)

    async def accepted(self, v):  # noqa: ANN001
        self.accepted_votes.append(v)

    async def credential_token(self, e):  # noqa: ANN001
        self.index.append(e)


def test_issuance_after_an_early_revocation_keeps_the_token_revoked():
    """The documented path "revoked before its issuance arrived: it stays revoked" (crashed)."""
    from agents.control import ControlState

    tokens: dict = {}
    out = _Out()
    verifier = VoteVerifier(
        control=ControlState(SETTINGS),
        tokens=tokens,
        outputs=out,
        verify_batch=lambda items: [None] * len(items),
        verify_one=lambda *a: b"",
        issuer=issuer_keys(),
    )
    revoke = ISSUER.token_revoked("t1", "leaked").to_json()
    issue = ISSUER.token_issued(
        "t1", credential_hash="ab" * 32, epoch=1, issued_at=datetime(2026, 1, 1, tzinfo=UTC)
    ).to_json()
    asyncio.run(verifier.process([SourceRecord(VOTES, 0, 0, b"t1", revoke)]))
    asyncio.run(
        verifier.process([SourceRecord(VOTES, 0, 1, b"t1", issue)])
    )  # a later batch: loads the table
    assert tokens[b"t1"]["phase"] == "revoked"
    assert out.rejections == []


@pytest.mark.integration
def test_a_worker_survives_a_revocation_for_an_unknown_token_followed_by_a_vote(pipeline, tmp_path):
    """Two hostile messages on one key: the worker must reject the second, not die."""
    from tests.fixtures.pipeline import Outputs
    from tests.test_pipeline import World

    settings, worker = pipeline
    world = World(settings)
    sub = world.submission()
    token = f"early-{uuid.uuid4().hex[:8]}"
    revoked = world.admin.issuer.token_revoked(token, "early")  # the issuer, before issuing
    world.client.publish_raw(token.encode(), revoked.to_json())
    vote = world.vote(0, sub, token)
    world.publish(vote)
    outputs = Outputs(settings)
    try:
        deadline = time.monotonic() + 60  # a group join, then the two records
        while (
            time.monotonic() < deadline
            and worker.alive()
            and not outputs.outcome(str(vote.vote_id))
        ):
            outputs.poll(0.5)
        assert worker.alive(), f"worker exited with {worker.proc.returncode}:\n{worker.tail(8)}"
        found = outputs.outcome(str(vote.vote_id))
        assert [(k, o["reason"]) for k, o in found] == [("rejection", "token_revoked")], json.dumps(
            found
        )
    finally:
        outputs.close()
