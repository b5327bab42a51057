"""The agents' decisions without Kafka: VoteVerifier and TallyKeeper on a dict and a list.

The integration tests prove the wiring; these pin the logic: what a vote does
to its slot tag (spent once, only by its holder, only on its own partition,
within the ring version's k slots), and the crash-repair paths of the tally
stage, which a live crash only hits by chance: a tally or chain head restored
*older* than the ballot entries beside it.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import secrets
from datetime import UTC, datetime

import pytest

import ringcrypto
from agents.control import ControlRecord, ControlState
from agents.records import SourceRecord
from agents.tally import TallyKeeper
from agents.verify import VoteVerifier
from models import Ring, Submission, VoteType, first_break
from streams.partitioner import partition_for_key
from streams.settings import Settings
from tests.fixtures.accepted import accepted_vote
from tests.fixtures.votes import make_vote, registrar_keys, signed

SETTINGS = Settings(topic_prefix="unit", partitions=4)
VOTES = SETTINGS.topic("votes")
#: Broker timestamps: control records are appended at 1000, rotations at 3000, votes at 5000.
CONTROL_TS, ROTATION_TS, VOTE_TS = 1000, 3000, 5000
#: Slots per member and epoch (votes_per_epoch of ring r1).
K = 2


class Out:
    def __init__(self) -> None:
        (
            self.rejections,
            self.accepted_votes,
            self.ballots,
            self.tallies,
            self.audit_events,
            self.refusals,
        ) = ([] for _ in range(6))

    async def rejection(self, key, r):
        self.rejections.append(r)

    async def ballot(self, b):
        self.ballots.append(b)

    async def tally(self, t):
        self.tallies.append(t)


class VerifyOut(Out):
    async def accepted(self, v):
        self.accepted_votes.append(v)

    async def refused(self, refusal):
        # handed to the tally stage, which emits this rejection with its log leaf
        self.refusals.append(refusal)
        self.rejections.append(refusal.rejection)


class TallyOut(Out):
    async def audit(self, e):
        self.audit_events.append(e)


def run(coro):
    return asyncio.run(coro)


def _control(*rings: tuple[Ring, int], control: ControlState | None = None) -> ControlState:
    control = control or ControlState(SETTINGS, registrar=registrar_keys())
    for offset, (ring, ts) in enumerate(rings):
        record = ControlRecord(SETTINGS.topic("rings"), 0, offset, ts, b"r1", ring.to_json())
        assert control.apply(record) is None
    for offset, sub in enumerate(("s1", "s2", "s3")):
        submission = signed(Submission(submission_id=sub, genre="g", epoch=1)).to_json()
        record = ControlRecord(
            SETTINGS.topic("submissions"), 0, offset, CONTROL_TS, sub.encode(), submission
        )
        control.apply(record)
    return control


def _ring_v(version: int, keys) -> Ring:
    return signed(
        Ring(
            ring_id="r1",
            version=version,
            genre="g",
            epoch=1,
            public_keys=[k.public_key.hex() for k in keys],
            votes_per_epoch=K,
            valid_from=datetime(1970, 1, 1, tzinfo=UTC),  # backdated: in force from its record
        )
    )


@pytest.fixture(scope="module")
def scene():
    keys = [ringcrypto.SecretKey.generate() for _ in range(4)]
    ring = ringcrypto.Ring([k.public_key for k in keys])
    return keys, ring, _control((_ring_v(1, keys), CONTROL_TS))


def _home(key: bytes) -> int:
    return partition_for_key(key, SETTINGS.partitions)


def _record(offset, key, value, *, partition=None, ts=VOTE_TS):
    """A votes-topic record, on its key's own partition unless ``partition`` says otherwise."""
    where = _home(key) if partition is None else partition
    return SourceRecord(VOTES, where, offset, key, value, timestamp_ms=ts)


def _vote(offset, keys, ring, member, *, sub="s1", slot=0, vote_type="approve", **kw):
    vote = make_vote(keys[member], ring, submission_id=sub, slot=slot, vote_type=vote_type)
    return _record(offset, vote.token_id.encode(), vote.to_json(), **kw)


