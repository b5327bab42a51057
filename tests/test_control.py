"""The control plane as the verifier sees it (agents.control), without Kafka.

Ring versions are in force by broker time: a vote stamped ``t`` that names
version ``v`` passes only if ``v`` is the highest version whose
``effective_from = max(valid_from, its record's broker timestamp)`` is at
most ``t`` (docs/protocol.md). Control records are registrar-signed and
immutable; what changes nothing gets a verdict (published as a rejection).
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest

import ringcrypto
from agents.control import ControlRecord, ControlState
from models.control import Ring, Submission
from models.reasons import ReasonCode
from streams.settings import Settings
from tests.fixtures.votes import registrar_keys, signed

SETTINGS = Settings(topic_prefix="unit", partitions=4)
RINGS, SUBMISSIONS = SETTINGS.topic("rings"), SETTINGS.topic("submissions")
KEYS = [ringcrypto.SecretKey.from_seed(bytes([i]) * 32) for i in range(1, 5)]
_offsets = itertools.count()


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _ring(version: int, *, valid_from_ms: int = 0, keys=KEYS, k: int = 2, **changes) -> Ring:
    fields = dict(
        ring_id="r1",
        version=version,
        genre="g",
        epoch=1,
        public_keys=[key.public_key.hex() for key in keys],
        votes_per_epoch=k,
        valid_from=_at(valid_from_ms),
    )
    return Ring(**{**fields, **changes})


def _record(model: Ring | Submission, ts: int, *, key: bytes | None = None) -> ControlRecord:
    topic = RINGS if isinstance(model, Ring) else SUBMISSIONS
    ident = model.ring_id if isinstance(model, Ring) else model.submission_id
    return ControlRecord(
        topic, 0, next(_offsets), ts, ident.encode() if key is None else key, model.to_json()
    )


def _state(*records: tuple[Ring | Submission, int]) -> ControlState:
    state = ControlState(SETTINGS, registrar=registrar_keys())
    state.apply(_record(signed(Submission(submission_id="s1", genre="g", epoch=1)), 10))
    for model, ts in records:
        assert state.apply(_record(signed(model), ts)) is None, model
    return state


def _lookup(state: ControlState, version: int, t: int, *, slot: int = 0, sub: str = "s1"):
    return state.lookup(
        submission_id=sub, ring_id="r1", ring_version=version, epoch=1, slot=slot, timestamp_ms=t
    )


# The log: (version, valid_from ms, record's broker timestamp ms).
# v1 backdated (valid_from before its record): effective at its record, 1000.
# v2 effective at its record, 2000. v3 announced for 5000, appended at 3000.
# v4 appended at 4000, valid at once: it overtakes v3, which is never in force.
LOG = [(1, 0, 1000), (2, 1500, 2000), (3, 5000, 3000), (4, 0, 4000)]


def _expected(t: int) -> int | None:
    """The definition, independently of agents.control: the highest version with
    effective_from <= t."""
    effective = [v for v, valid, ts in LOG if max(valid, ts) <= t]
    return max(effective, default=None)


@pytest.mark.parametrize("t", [999, 1000, 1999, 2000, 2999, 3000, 3999, 4000, 4999, 5000, 9999])
def test_a_vote_is_accepted_only_for_the_highest_version_in_force_at_its_broker_time(t):
    """Fails if effective_from ignored valid_from (v3 would be in force at 3000) or the
    record's timestamp (v1 and v2 would be in force before they were appended), or if the
    latest-effective rather than the highest effective version won (v3 at 5000)."""
    state = _state(*((_ring(v, valid_from_ms=valid), ts) for v, valid, ts in LOG))
    in_force = _expected(t)
    for version in range(1, 5):
        result = _lookup(state, version, t)
        if version == in_force:
            assert result.reason is None and result.ring.model.version == version, (t, version)
        else:
            appended = LOG[version - 1][2] <= t
            expected = ReasonCode.RING_NOT_IN_FORCE if appended else ReasonCode.UNKNOWN_RING
            assert result.reason is expected, (t, version, result.detail)


def test_a_decision_does_not_depend_on_how_far_the_copy_has_read():
    """Live, the control reader may be ahead of the votes; a replay has read everything.

    A vote stamped before version 2 was appended gets the same answer either way
    (fails if a version appended after the vote counted as known).
    """
    early = _state((_ring(1), 1000))
    late = _state((_ring(1), 1000), (_ring(2), 2000))
    for version in (1, 2):
        a, b = _lookup(early, version, 1500), _lookup(late, version, 1500)
        assert (a.reason, a.detail) == (b.reason, b.detail)
    assert _lookup(late, 2, 1500).reason is ReasonCode.UNKNOWN_RING


def test_a_rotation_that_drops_a_key_takes_effect_at_its_broker_time():
    state = _state((_ring(1), 1000), (_ring(2, keys=KEYS[:3]), 2000))
    assert _lookup(state, 1, 1999).reason is None
    assert _lookup(state, 1, 2000).reason is ReasonCode.RING_NOT_IN_FORCE
    assert KEYS[3].public_key not in _lookup(state, 2, 2000).ring.crypto


def test_a_deactivated_version_accepts_no_vote():
    state = _state((_ring(1), 1000), (_ring(2, active=False), 2000))
    assert _lookup(state, 2, 2500).reason is ReasonCode.INACTIVE_RING


def test_republishing_a_version_with_other_content_is_a_conflict_and_changes_nothing():
    state = _state((_ring(1), 1000))
    other = signed(_ring(1, keys=KEYS[:2]))
    verdict = state.apply(_record(other, 1100))
    assert verdict is not None and verdict.reason is ReasonCode.CONTROL_CONFLICT
    assert "publish version 2" in verdict.detail
    assert len(_lookup(state, 1, 1200).ring.crypto) == 4  # the first record still holds


def test_republishing_a_version_identically_is_a_no_op_even_re_signed():
    """The registrar's signature is randomised: the same content signed again is the same
    version (fails if the records, signature included, were compared)."""
    state = _state((_ring(1), 1000))
    again = signed(_ring(1))
    assert again.registrar_signature != signed(_ring(1)).registrar_signature
    assert state.apply(_record(again, 1100)) is None
    assert len(state.rings["r1"].versions) == 1 and not state.verdicts


def test_a_gap_in_the_versions_is_a_conflict():
    state = _state((_ring(1), 1000))
    verdict = state.apply(_record(signed(_ring(3)), 2000))
    assert verdict.reason is ReasonCode.CONTROL_CONFLICT and "next version is 2" in verdict.detail
    assert _lookup(state, 3, 2500).reason is ReasonCode.UNKNOWN_RING
    assert state.apply(_record(signed(_ring(2)), 3000)) is None  # the right next one still goes


def test_a_first_version_that_is_not_1_is_a_conflict():
    state = _state()
    assert state.apply(_record(signed(_ring(2)), 1000)).reason is ReasonCode.CONTROL_CONFLICT


def test_a_submission_is_immutable():
    state = _state()
    same = signed(Submission(submission_id="s1", genre="g", epoch=1))
    assert state.apply(_record(same, 20)) is None
    other = signed(Submission(submission_id="s1", genre="other", epoch=1))
    assert state.apply(_record(other, 30)).reason is ReasonCode.CONTROL_CONFLICT
    assert state.submissions["s1"].model.genre == "g"


FOREIGN = ringcrypto.SecretKey.from_seed(b"\x09" * 32)


@pytest.mark.parametrize(
    "make",
    [
        lambda model: model,  # unsigned
        lambda model: signed(model, FOREIGN),  # signed, by a key no worker trusts
        lambda model: signed(model).model_copy(update={"epoch": 2}),  # altered after signing
    ],
    ids=["unsigned", "foreign-signed", "altered"],
)
@pytest.mark.parametrize("batched", [False, True], ids=["apply", "apply_batch"])
def test_control_records_the_registrar_did_not_sign_are_unauthorized_and_change_nothing(
    make, batched
):
    """Both paths: apply() checks one record, apply_batch() (the reader's) checks a batch's
    signatures in a thread; they must agree."""
    state = ControlState(SETTINGS, registrar=registrar_keys())
    records = [
        _record(make(_ring(1)), 1000),
        _record(make(Submission(submission_id="s9", genre="g", epoch=1)), 1000),
    ]
    if batched:
        asyncio.run(state.apply_batch(records))
        verdicts = [state.verdicts.get((r.topic, r.partition, r.offset)) for r in records]
    else:
        verdicts = [state.apply(r) for r in records]
    assert [v.reason for v in verdicts] == [ReasonCode.UNAUTHORIZED_CONTROL_EVENT] * 2
    assert "r1" not in state.rings or not state.rings["r1"].versions
    assert "s9" not in state.submissions
    # ... and the genuine version 1 still takes the place the forged one asked for
    assert state.apply(_record(signed(_ring(1)), 2000)) is None


def test_a_record_keyed_other_than_its_id_is_malformed():
    state = _state()
    verdict = state.apply(_record(signed(_ring(1)), 1000, key=b"r2"))
    assert verdict.reason is ReasonCode.MALFORMED and "r1" in verdict.detail


def test_a_control_record_with_a_producer_timestamp_changes_nothing():
    """A ring version whose record kept its producer's timestamp (CreateTime: written before
    the topic was repaired, or after someone set it back) would take effect when its
    producer said. Fails if ControlState.parse ignores the record's timestamp type."""
    import dataclasses

    state = _state()
    record = dataclasses.replace(_record(signed(_ring(1)), 1000), timestamp_type=0)
    verdict = state.apply(record)
    assert verdict is not None and verdict.reason is ReasonCode.MALFORMED, verdict
    assert "CreateTime" in verdict.detail and "r1" not in state.rings
    appended = dataclasses.replace(_record(signed(_ring(1)), 1000), timestamp_type=1)
    assert state.apply(appended) is None and len(state.rings["r1"].versions) == 1


