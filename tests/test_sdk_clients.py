"""The SDK against a real worker: sync and async vote clients, slots, wait_outcome, ring
versions signed by the registrar.

One module-scoped worker (``pipeline``); every test registers its own ring and
submissions (unique ids), so tests never see each other's votes.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka.partitioner import murmur2

import ringcrypto
from connectors.sdk import (
    AsyncVoteClient,
    NotFound,
    OutcomeTimeout,
    Registrar,
    SdkProducer,
    SlotsExhausted,
    SlotUsed,
    VoteClient,
    Voter,
    build_vote,
    ensure_topics,
    get_ring,
    list_rings,
)
from models import Ballot, Rejection
from models.control import Ring
from tests.fixtures.ring_setup import RingSetup

pytestmark = pytest.mark.integration


class Setup(RingSetup):
    """The shared ring setup (tests/fixtures/ring_setup.py), in epoch 4."""

    def __init__(self, settings, members: int = 3, votes_per_epoch: int = 4) -> None:
        super().__init__(settings, members, votes_per_epoch, epoch=4)


@pytest.fixture
def setup(pipeline) -> Setup:
    return Setup(pipeline[0])


def test_sync_client_waits_for_a_ballot_then_a_duplicate_key_image(setup) -> None:
    with VoteClient(setup.settings, setup.keys[1]) as client:
        vote_id = client.vote(setup.ring_id, submission_id=setup.sub, vote_type="approve")
        ballot = client.wait_outcome(vote_id, timeout=60)
        assert isinstance(ballot, Ballot)
        assert ballot.vote_id == vote_id
        assert ballot.key_image == setup.keys[1].key_image(setup.sub.encode()).hex()
        # another slot, the same submission: one key image per reviewer and submission
        again = client.vote_and_wait(
            setup.ring_id, submission_id=setup.sub, vote_type="reject", timeout=60
        )
    assert isinstance(again, Rejection)
    assert again.reason == "duplicate_key_image"


def test_a_used_slot_is_refused_before_publishing_and_a_resend_is_one_vote(setup) -> None:
    """The Voter refuses a slot it used (SlotUsed) without publishing; a hand-built vote on
    that slot, published anyway, is rejected token_spent by the worker."""
    with VoteClient(setup.settings, setup.keys[0], batchable=False) as client:
        vote = client.sign(setup.ring_id, submission_id=setup.sub, vote_type="flag", slot=2)
        assert (vote.slot, vote.ring_version) == (2, 1)
        assert len(vote.signature_bytes()) == ringcrypto.vote_signature_length(3, False)
        first = client.publish(vote)
        ballot = client.wait_outcome(first, timeout=60)
        assert isinstance(ballot, Ballot)
        # The same bytes again (a retry): the worker rejects the copy duplicate_record,
        # which the client answers with the ballot it saw (issue 16).
        assert client.wait_outcome(client.publish(vote), timeout=60) == ballot

        before = setup.votes_published()
        other = setup.submission()
        with pytest.raises(SlotUsed, match="slot 2 of epoch 4 is already used"):
            client.vote(setup.ring_id, submission_id=other, vote_type="reject", slot=2)
        assert setup.votes_published() == before  # nothing was published

        # Built without the Voter (so it is not refused): the tag is spent.
        spent = build_vote(
            setup.keys[0],
            setup.ring,
            submission_id=other,
            ring_id=setup.ring_id,
            ring_version=1,
            vote_type="reject",
            epoch=setup.epoch,
            slot=2,
        )
        assert spent.token_id == vote.token_id and spent.vote_id == first
        outcome = client.wait_outcome(client.publish(spent), timeout=60)
    assert isinstance(outcome, Rejection) and outcome.reason == "token_spent"


def test_slots_exhausted_after_k_votes_and_nothing_more_is_published(pipeline) -> None:
    setup = Setup(pipeline[0], members=2, votes_per_epoch=2)
    subs = [setup.sub, setup.submission(), setup.submission()]
    with VoteClient(setup.settings, setup.keys[0]) as client:
        outcomes = [
            client.vote_and_wait(setup.ring_id, submission_id=s, vote_type="approve", timeout=60)
            for s in subs[:2]
        ]
        assert [type(o) for o in outcomes] == [Ballot, Ballot]
        assert client.voter.used_slots(setup.epoch) == {0, 1}
        before = setup.votes_published()
        with pytest.raises(SlotsExhausted, match="all 2 slots of epoch 4 are used"):
            client.vote(setup.ring_id, submission_id=subs[2], vote_type="approve")
    assert setup.votes_published() == before


def test_a_voter_with_a_slots_file_remembers_across_clients(setup, tmp_path) -> None:
    """Two clients (two processes, in effect) sharing a slots file never reuse a slot."""
    slots = tmp_path / "alice.slots.json"
    picked = []
    for _ in range(4):  # k = 4: every slot once, then none
        with VoteClient(setup.settings, Voter(setup.keys[2], slots_file=slots)) as client:
            vote = client.sign(setup.ring_id, submission_id=setup.sub, vote_type="approve")
            picked.append(vote.slot)
    assert sorted(picked) == [0, 1, 2, 3]
    assert slots.stat().st_mode & 0o777 == 0o600
    with pytest.raises(SlotsExhausted):
        Voter(setup.keys[2], slots_file=slots).take_slot(setup.epoch, 4)


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
        vote_id = client.vote(
            ring,
            ring_id="r",
            ring_version=1,
            epoch=1,
            slot=0,
            submission_id="s",
            vote_type="approve",
        )
        with pytest.raises(OutcomeTimeout) as info:
            client.wait_outcome(vote_id, timeout=2)
    assert info.value.exit_code == 3 and "was published" in info.value.one_line()


async def test_async_client_end_to_end_with_concurrent_waits(setup) -> None:
    subs = [setup.sub, setup.submission(), setup.submission()]
    async with AsyncVoteClient(setup.settings, setup.keys[2]) as client:
        ids = [
            await client.vote(setup.ring_id, submission_id=sub, vote_type="approve") for sub in subs
        ]
        outcomes = await asyncio.gather(*(client.wait_outcome(v, timeout=60) for v in ids))
        assert [type(o) for o in outcomes] == [Ballot] * 3
        assert [o.vote_id for o in outcomes] == ids
        assert len({o.key_image for o in outcomes}) == 3  # unlinkable across submissions
        dup = await client.vote_and_wait(
            setup.ring_id, submission_id=subs[0], vote_type="reject", timeout=60
        )
        with pytest.raises(SlotsExhausted):  # k = 4, all used
            await client.vote(setup.ring_id, submission_id=subs[1], vote_type="reject")
    assert isinstance(dup, Rejection) and dup.reason == "duplicate_key_image"
    assert dup.vote_id is not None


def test_rotation_publishes_signed_version_2_and_revokes_the_dropped_key(setup) -> None:
    """After a rotation without key 0: the client names version 2; key 0's vote naming
    version 1 is ring_not_in_force, and it cannot sign for version 2 at all."""
    v2 = setup.admin.rotate_ring(setup.ring_id, public_keys=[k.public_key for k in setup.keys[1:]])
    assert (v2.version, v2.genre, v2.epoch, v2.votes_per_epoch) == (2, setup.genre, 4, 4)
    assert v2.registrar_signature is not None
    assert get_ring(setup.settings, setup.ring_id).version == 2
    assert get_ring(setup.settings, setup.ring_id, version=1) == setup.ring
    assert list_rings(setup.settings)[setup.ring_id] == v2
    with VoteClient(setup.settings, setup.keys[1]) as client:
        kept = client.vote_and_wait(
            setup.ring_id, submission_id=setup.sub, vote_type="approve", timeout=60
        )
    assert isinstance(kept, Ballot) and kept.ring_id == setup.ring_id
    with VoteClient(setup.settings, setup.keys[0]) as client:
        old = client.vote_and_wait(
            setup.ring_id, ring_version=1, submission_id=setup.sub, vote_type="approve", timeout=60
        )
        assert isinstance(old, Rejection) and old.reason == "ring_not_in_force", old
        with pytest.raises(ringcrypto.MalformedInput):  # not a member of version 2
            client.sign(setup.ring_id, submission_id=setup.sub, vote_type="approve")


def test_deactivated_ring_is_listed_inactive_and_refuses_votes(setup) -> None:
    assert get_ring(setup.settings, setup.ring_id).active
    ring = setup.admin.deactivate_ring(setup.ring_id)
    assert (ring.active, ring.version) == (False, 2)
    listed = list_rings(setup.settings)[setup.ring_id]
    assert (listed.active, listed.public_keys) == (False, ring.public_keys)
    with VoteClient(setup.settings, setup.keys[0]) as client:
        outcome = client.vote_and_wait(
            setup.ring_id, submission_id=setup.sub, vote_type="approve", timeout=60
        )
    assert isinstance(outcome, Rejection) and outcome.reason == "inactive_ring"
    with pytest.raises(NotFound):
        setup.admin.deactivate_ring("no-such-ring")


def test_register_ring_is_idempotent_and_submissions_immutable(setup) -> None:
    again = setup.admin.register_ring(
        setup.ring_id,
        genre=setup.genre,
        epoch=setup.epoch,
        public_keys=[k.public_key for k in reversed(setup.keys)],
        votes_per_epoch=4,
    )
    assert again == setup.ring  # same content: nothing published
    assert setup.admin.ring_versions(setup.ring_id) == [setup.ring]
    from streams.errors import UsageProblem

    with pytest.raises(UsageProblem, match="cannot change"):
        setup.admin.register_submission(setup.sub, genre="other", epoch=setup.epoch)


@pytest.mark.parametrize("signer", ["unsigned", "foreign"])
def test_a_ring_not_signed_by_the_registrar_never_becomes_usable(pipeline, signer) -> None:
    """A ring version published by hand without the trusted registrar's signature changes
    nothing: the SDK does not list it, a vote naming it is rejected unknown_ring, and the
    ring record itself gets an unauthorized_control_event rejection."""
    from tests.fixtures.pipeline import Outputs

    settings = pipeline[0]
    setup = Setup(settings)
    key = ringcrypto.SecretKey.generate()
    ring_id = f"forged-{uuid.uuid4().hex[:8]}"
    forged = Ring(
        ring_id=ring_id,
        version=1,
        genre=setup.genre,
        epoch=setup.epoch,
        public_keys=[key.public_key.hex()],
        votes_per_epoch=4,
        valid_from=datetime(2020, 1, 1, tzinfo=UTC),
    )
    if signer == "foreign":
        forged = Registrar.generate().sign_ring(forged)
    producer = SdkProducer(settings)
    producer.send(settings.topic("rings"), ring_id.encode(), forged.to_json())
    producer.flush()
    with pytest.raises(NotFound):
        get_ring(settings, ring_id)
    assert ring_id not in list_rings(settings)

    outputs = Outputs(settings)
    try:
        with VoteClient(settings, key) as client:
            outcome = client.vote_and_wait(
                forged, submission_id=setup.sub, vote_type="approve", timeout=60
            )
        assert isinstance(outcome, Rejection) and outcome.reason == "unknown_ring", outcome
        outputs.wait_for(
            lambda o: any(
                r["reason"] == "unauthorized_control_event"
                and r.get("source_topic") == settings.topic("rings")
                and ring_id.encode() in base64.b64decode(r.get("payload_b64") or "")
                for r in o.rejections
            ),
            timeout=60,
            what="the forged ring's unauthorized_control_event rejection",
        )
    finally:
        outputs.close()


async def test_sync_and_async_clients_put_a_tag_on_the_same_partition(settings) -> None:
    """Both must match what the workers require: Java's murmur2 of the key."""
    ensure_topics(settings, ["votes"])
    votes = settings.topic("votes")
    keys = [secrets.token_hex(32).encode() for _ in range(40)]
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


def test_ring_lookup_names_the_version_in_force_not_a_future_one(setup) -> None:
    """A version registered to take effect later is the latest, but a vote cast now must
    name the one in force (else ring_not_in_force)."""
    from datetime import timedelta

    later = datetime.now(UTC) + timedelta(hours=1)
    v2 = setup.admin.rotate_ring(
        setup.ring_id, public_keys=[k.public_key for k in setup.keys[:2]], valid_from=later
    )
    assert get_ring(setup.settings, setup.ring_id).version == v2.version == 2
    with VoteClient(setup.settings, setup.keys[2]) as client:
        vote = client.sign(setup.ring_id, submission_id=setup.sub, vote_type="approve")
        assert vote.ring_version == 1
    assert time.time() < later.timestamp()