def _tag(keys, member, slot=0) -> str:
    return keys[member].slot_tag((1).to_bytes(8, "big"), slot).hex()


def _verifier(control, tokens, out):
    return VoteVerifier(
        control=control,
        tokens=tokens,
        outputs=out,
        verify_batch=ringcrypto.verify_vote_batch,
        partitions=SETTINGS.partitions,
    )


def _outcomes(out):
    return (
        [(a.token_id, a.source_offset) for a in out.accepted_votes],
        [(r.reason.value, r.source_offset) for r in out.rejections],
    )


def test_one_batch_decides_exactly_as_record_by_record(scene):
    """Batching must never change an outcome: same records, batch vs one at a time."""
    keys, ring, control = scene
    records = [
        _vote(0, keys, ring, 0),  # spends key 0's slot-0 tag
        _vote(1, keys, ring, 0, sub="s2", vote_type="reject"),  # same tag: token_spent
        _vote(2, keys, ring, 1, slot=K),  # slot k: out of range
        _vote(3, keys, ring, 2, sub="nope"),  # unknown submission
        _record(4, b"junk", b"{not json"),
        _vote(5, keys, ring, 1, sub="s2", slot=1),  # a fresh tag: accepted
    ]
    batched_out, single_out = VerifyOut(), VerifyOut()
    run(_verifier(control, {}, batched_out).process(records))
    single = _verifier(control, {}, single_out)
    for r in records:
        run(single.process([r]))
    for out in (batched_out, single_out):
        assert sorted(r.reason.value for r in out.rejections) == [
            "malformed",
            "slot_out_of_range",
            "token_spent",
            "unknown_submission",
        ]
        # (a batch is decided in (partition, offset) order: these tags sit on various ones)
        assert sorted((a.source_offset, a.token_id) for a in out.accepted_votes) == [
            (0, _tag(keys, 0)),
            (5, _tag(keys, 1, 1)),
        ]
        assert [a.ring_version for a in out.accepted_votes] == [1, 1]
    by_offset = [sorted(_outcomes(out)[1], key=lambda r: r[1]) for out in (batched_out, single_out)]
    assert by_offset[0] == by_offset[1]


def test_a_reviewer_casts_at_most_k_votes_per_epoch(scene):
    """Vote k+1 needs slot k (out of range) or a slot already spent (token_spent), whatever
    submission it is for. Fails if the verifier let a slot >= k through, or keyed the tag
    state by anything but the tag (a slot reused on another submission would count)."""
    keys, ring, control = scene
    out, tokens = VerifyOut(), {}
    verifier = _verifier(control, tokens, out)
    run(verifier.process([_vote(0, keys, ring, 3, sub="s1", slot=0)]))
    run(verifier.process([_vote(1, keys, ring, 3, sub="s2", slot=1)]))
    run(verifier.process([_vote(2, keys, ring, 3, sub="s3", slot=K)]))
    run(verifier.process([_vote(3, keys, ring, 3, sub="s3", slot=0)]))
    assert [a.submission_id for a in out.accepted_votes] == ["s1", "s2"]
    assert [r.reason.value for r in out.rejections] == ["slot_out_of_range", "token_spent"]
    assert len(tokens) == K


def test_theft_a_tag_spent_with_another_keys_signature_is_a_bad_signature(scene):
    """Key 1 signs a vote, then swaps key 0's tag in (token_id and the tag the signature
    carries): the proof that the tag and key image share one secret fails. Nothing is
    burned: key 0 still spends its own tag afterwards."""
    keys, ring, control = scene
    victim = _tag(keys, 0, 1)
    stolen = make_vote(keys[1], ring, submission_id="s3", slot=1, token_id=victim)
    sig = bytearray(base64.b64decode(stolen.signature))
    sig[33:65] = bytes.fromhex(victim)
    stolen = stolen.model_copy(update={"signature": base64.b64encode(bytes(sig)).decode()})
    out, tokens = VerifyOut(), {}
    verifier = _verifier(control, tokens, out)
    run(verifier.process([_record(0, victim.encode(), stolen.to_json())]))
    assert [r.reason.value for r in out.rejections] == ["bad_signature"] and tokens == {}
    run(verifier.process([_vote(1, keys, ring, 0, sub="s3", slot=1)]))
    assert [(a.token_id, a.source_offset) for a in out.accepted_votes] == [(victim, 1)]


