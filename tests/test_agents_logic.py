"""The agents' decisions without Kafka: VoteVerifier and TallyKeeper on a dict and a list.

The integration tests prove the wiring; these pin the logic, above all the
crash-repair paths of the tally stage, which a live crash only hits by chance:
a tally or chain head restored *older* than the ballot entries beside it.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import secrets
from datetime import UTC, datetime

import pytest

import ringcrypto
from agents.control import ControlState
from agents.records import SourceRecord
from agents.tally import TallyKeeper
from agents.verify import VoteVerifier
from connectors.sdk.vote import build_vote
from models import Ring, Submission, first_break
from streams.settings import Settings
from tests.fixtures.accepted import accepted_vote
from tests.fixtures.issuer import ISSUER, issuer_keys

SETTINGS = Settings(topic_prefix="unit", partitions=4)
VOTES = SETTINGS.topic("votes")


class Out:
    def __init__(self) -> None:
        (
            self.rejections,
            self.accepted_votes,
            self.ballots,
            self.tallies,
            self.audit_events,
            self.index,
        ) = ([] for _ in range(6))

    async def rejection(self, key, r):
        self.rejections.append(r)

    async def credential_token(self, e):
        self.index.append(e)

    async def ballot(self, b):
        self.ballots.append(b)

    async def tally(self, t):
        self.tallies.append(t)


class VerifyOut(Out):
    async def accepted(self, v):
        self.accepted_votes.append(v)


class TallyOut(Out):
    async def audit(self, e):
        self.audit_events.append(e)


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def scene():
    keys = [ringcrypto.SecretKey.generate() for _ in range(4)]
    ring = ringcrypto.Ring([k.public_key for k in keys])
    control = ControlState(SETTINGS)
    control.apply(
        SETTINGS.topic("rings"),
        b"r1",
        Ring(
            ring_id="r1", genre="g", epoch=1, public_keys=[pk.hex() for pk in ring.public_keys]
        ).to_json(),
    )
    for sub in ("s1", "s2"):
        control.apply(
            SETTINGS.topic("submissions"),
            sub.encode(),
            Submission(submission_id=sub, genre="g", epoch=1).to_json(),
        )
    return keys, ring, control


def _record(offset, key, value, partition=0):
    return SourceRecord(VOTES, partition, offset, key, value)


def _issue(offset, token, cred="ab" * 32):
    msg = ISSUER.token_issued(
        token, credential_hash=cred, epoch=1, issued_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    return _record(offset, token.encode(), msg.to_json())


def _vote(offset, keys, ring, member, token, sub="s1", vote_type="approve"):
    vote = build_vote(
        keys[member],
        ring,
        submission_id=sub,
        ring_id="r1",
        vote_type=vote_type,
        token_id=token,
        epoch=1,
        batchable=True,
    )
    return _record(offset, token.encode(), vote.to_json())


def _verifier(control, tokens, out):
    return VoteVerifier(
        control=control,
        tokens=tokens,
        outputs=out,
        verify_batch=ringcrypto.verify_batch,
        verify_one=ringcrypto.verify,
        issuer=issuer_keys(),
    )


def test_one_batch_decides_exactly_as_record_by_record(scene):
    """Batching must never change an outcome: same records, batch vs one at a time."""
    keys, ring, control = scene
    t1, t2 = "tok-a", "tok-b"
    records = [
        _vote(0, keys, ring, 0, t1),  # before its issuance: unknown_token
        _issue(1, t1),
        _vote(2, keys, ring, 0, t1),  # spends t1
        _vote(3, keys, ring, 1, t1, vote_type="reject"),  # t1 already spent
        _issue(4, t2),
        _record(5, t2.encode(), ISSUER.token_revoked(t2, "stolen").to_json()),
        _vote(6, keys, ring, 2, t2),  # revoked
        _record(7, b"junk", b"{not json"),
    ]
    batched_out, single_out = VerifyOut(), VerifyOut()
    run(_verifier(control, {}, batched_out).process(records))
    single = _verifier(control, {}, single_out)
    for r in records:
        run(single.process([r]))
    for out in (batched_out, single_out):
        assert [r.reason.value for r in out.rejections] == [
            "unknown_token",
            "token_spent",
            "token_revoked",
            "malformed",
        ]
        assert [(a.token_id, a.source_offset) for a in out.accepted_votes] == [(t1, 2)]
    assert [r.source_offset for r in batched_out.rejections] == [0, 3, 6, 7]


def test_a_bad_signature_burns_nothing_and_a_good_one_then_spends(scene):
    keys, ring, control = scene
    token = "tok-c"
    good = _vote(2, keys, ring, 3, token)
    forged_sig = base64.b64encode(
        bytes(len(base64.b64decode(good.value.split(b'"signature":"')[1].split(b'"')[0])))
    ).decode()
    body = good.value.decode().split('"signature":"')[0] + f'"signature":"{forged_sig}"}}'
    out, tokens = VerifyOut(), {}
    run(
        _verifier(control, tokens, out).process(
            [_issue(0, token), _record(1, token.encode(), body.encode()), good]
        )
    )
    assert [r.reason.value for r in out.rejections] == [
        "malformed"
    ]  # zero bytes: not a canonical signature
    assert [a.source_offset for a in out.accepted_votes] == [2]


class LaggingControl(ControlState):
    """A control reader that has not read the ring yet: the record arrives on sync."""

    def __init__(self, scene_control: ControlState, ring_record: bytes) -> None:
        super().__init__(SETTINGS)
        self.submissions = scene_control.submissions
        self.pending, self.syncs = [ring_record], 0

    async def sync(self, timeout: float = 10.0) -> bool:
        self.syncs += 1
        while self.pending:
            self.apply(SETTINGS.topic("rings"), b"r1", self.pending.pop())
        return True


def test_a_vote_naming_a_ring_not_read_yet_waits_for_the_control_topics(scene):
    """Registered before the vote was produced, read after it: the vote must not be
    ``unknown_ring`` because the control reader trailed the votes."""
    keys, ring, _ = scene
    registered = Ring(
        ring_id="r1", genre="g", epoch=1, public_keys=[pk.hex() for pk in ring.public_keys]
    ).to_json()
    lagging = LaggingControl(scene[2], registered)
    out = VerifyOut()
    batch = [_issue(0, "tok-new-ring"), _vote(1, keys, ring, 0, "tok-new-ring")]
    run(_verifier(lagging, {}, out).process(batch))
    assert out.rejections == [] and [a.source_offset for a in out.accepted_votes] == [1]
    assert lagging.syncs == 1
    out = VerifyOut()
    batch = [_issue(0, "tok-known-ring"), _vote(1, keys, ring, 1, "tok-known-ring")]
    run(_verifier(lagging, {}, out).process(batch))
    assert len(out.accepted_votes) == 1 and lagging.syncs == 1  # a known ring: no wait


def test_redelivery_of_a_spent_vote_forwards_the_same_accepted_vote(scene):
    keys, ring, control = scene
    token = "tok-d"
    vote = _vote(1, keys, ring, 0, token, sub="s2")
    out, tokens = VerifyOut(), {}
    verifier = _verifier(control, tokens, out)
    run(verifier.process([_issue(0, token), vote]))
    again = SourceRecord(VOTES, 0, 9, vote.key, vote.value)  # the same bytes at a later offset
    run(verifier.process([again]))
    assert out.rejections == []
    assert out.accepted_votes[0] == out.accepted_votes[1]  # identical, original offset included
    assert out.accepted_votes[1].source_offset == 1


def _tally_records(votes, partition=2):
    return [
        SourceRecord("accepted", partition, n, v.submission_id.encode(), v.to_json())
        for n, v in enumerate(votes)
    ]


def _votes(n, sub="s1"):
    import uuid

    return [
        accepted_vote(
            uuid.uuid4(), sub, secrets.token_hex(32), ("approve", "reject", "flag")[i % 3], offset=i
        )
        for i in range(n)
    ]


async def _votes_topic(partition: int, offset: int) -> bytes:
    """TallyKeeper's read_vote: a stand-in raw value for every votes-topic position."""
    return f"vote at {partition}/{offset}".encode()


