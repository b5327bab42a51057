"""The SDK against a real worker: sync and async vote clients, wait_outcome, admin helpers.

One module-scoped worker (``pipeline``); every test registers its own ring,
submission and tokens (unique ids), so tests never see each other's votes.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid

import pytest
from aiokafka.partitioner import murmur2

import ringcrypto
from connectors.sdk import (
    Admin,
    AsyncVoteClient,
    NotFound,
    OutcomeTimeout,
    SdkProducer,
    VoteClient,
    ensure_topics,
    get_ring,
    list_rings,
)
from models import Ballot, Rejection

pytestmark = pytest.mark.integration


class Setup:
    """A ring of ``members`` fresh keys, one submission, helpers for tokens."""

    def __init__(self, settings, members: int = 3) -> None:
        self.settings = settings
        self.admin = Admin(settings)
        tag = uuid.uuid4().hex[:8]
        self.genre, self.epoch = f"genre-{tag}", 4
        self.keys = [ringcrypto.SecretKey.generate() for _ in range(members)]
        self.ring_id = f"ring-{tag}"
        self.admin.register_ring(
            self.ring_id,
            genre=self.genre,
            epoch=self.epoch,
            public_keys=[k.public_key for k in self.keys],
        )
        self.sub = self.submission()

    def submission(self) -> str:
        sub = f"sub-{uuid.uuid4().hex[:10]}"
        self.admin.register_submission(sub, genre=self.genre, epoch=self.epoch)
        return sub

    def tokens(self, n: int) -> list[str]:
        return self.admin.issue_tokens(secrets.token_hex(32), epoch=self.epoch, count=n)


@pytest.fixture
def setup(pipeline) -> Setup:
    return Setup(pipeline[0])


def test_sync_client_waits_for_a_ballot_then_a_duplicate_key_image(setup) -> None:
    first, second = setup.tokens(2)
    with VoteClient(setup.settings, setup.keys[1]) as client:
        vote_id = client.cast(
            setup.ring_id, submission_id=setup.sub, vote_type="approve", token_id=first
        )
        ballot = client.wait_outcome(vote_id, timeout=60)
        assert isinstance(ballot, Ballot)
        assert ballot.vote_id == vote_id
        assert ballot.key_image == setup.keys[1].key_image(setup.sub.encode()).hex()
        again = client.cast_and_wait(
            setup.ring_id, submission_id=setup.sub, vote_type="reject", token_id=second, timeout=60
        )
    assert isinstance(again, Rejection)
    assert again.reason == "duplicate_key_image"


def test_sync_client_compact_signature_resend_and_a_losing_vote_on_a_spent_token(setup) -> None:
    """Messages spending one token share a vote id; each wait gets its own message's outcome."""
    [token] = setup.tokens(1)
    with VoteClient(setup.settings, setup.keys[0], batchable=False) as client:
        vote = client.sign(setup.ring_id, submission_id=setup.sub, vote_type="flag", token_id=token)
        assert len(vote.signature_bytes()) == ringcrypto.signature_length(3, batchable=False)
        first = client.publish(vote)
        ballot = client.wait_outcome(first, timeout=60)
        assert isinstance(ballot, Ballot)
        # The same bytes again (a retry): the worker re-emits the original ballot.
        assert client.wait_outcome(client.publish(vote), timeout=60) == ballot
        # Another vote on the spent token (freshly signed, so other bytes): rejected.
        other = client.cast(
            setup.ring_id, submission_id=setup.sub, vote_type="reject", token_id=token
        )
        assert other == first  # the vote id is the token's
        outcome = client.wait_outcome(other, timeout=60)
    assert isinstance(outcome, Rejection) and outcome.reason == "token_spent"


def test_wait_outcome_refuses_unknown_votes_and_times_out(setup) -> None:
    with VoteClient(setup.settings, setup.keys[0]) as client:
        with pytest.raises(KeyError):
            client.wait_outcome(uuid.uuid4(), timeout=1)
        # A vote on a topic no worker reads (another prefix): published, never decided.
    from tests.fixtures.pipeline import pipeline_settings
    from tests.fixtures.stack import StackInfo

    lonely = pipeline_settings(
        StackInfo(
            setup.settings.kafka_bootstrap,
            setup.settings.postgres_dsn,
            setup.settings.redis_url,
            "external",
        )
    )
    ring = ringcrypto.Ring([k.public_key for k in setup.keys])
    with VoteClient(lonely, setup.keys[0]) as client:
        vote_id = client.cast(
            ring, ring_id="r", epoch=1, submission_id="s", vote_type="approve", token_id="tok-1"
        )
        with pytest.raises(OutcomeTimeout) as info:
            client.wait_outcome(vote_id, timeout=2)
    assert info.value.exit_code == 3 and "was published" in info.value.one_line()


async def test_async_client_end_to_end_with_concurrent_waits(setup) -> None:
    subs = [setup.sub, setup.submission(), setup.submission()]
    tokens = setup.tokens(4)
    async with AsyncVoteClient(setup.settings, setup.keys[2]) as client:
        ids = [
            await client.cast(setup.ring_id, submission_id=sub, vote_type="approve", token_id=tok)
            for sub, tok in zip(subs, tokens, strict=False)
        ]
        outcomes = await asyncio.gather(*(client.wait_outcome(v, timeout=60) for v in ids))
        assert [type(o) for o in outcomes] == [Ballot] * 3
        assert [o.vote_id for o in outcomes] == ids
        assert len({o.key_image for o in outcomes}) == 3  # unlinkable across submissions
        dup = await client.cast_and_wait(
            setup.ring_id, submission_id=subs[0], vote_type="reject", token_id=tokens[3], timeout=60
        )
    assert isinstance(dup, Rejection) and dup.reason == "duplicate_key_image"
    assert dup.vote_id is not None and dup.token_id == tokens[3]


def test_deactivated_ring_is_listed_inactive_and_refuses_votes(setup) -> None:
    assert get_ring(setup.settings, setup.ring_id).active
    ring = setup.admin.deactivate_ring(setup.ring_id)
    assert ring.active is False
    listed = list_rings(setup.settings)[setup.ring_id]
    assert (listed.active, listed.public_keys) == (False, ring.public_keys)
    [token] = setup.tokens(1)
    with VoteClient(setup.settings, setup.keys[0]) as client:
        outcome = client.cast_and_wait(
            setup.ring_id, submission_id=setup.sub, vote_type="approve", token_id=token, timeout=60
        )
    assert isinstance(outcome, Rejection) and outcome.reason == "inactive_ring"
    with pytest.raises(NotFound):
        setup.admin.deactivate_ring("no-such-ring")


async def test_sync_and_async_clients_put_a_token_on_the_same_partition(settings) -> None:
    """Both must match the workers' co-partitioning: Java's murmur2 of the key."""
    ensure_topics(settings, ["votes"])
    votes = settings.topic("votes")
    keys = [secrets.token_hex(16).encode() for _ in range(40)]
    sync_parts: dict[bytes, int] = {}
    producer = SdkProducer(settings)
    for key in keys:
        producer.send(
            votes, key, b"{}", on_delivered=lambda p, _o, k=key: sync_parts.__setitem__(k, p)
        )
    producer.flush()
    async with AsyncVoteClient(settings, ringcrypto.SecretKey.generate()) as client:
        async_parts = {key: (await client.publish_raw(key, b"{}"))[0] for key in keys}
    java = {key: (murmur2(key) & 0x7FFFFFFF) % settings.partitions for key in keys}
    assert sync_parts == async_parts == java
    assert len(set(java.values())) > 1