def test_a_token_id_other_than_the_signatures_tag_is_malformed_and_spends_nothing(scene):
    """A valid signature by key 1 over a message naming key 0's tag: the signature holds,
    the tag it carries is key 1's. Fails if the verifier trusted token_id."""
    keys, ring, control = scene
    victim = _tag(keys, 0, 0)
    vote = make_vote(keys[1], ring, submission_id="s2", slot=0, token_id=victim)
    out, tokens = VerifyOut(), {}
    verifier = _verifier(control, tokens, out)
    run(verifier.process([_record(0, victim.encode(), vote.to_json())]))
    [rejection] = out.rejections
    assert rejection.reason.value == "malformed" and "slot tag" in rejection.detail
    assert tokens == {}
    run(verifier.process([_vote(1, keys, ring, 0, sub="s2")]))
    assert [a.source_offset for a in out.accepted_votes] == [1]


def test_a_vote_on_a_foreign_partition_changes_nothing_even_when_it_comes_first(scene):
    """A byte copy of a valid vote on another partition: wrong_partition, no state read or
    written, so the genuine record on the tag's partition still spends it; and a copy
    after the spend is not a redelivery (fails if the verifier ignored the partition)."""
    keys, ring, control = scene
    genuine = _vote(7, keys, ring, 2, sub="s1", slot=1)
    home = genuine.partition
    foreign = (home + 1) % SETTINGS.partitions
    copy_first = SourceRecord(
        VOTES, foreign, 0, genuine.key, genuine.value, timestamp_ms=VOTE_TS - 1
    )
    copy_after = SourceRecord(
        VOTES, foreign, 1, genuine.key, genuine.value, timestamp_ms=VOTE_TS + 1
    )
    out, tokens = VerifyOut(), {}
    verifier = _verifier(control, tokens, out)
    run(verifier.process([copy_first]))
    assert tokens == {} and out.accepted_votes == []
    [rejection] = out.rejections
    assert rejection.reason.value == "wrong_partition"
    assert f"belongs on partition {home} of {SETTINGS.partitions}" in rejection.detail
    assert "murmur2" in rejection.detail
    run(verifier.process([genuine, copy_after]))
    assert [(a.source_partition, a.source_offset) for a in out.accepted_votes] == [(home, 7)]
    assert [(r.reason.value, r.source_partition) for r in out.rejections] == [
        ("wrong_partition", foreign),
        ("wrong_partition", foreign),
    ]
    assert tokens[genuine.key]["changed_offset"] == 7


def test_a_vote_after_a_rotation_that_replaced_its_key_is_rejected():
    """Revocation is a ring version without the key (here key 3 makes way for key 4):
    naming the old version is ring_not_in_force, naming the new one cannot carry a valid
    signature. Fails if the verifier checked votes against the latest version, or
    against the named one without asking whether it was in force."""
    keys = [ringcrypto.SecretKey.generate() for _ in range(5)]
    ring = ringcrypto.Ring([k.public_key for k in keys[:4]])
    rotated = [*keys[:3], keys[4]]
    control = _control((_ring_v(1, keys[:4]), CONTROL_TS), (_ring_v(2, rotated), ROTATION_TS))
    before = make_vote(keys[3], ring, submission_id="s1", ring_version=1)
    old = make_vote(keys[3], ring, submission_id="s2", ring_version=1, slot=1)
    new = make_vote(keys[3], ring, submission_id="s3", ring_version=2, slot=1)
    honest = make_vote(
        keys[4],
        ringcrypto.Ring([k.public_key for k in rotated]),
        submission_id="s3",
        ring_version=2,
    )
    out = VerifyOut()
    run(
        _verifier(control, {}, out).process(
            [
                _record(0, before.token_id.encode(), before.to_json(), ts=ROTATION_TS - 1),
                _record(1, old.token_id.encode(), old.to_json()),
                _record(2, new.token_id.encode(), new.to_json()),
                _record(3, honest.token_id.encode(), honest.to_json()),
            ]
        )
    )
    assert sorted((a.source_offset, a.ring_version) for a in out.accepted_votes) == [(0, 1), (3, 2)]
    assert sorted((r.source_offset, r.reason.value) for r in out.rejections) == [
        (1, "ring_not_in_force"),
        (2, "bad_signature"),
    ]