def test_a_vote_stamped_before_its_submission_was_appended_is_unknown_submission():
    """Live or replayed: the copy may hold the submission already; the vote came first."""
    state = _state((_ring(1), 1000))
    state.apply(_record(signed(Submission(submission_id="s2", genre="g", epoch=1)), 3000))
    assert _lookup(state, 1, 2999, sub="s2").reason is ReasonCode.UNKNOWN_SUBMISSION
    assert _lookup(state, 1, 3000, sub="s2").reason is None


@pytest.mark.parametrize("k", [1, 3])
def test_a_slot_at_or_above_votes_per_epoch_is_out_of_range(k):
    state = _state((_ring(1, k=k), 1000))
    assert _lookup(state, 1, 2000, slot=k - 1).reason is None
    result = _lookup(state, 1, 2000, slot=k)
    assert result.reason is ReasonCode.SLOT_OUT_OF_RANGE and f"slots 0..{k - 1}" in result.detail


def test_genre_and_epoch_must_match_the_submission():
    state = _state((_ring(1, genre="h"), 1000))
    assert _lookup(state, 1, 2000).reason is ReasonCode.RING_GENRE_MISMATCH
    state = _state((_ring(1, epoch=2), 1000))
    assert _lookup(state, 1, 2000).reason is ReasonCode.EPOCH_MISMATCH