def test_tally_counts_each_key_image_once_and_chains_audit_events():
    votes = _votes(5)
    dup = accepted_vote(__import__("uuid").uuid4(), "s1", votes[0].key_image, offset=99)
    out, state = TallyOut(), {}
    keeper = TallyKeeper(settings=SETTINGS, state=state, outputs=out, read_vote=_votes_topic)
    run(keeper.process(_tally_records([*votes, dup])))
    assert len(out.ballots) == 5
    assert [r.reason.value for r in out.rejections] == ["duplicate_key_image"]
    assert out.rejections[0].source_offset == 99 and out.rejections[0].source_topic == VOTES
    assert base64.b64decode(out.rejections[0].payload_b64) == b"vote at 0/99"  # read back
    [tally] = out.tallies  # one Tally per submission per batch, at its final version
    assert (
        tally.version,
        tally.total,
        tally.counts.approve,
        tally.counts.reject,
        tally.counts.flag,
    ) == (5, 5, 2, 2, 1)
    assert first_break(out.audit_events) is None and [e.sequence for e in out.audit_events] == [
        1,
        2,
        3,
        4,
        5,
    ]


@pytest.mark.parametrize("lost", ["tally", "chain", "both"])
def test_tally_and_chain_head_restored_older_than_the_ballots_are_repaired_on_redelivery(lost):
    """A crash after the ballot entries reached the changelog but before the batch's
    tally/chain-head writes did: the redelivered batch must repair, not recount."""
    votes = _votes(4)
    out, state = TallyOut(), {}
    keeper = TallyKeeper(settings=SETTINGS, state=state, outputs=out, read_vote=_votes_topic)
    run(keeper.process(_tally_records(votes[:2])))
    before = copy.deepcopy(state)  # what the changelog held after the first batch
    run(keeper.process(_tally_records(votes[2:])))
    crashed = copy.deepcopy(state)
    if lost in ("tally", "both"):
        crashed[b"t|s1"] = before[b"t|s1"]
    if lost in ("chain", "both"):
        crashed[b"c|2"] = before[b"c|2"]
    replay_out = TallyOut()
    replayed = TallyKeeper(
        settings=SETTINGS, state=crashed, outputs=replay_out, read_vote=_votes_topic
    )
    run(replayed.process(_tally_records(votes[2:])))  # redelivered after the crash
    assert crashed[b"t|s1"] == state[b"t|s1"] and crashed[b"c|2"] == state[b"c|2"]
    assert [b.vote_id for b in replay_out.ballots] == [v.vote_id for v in votes[2:]]
    assert replay_out.audit_events == out.audit_events[2:]  # byte-identical events, no fork
    assert replay_out.tallies[-1].version == 4
    # and the next new vote continues the chain without a gap
    [nxt] = _votes(1)
    run(replayed.process(_tally_records([nxt])))
    assert (
        replay_out.audit_events[-1].sequence == 5
        and first_break(out.audit_events[:4] + [replay_out.audit_events[-1]]) is None
    )