def test_a_vote_waits_until_the_control_topics_are_read_up_to_its_broker_time(scene):
    """A ring version appended before the vote but not read yet: the vote must wait for
    it, not be decided unknown_ring (then a replay, which reads it first, would differ)."""
    keys, ring, _ = scene

    class ReadingControl(ControlState):
        reading = True

    async def scenario():
        control = ReadingControl(SETTINGS, registrar=registrar_keys())
        _control(control=control)  # submissions only
        await control.advance(VOTE_TS - 1)
        out = VerifyOut()
        task = asyncio.create_task(_verifier(control, {}, out).process([_vote(0, keys, ring, 0)]))
        for _ in range(5):
            await asyncio.sleep(0)  # let it run: it must wait
        assert not task.done()
        _control((_ring_v(1, keys), CONTROL_TS), control=control)
        await control.advance(VOTE_TS)
        await asyncio.wait_for(task, 10.0)
        return out

    out = run(scenario())
    assert out.rejections == [] and [a.source_offset for a in out.accepted_votes] == [0]


def test_redelivery_of_a_spent_vote_forwards_the_same_accepted_vote(scene):
    """At-least-once: the same record again (a crash before the commit) changes nothing
    and counts nothing twice."""
    keys, ring, control = scene
    vote = _vote(1, keys, ring, 0, sub="s2", slot=1)
    out, tokens = VerifyOut(), {}
    verifier = _verifier(control, tokens, out)
    run(verifier.process([vote]))
    state = copy.deepcopy(tokens)
    run(verifier.process([vote]))
    assert out.rejections == [] and tokens == state
    assert len(out.accepted_votes) == 2
    assert out.accepted_votes[0] == out.accepted_votes[1]  # identical, broker time included


@pytest.mark.parametrize("one_batch", [False, True])
def test_the_same_vote_at_another_position_is_a_duplicate_record_of_its_own(scene, one_batch):
    """Issue 16: the spending vote's bytes again at a later offset (a producer's retry, a
    replay) are a new record: one outcome of their own, ``duplicate_record``, emitted here
    (no log leaf: not a refusal handed to the tally stage), the tag as it was. Redelivered,
    the copy gets the same rejection again, and the original the same accepted vote."""
    keys, ring, control = scene
    vote = _vote(1, keys, ring, 1, sub="s2", slot=1)
    copy_ = SourceRecord(VOTES, vote.partition, 9, vote.key, vote.value, timestamp_ms=VOTE_TS + 9)
    out, tokens = VerifyOut(), {}
    verifier = _verifier(control, tokens, out)
    run(verifier.process([vote, copy_] if one_batch else [vote]))
    if not one_batch:
        run(verifier.process([copy_]))
    state = copy.deepcopy(tokens)
    run(verifier.process([vote, copy_]))  # both redelivered after a crash
    assert tokens == state
    assert _outcomes(out) == (
        [(_tag(keys, 1, 1), 1)] * 2,
        [("duplicate_record", 9)] * 2,
    )
    assert out.refusals == []  # not a leaf
    assert out.rejections[0] == out.rejections[1]
    assert out.rejections[0].detail == "the same vote spent this slot tag at offset 1"


def _forged(keys, ring, member, offset, **kw):
    """A vote whose vote_type was changed after signing: well-formed, bad signature."""
    vote = make_vote(keys[member], ring, submission_id=kw.pop("sub", "s2"), slot=kw.pop("slot", 0))
    forged = vote.model_copy(update={"vote_type": VoteType.REJECT})
    return _record(offset, vote.token_id.encode(), forged.to_json(), **kw)