class ReadingControl(ControlState):
    """A copy that reads topics (so cover() may wait), fed by hand."""

    reading = True


def test_cover_waits_until_the_copy_has_read_up_to_the_votes_broker_time():
    async def scenario():
        state = ReadingControl(SETTINGS, registrar=registrar_keys())
        await state.advance(4000)
        await state.cover(3000)  # already covered: returns at once
        waiting = asyncio.create_task(state.cover(5000))
        await state.advance(4999)
        for _ in range(5):
            await asyncio.sleep(0)  # let it run: it must still wait
        assert not waiting.done()
        await state.advance(5000)
        await asyncio.wait_for(waiting, 5.0)

    asyncio.run(scenario())


def test_a_worker_whose_keys_match_no_signer_says_so_once_with_the_fix(caplog):
    """Control records signed, but never by a trusted key: one warning naming the setting
    (issue 18: before, every token was rejected with no hint). Fails on the old code."""
    other = ringcrypto.SecretKey.from_seed(b"\x09" * 32)
    state = ControlState(SETTINGS, registrar=registrar_keys())
    foreign = [
        _record(signed(Submission(submission_id=f"f{i}", genre="g", epoch=1), other), 10 + i)
        for i in range(3)
    ]
    with caplog.at_level("WARNING", logger="agents.control"):
        asyncio.run(state.apply_batch(foreign[:2]))
        asyncio.run(state.apply_batch(foreign[2:]))
    warnings = [r.getMessage() for r in caplog.records if "registrar key" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "2 signed control record(s) and none signed by a registrar key" in warnings[0]
    assert "RINGTALLY_REGISTRAR_PUBLIC_KEYS" in warnings[0]


def test_a_worker_that_trusts_a_signer_gives_no_key_warning(caplog):
    other = ringcrypto.SecretKey.from_seed(b"\x09" * 32)
    state = ControlState(SETTINGS, registrar=registrar_keys())
    records = [
        _record(signed(Submission(submission_id="mine", genre="g", epoch=1)), 10),
        _record(signed(Submission(submission_id="forged", genre="g", epoch=1), other), 11),
    ]
    with caplog.at_level("WARNING", logger="agents.control"):
        asyncio.run(state.apply_batch(records))
    assert not [r for r in caplog.records if "registrar key" in r.getMessage()]
    assert (state.trusted_signatures, state.untrusted_signatures) == (1, 1)