def test_a_vote_redelivered_with_nothing_lost_changes_nothing():
    votes = _votes(3)
    out, state = TallyOut(), {}
    keeper = TallyKeeper(settings=SETTINGS, state=state, outputs=out, read_vote=_votes_topic)
    run(keeper.process(_tally_records(votes)))
    snapshot = copy.deepcopy(state)
    again = TallyOut()
    run(
        TallyKeeper(settings=SETTINGS, state=state, outputs=again, read_vote=_votes_topic).process(
            _tally_records(votes)
        )
    )
    assert state == snapshot
    assert (
        again.ballots == out.ballots
        and again.audit_events == out.audit_events
        and again.rejections == []
    )
    assert again.tallies[-1] == out.tallies[-1]


def test_a_redelivered_vote_gets_the_reason_it_got_the_first_time(scene):
    """After a crash, records come again against a state that later records changed.

    A forged vote rejected as bad_signature before an honest vote spent the
    token must be bad_signature again, not token_spent, and nothing is rewritten.
    """
    keys, ring, control = scene
    token = "tok-redelivered"
    forged = _vote(1, keys, ring, 0, token, sub="s2")
    body = forged.value.replace(b'"approve"', b'"reject"')  # signature no longer matches
    forged = _record(1, forged.key, body)
    honest = _vote(2, keys, ring, 1, token)
    out, tokens = VerifyOut(), {}
    verifier = _verifier(control, tokens, out)
    run(verifier.process([_issue(0, token), forged, honest]))
    state_after = copy.deepcopy(tokens)
    run(verifier.process([_issue(0, token), forged, honest]))  # all three again
    assert [(r.source_offset, r.reason.value) for r in out.rejections] == [
        (1, "bad_signature"),
        (1, "bad_signature"),
    ]
    assert [a.source_offset for a in out.accepted_votes] == [2, 2]
    assert tokens == state_after  # the older states were never written back