def test_a_bad_signature_burns_nothing_and_a_good_one_then_spends(scene):
    keys, ring, control = scene
    out, tokens = VerifyOut(), {}
    forged, good = _forged(keys, ring, 3, 1), _vote(2, keys, ring, 3, sub="s2")
    run(_verifier(control, tokens, out).process([forged, good]))
    assert [r.reason.value for r in out.rejections] == ["bad_signature"]
    assert [a.source_offset for a in out.accepted_votes] == [2]


def test_a_forged_signature_is_checked_once(scene, monkeypatch):
    """The batch check says why a signature failed, so there is no second, single
    verification: at ring 1,024 that second check made a forged vote cost 3.6x a valid
    one (issue 16 item 5, bench/hostile.py). Fails on the code before: the forged
    signature was checked twice (the batch, then verify_vote)."""
    keys, ring, control = scene
    checked: list[bytes] = []
    batch, single = ringcrypto.verify_vote_batch, ringcrypto.verify_vote

    def counting_batch(items, **kwargs):
        items = list(items)
        checked.extend(item[5] for item in items)
        return batch(items, **kwargs)

    def counting_single(*item):
        checked.append(item[5])
        return single(*item)

    monkeypatch.setattr(ringcrypto, "verify_vote_batch", counting_batch)
    monkeypatch.setattr(ringcrypto, "verify_vote", counting_single)
    out, tokens = VerifyOut(), {}
    run(_verifier(control, tokens, out).process([_forged(keys, ring, 3, 1)]))
    assert [r.reason.value for r in out.rejections] == ["bad_signature"]
    assert "does not verify" in out.rejections[0].detail
    assert len(checked) == 1, f"the forged signature was checked {len(checked)} times"


def test_a_vote_with_a_producer_timestamp_is_malformed_and_spends_nothing(scene):
    """The votes topic's LogAppendTime is checked at start, but a record written before the
    repair (or while someone set it back) keeps its producer's timestamp, which would
    let the producer choose which vote came first. Fails if _parse ignores the type."""
    import dataclasses

    keys, ring, control = scene
    out, tokens = VerifyOut(), {}
    record = dataclasses.replace(_vote(1, keys, ring, 3), timestamp_type=0)
    run(_verifier(control, tokens, out).process([record]))
    assert [r.reason.value for r in out.rejections] == ["malformed"]
    assert "CreateTime" in out.rejections[0].detail and tokens == {}
    stamped = dataclasses.replace(_vote(2, keys, ring, 3, slot=1), timestamp_type=1)
    run(_verifier(control, tokens, out).process([stamped]))
    assert [a.source_offset for a in out.accepted_votes] == [2]


def test_no_signature_check_runs_on_the_event_loop(scene):
    """A forged vote is checked twice (the batch, then alone to say why): neither on the
    event loop, where a ring-1,024 forgery's ~70 ms would stall every partition.
    Fails if _explain_failure (or a batch check) is called from the loop's thread."""
    keys, ring, control = scene
    on_loop = []

    def watched(check):
        def call(*args, **kwargs):
            try:
                asyncio.get_running_loop()
                on_loop.append(check.__name__)
            except RuntimeError:
                pass  # a thread without a running loop: the checker thread
            return check(*args, **kwargs)

        call.__name__ = check.__name__
        return call

    out, tokens = VerifyOut(), {}
    verifier = VoteVerifier(
        control=control,
        tokens=tokens,
        outputs=out,
        verify_batch=watched(ringcrypto.verify_vote_batch),
        partitions=SETTINGS.partitions,
    )
    run(verifier.process([_forged(keys, ring, 3, 1), _vote(2, keys, ring, 3, sub="s2")]))
    assert [r.reason.value for r in out.rejections] == ["bad_signature"]
    assert on_loop == [], f"signature checks on the event loop: {on_loop}"


def test_a_redelivered_vote_gets_the_reason_it_got_the_first_time(scene):
    """After a crash, records come again against a state that later records changed.

    A forged vote rejected as bad_signature before an honest vote spent the
    tag must be bad_signature again, not token_spent, and nothing is rewritten.
    """
    keys, ring, control = scene
    forged = _forged(keys, ring, 2, 1, slot=1)
    honest = _vote(2, keys, ring, 2, sub="s1", slot=1)
    assert forged.key == honest.key  # one tag
    out, tokens = VerifyOut(), {}
    verifier = _verifier(control, tokens, out)
    run(verifier.process([forged, honest]))
    state_after = copy.deepcopy(tokens)
    run(verifier.process([forged, honest]))  # both again
    assert [(r.source_offset, r.reason.value) for r in out.rejections] == [
        (1, "bad_signature"),
        (1, "bad_signature"),
    ]
    assert [a.source_offset for a in out.accepted_votes] == [2, 2]
    assert tokens == state_after  # the older states were never written back


def test_a_vote_that_finds_its_tag_spent_by_a_later_offset_is_refused_and_logged(scene, caplog):
    """Records applied out of offset order (F7): the first valid vote comes after the second.

    One vote per tag holds whatever the order: the earlier vote is refused,
    the tag stays spent by the later one, and the error names the offsets.
    """
    keys, ring, control = scene
    first = _vote(1, keys, ring, 1, sub="s1", slot=1)
    second = _vote(2, keys, ring, 1, sub="s3", slot=1)
    out, tokens = VerifyOut(), {}
    verifier = _verifier(control, tokens, out)
    run(verifier.process([second]))
    run(verifier.process([first]))
    assert [a.source_offset for a in out.accepted_votes] == [2]
    assert [(r.source_offset, r.reason.value) for r in out.rejections] == [(1, "token_spent")]
    assert "out of offset order" in caplog.text
    assert tokens[first.key]["changed_offset"] == 2


def test_a_batch_handed_over_out_of_log_order_is_decided_in_log_order(scene):
    """After a seek back, Faust can put an old buffered record before a re-fetched earlier one."""
    keys, ring, control = scene
    honest = _vote(1, keys, ring, 0, sub="s3", slot=1)
    second = _vote(2, keys, ring, 0, sub="s1", slot=1)
    out, tokens = VerifyOut(), {}
    run(_verifier(control, tokens, out).process([second, honest, second]))
    assert [a.source_offset for a in out.accepted_votes] == [1]
    assert [(r.source_offset, r.reason.value) for r in out.rejections] == [(2, "token_spent")]


def test_a_batch_prepared_before_the_one_ahead_of_it_is_applied_decides_the_same(scene):
    """The worker prepares batch n+1 (its signature checks start) while batch n is
    applied: outcomes must be those of deciding the batches one after the other."""
    keys, ring, control = scene
    first = [_vote(1, keys, ring, 0), _forged(keys, ring, 1, 2)]
    second = [
        _vote(3, keys, ring, 0, sub="s2", vote_type="reject"),  # spent by batch 1
        _vote(4, keys, ring, 1, sub="s2"),  # forged in batch 1: unspent, accepted now
        _vote(5, keys, ring, 2, sub="s2"),
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
        accepted, rejected = _outcomes(out)
        outcomes.append((sorted(o for _, o in accepted), sorted(rejected, key=lambda r: r[1])))
    assert outcomes[0] == outcomes[1] == ([1, 4, 5], [("bad_signature", 2), ("token_spent", 3)])


def test_a_vote_whose_check_was_not_foreseen_is_checked_when_applied(scene):
    """Selection is only a saving: a vote prepared while its tag looked spent (a state
    that changed before it was applied) is still decided on its own signature check,
    which can fail."""
    keys, ring, control = scene
    honest, forged = _vote(3, keys, ring, 3, sub="s3"), _forged(keys, ring, 2, 4, sub="s3")
    stale = {"spent_by": "x", "spent_digest": "d", "key_image": "", "changed_offset": 0}
    tokens = {honest.key: stale, forged.key: stale}
    out = VerifyOut()

    async def drive(verifier):
        prepared = await verifier.prepare([honest, forged])
        assert all(p.check is None for p in prepared.parsed)  # looked spent: nothing selected
        tokens.clear()  # e.g. restored from an older changelog
        await verifier.apply(prepared)

    run(drive(_verifier(control, tokens, out)))
    assert _outcomes(out) == ([(_tag(keys, 3), 3)], [("bad_signature", 4)])


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