def test_a_vote_that_finds_its_token_spent_by_a_later_offset_is_refused_and_logged(scene, caplog):
    """Records applied out of offset order (F7): the first valid vote comes after the second.

    One vote per token holds whatever the order: the earlier vote is refused,
    the token stays spent by the later one, and the error names the offsets.
    """
    keys, ring, control = scene
    token = "tok-overtaken"
    first, second = _vote(1, keys, ring, 0, token), _vote(2, keys, ring, 1, token, sub="s2")
    out, tokens = VerifyOut(), {}
    verifier = _verifier(control, tokens, out)
    run(verifier.process([_issue(0, token), second]))
    run(verifier.process([first]))
    assert [a.source_offset for a in out.accepted_votes] == [2]
    assert [(r.source_offset, r.reason.value) for r in out.rejections] == [(1, "token_spent")]
    assert "out of offset order" in caplog.text
    assert tokens[token.encode()]["changed_offset"] == 2


def test_a_batch_handed_over_out_of_log_order_is_decided_in_log_order(scene):
    """After a seek back, Faust can put an old buffered record before a re-fetched earlier one."""
    keys, ring, control = scene
    token = "tok-shuffled"
    honest, replay = _vote(1, keys, ring, 0, token), _vote(2, keys, ring, 1, token, sub="s2")
    out, tokens = VerifyOut(), {}
    run(_verifier(control, tokens, out).process([_issue(0, token), replay, honest, replay]))
    assert [a.source_offset for a in out.accepted_votes] == [1]
    assert [(r.source_offset, r.reason.value) for r in out.rejections] == [(2, "token_spent")]


def test_a_batch_prepared_before_the_one_ahead_of_it_is_applied_decides_the_same(scene):
    """The worker prepares batch n+1 (its signature checks start) while batch n is
    applied: outcomes must be those of deciding the batches one after the other."""
    keys, ring, control = scene
    first = [
        _issue(0, "tok-p1"),
        _vote(1, keys, ring, 0, "tok-p1"),  # spends tok-p1
        _issue(2, "tok-p2"),
    ]
    second = [
        _vote(3, keys, ring, 1, "tok-p1", vote_type="reject"),  # already spent by batch 1
        _vote(4, keys, ring, 2, "tok-p2"),  # issued in batch 1, not yet applied when prepared
        _vote(5, keys, ring, 3, "tok-p3"),  # never issued
    ]

    async def ahead(verifier):
        a = await verifier.prepare(first)
        b = await verifier.prepare(second)
        await verifier.apply(a)
        await verifier.apply(b)

    async def in_turn(verifier):
        await verifier.process(first)
        await verifier.process(second)

    outcomes = []
    for drive in (ahead, in_turn):
        out = VerifyOut()
        run(drive(_verifier(control, {}, out)))
        outcomes.append(
            (
                [(a.token_id, a.source_offset) for a in out.accepted_votes],
                [(r.reason.value, r.source_offset) for r in out.rejections],
            )
        )
    assert (
        outcomes[0]
        == outcomes[1]
        == (
            [("tok-p1", 1), ("tok-p2", 4)],
            [("token_spent", 3), ("unknown_token", 5)],
        )
    )


def test_a_vote_whose_check_was_not_foreseen_is_checked_when_applied(scene):
    """Selection is only a saving: a vote prepared before its token's issuance was
    even prepared is still decided on its own signature check."""
    keys, ring, control = scene
    issue = [_issue(0, "tok-q")]
    votes = [_vote(1, keys, ring, 0, "tok-q"), _vote(2, keys, ring, 1, "tok-q")]
    out = VerifyOut()

    async def drive(verifier):
        prepared_votes = await verifier.prepare(votes)  # tok-q unknown: nothing selected
        assert all(p.check is None for p in prepared_votes.parsed)
        await verifier.process(issue)
        await verifier.apply(prepared_votes)

    run(drive(_verifier(control, {}, out)))
    assert [(a.token_id, a.source_offset) for a in out.accepted_votes] == [("tok-q", 1)]
    assert [(r.reason.value, r.source_offset) for r in out.rejections] == [("token_spent", 2)]
