"""Wire models: strict parsing, caps, the canonical signed messages, schema freshness."""

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from models import (
    MAX_RING_MEMBERS,
    Ballot,
    ReasonCode,
    Rejection,
    Ring,
    Submission,
    VoteCast,
    VoteCounts,
    VoteType,
    parse_votes_message,
    vote_signing_bytes,
)
from models.encoding import REGISTRAR_CONTEXT, ring_signing_bytes, submission_signing_bytes
from models.internal import VOTE_ID_NAMESPACE, vote_id_for_token
from models.schema import main as schema_main
from models.schema import render_schemas

SIG = base64.b64encode(b"\x01" + bytes(96)).decode()
TAG = "ab" * 32


def _vote(**overrides):
    fields = {
        "vote_id": str(vote_id_for_token(TAG)),
        "submission_id": "sub-1",
        "ring_id": "ring-a",
        "ring_version": 2,
        "vote_type": "approve",
        "epoch": 4,
        "slot": 3,
        "token_id": TAG,
        "signature": SIG,
        "type": "vote_cast",
    }
    fields.update(overrides)
    return json.dumps(fields).encode()


def test_the_votes_topic_carries_votes_only():
    """v1's TokenIssued/TokenRevoked are gone from the votes topic: they are malformed now."""
    assert isinstance(parse_votes_message(_vote()), VoteCast)
    issued = {"type": "token_issued", "token_id": "t", "credential_hash": "ab" * 32, "epoch": 1}
    with pytest.raises(ValidationError):
        parse_votes_message(json.dumps(issued).encode())


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"{}",
        b"[]",
        _vote(type="vote_kast"),
        _vote(epoch="4"),  # strict: no str -> int coercion
        _vote(epoch=-1),
        _vote(epoch=2**32),
        _vote(slot=-1),
        _vote(slot=1024),  # above any ring's votes_per_epoch
        _vote(ring_version=0),
        _vote(ring_version=2**32),
        _vote(vote_type="maybe"),
        _vote(vote_id="not-a-uuid"),
        _vote(token_id="tok-1"),  # not a point's hex
        _vote(token_id=TAG.upper()),
        _vote(submission_id=""),
        _vote(submission_id="x" * 129),
        _vote(submission_id="has space"),
        _vote(signature="***"),
        _vote(signature="AQ"),  # unpadded: not canonical
        _vote(signature="A" * 200_000),  # over the cap
        _vote(extra_field=1),
        _vote(ring_version=None),
    ],
)
def test_malformed_votes_raise_validation_error(payload):
    with pytest.raises(ValidationError):
        parse_votes_message(payload)


def test_signing_bytes_cover_every_field_but_the_signature():
    base = VoteCast.model_validate_json(_vote())
    changed = {
        "vote_id": str(uuid.UUID(int=8)),
        "submission_id": "sub-2",
        "ring_id": "ring-b",
        "ring_version": 3,
        "vote_type": "reject",
        "token_id": "cd" * 32,
        "epoch": 5,
        "slot": 4,
    }
    assert set(changed) | {"signature", "type"} == set(VoteCast.model_fields)
    seen = {base.signing_bytes()}
    for field, value in changed.items():
        other = VoteCast.model_validate_json(_vote(**{field: value}))
        assert other.signing_bytes() not in seen, field
        seen.add(other.signing_bytes())
    other_sig = base64.b64encode(b"\x02" + bytes(96)).decode()
    assert VoteCast.model_validate_json(_vote(signature=other_sig)).signing_bytes() == (
        base.signing_bytes()
    )


def test_vote_signing_bytes_match_the_fixed_vector():
    """models/encoding.py's vote layout, byte by byte (native/SPEC.md, Vote message)."""
    vote = VoteCast.model_validate_json(_vote())
    assert vote.signing_bytes().hex() == (
        "00000011" + b"ringtally/vote/v2".hex()
        + "00000010" + vote_id_for_token(TAG).bytes.hex()
        + "00000005" + b"sub-1".hex()
        + "00000006" + b"ring-a".hex()
        + "00000002"  # u32 ring_version
        + "00000007" + b"approve".hex()
        + "00000040" + TAG.encode().hex()  # the token id's hex text
        + "0000000000000004"  # u64 epoch
        + "00000003"  # u32 slot
    )  # fmt: skip
    assert vote.epoch_bytes() == bytes.fromhex("0000000000000004") and vote.context() == b"sub-1"


def test_signing_bytes_are_injective_across_field_boundaries():
    """Length prefixes: moving a character from one field to the next changes the bytes."""
    fields = dict(vote_type="approve", token_id=TAG, epoch=1, slot=0, ring_version=1)
    a = vote_signing_bytes(vote_id=uuid.UUID(int=1), submission_id="ab", ring_id="c", **fields)
    b = vote_signing_bytes(vote_id=uuid.UUID(int=1), submission_id="a", ring_id="bc", **fields)
    assert a != b


def test_the_vote_id_is_uuid5_of_the_token_id_text():
    """What the schema tells producers; fails if the namespace or the name's form changed."""
    assert VOTE_ID_NAMESPACE == uuid.UUID("d24b4bfc-31aa-5c5e-827f-955cf2a17a90")
    assert vote_id_for_token(TAG) == uuid.uuid5(VOTE_ID_NAMESPACE, TAG)
    schema = json.loads(render_schemas()["votes.schema.json"])
    assert str(VOTE_ID_NAMESPACE) in schema["properties"]["vote_id"]["description"]
    assert "murmur2" in schema["description"]


def _ring(**changes):
    fields = dict(
        ring_id="r",
        version=1,
        genre="g",
        epoch=1,
        public_keys=["11" * 32],
        votes_per_epoch=2,
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return Ring(**{**fields, **changes})


@pytest.mark.parametrize(
    "changes",
    [
        {"public_keys": []},
        {"public_keys": ["11" * 32] * (MAX_RING_MEMBERS + 1)},
        {"public_keys": ["zz" * 32]},
        {"version": 0},
        {"votes_per_epoch": 0},
        {"votes_per_epoch": 1025},
        {"valid_from": datetime(2026, 1, 1)},  # no timezone: the instant is undefined
        {"registrar_signature": "***"},
        {"registrar_signature": "A" * 400},  # longer than any ring-of-one signature
    ],
)
def test_ring_versions_are_checked(changes):
    with pytest.raises(ValidationError):
        _ring(**changes)


def test_an_unsigned_ring_parses_so_that_it_can_be_rejected_with_its_reason():
    assert _ring().registrar_signature is None and _ring().registrar_signature_bytes() is None


def test_outputs_round_trip_through_json():
    ballot = Ballot(
        vote_id=uuid.uuid4(),
        submission_id="s",
        key_image="aa" * 32,
        vote_type=VoteType.FLAG,
        ring_id="r",
        epoch=1,
        source_partition=3,
        source_offset=99,
    )
    assert Ballot.model_validate_json(ballot.to_json()) == ballot
    rejection = Rejection(
        reason=ReasonCode.WRONG_PARTITION,
        detail="on partition 1",
        payload_b64="eA==",
        source_topic="ringtally.votes",
        source_partition=0,
        source_offset=1,
    )
    assert Rejection.model_validate_json(rejection.to_json()) == rejection


def test_vote_counts_plus_and_total():
    counts = VoteCounts().plus(VoteType.APPROVE).plus(VoteType.FLAG).plus(VoteType.APPROVE)
    assert (counts.approve, counts.flag, counts.total) == (2, 1, 3)


def test_every_reason_code_has_a_meaning():
    assert len({r.value for r in ReasonCode}) == len(ReasonCode)
    for reason in ReasonCode:
        assert reason.meaning and reason.meaning != reason.value
    assert ReasonCode("unknown_token").meaning.startswith("(v1)")  # old rejections still parse


def test_exported_schemas_match_the_models(capsys):
    """Fails when a model changes without `python -m models.schema` being rerun."""
    assert schema_main(["--check"]) == 0, capsys.readouterr().out


# --- registrar-signed control records ---------------------------------------------------------

AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
HEAD = "00000016" + b"ringtally/registrar/v2".hex()  # lp(protocol)
SUBMISSION = Submission(submission_id="sub-1", genre="poetry", epoch=7)
RING = Ring(
    ring_id="ring-a",
    version=2,
    genre="poetry",
    epoch=7,
    public_keys=["11" * 32, "22" * 32],
    votes_per_epoch=3,
    valid_from=AT,
)


def test_registrar_signing_bytes_match_the_fixed_vectors():
    """models/encoding.py's layout, byte by byte: a change here breaks every signed record."""
    assert RING.signing_bytes().hex() == (
        HEAD
        + "00000004" + b"ring".hex()
        + "00000006" + b"ring-a".hex()
        + "00000002"  # u32 version
        + "00000006" + b"poetry".hex()
        + "0000000000000007"  # u64 epoch
        + "00000002" + "11" * 32 + "22" * 32  # u32 n, then the keys in message order
        + "00000003"  # u32 votes_per_epoch
        + "01"  # active
        + "0006475ef6574f35"  # i64 1767323045678901 microseconds since 1970 UTC
    )  # fmt: skip
    assert SUBMISSION.signing_bytes().hex() == (
        HEAD
        + "0000000a" + b"submission".hex()
        + "00000005" + b"sub-1".hex()
        + "00000006" + b"poetry".hex()
        + "0000000000000007"
    )  # fmt: skip
    assert REGISTRAR_CONTEXT == b"ringtally/v2/registrar"


#: The test registrar's signatures (tests/fixtures/votes.py, randomness 07..07 through
#: ringcrypto.hazmat.sign_with_randomness) of SUBMISSION and RING.
SUBMISSION_SIGNATURE = (
    "AU5rtlK06yNam0sa84rVIS1s0apl8SpA9P86txxZrE9ObXA2ngLRh+Xr9SirCoQ5yat4aJSqJh4cWp9xDezS5Aho"
    "4QAaxO7BB6YeOZ2dof0FzETxoD3dnwFi+4VjlzHiCQ=="
)
RING_SIGNATURE = (
    "AU5rtlK06yNam0sa84rVIS1s0apl8SpA9P86txxZrE9OWrGiYQy6CF8M8aTTx+3gyE8nAwePxGo4l3xwEj16DwAP"
    "KyoqyhVQILScPdsgwOC6msc7zufIAIga23b3ZMY0Cw=="
)


@pytest.mark.parametrize(
    ("record", "signature", "changes"),
    [
        (SUBMISSION, SUBMISSION_SIGNATURE, [{"epoch": 8}, {"genre": "prose"}]),
        (
            RING,
            RING_SIGNATURE,
            [
                {"version": 3},
                {"active": False},
                {"votes_per_epoch": 4},
                {"public_keys": ["11" * 32]},
            ],
        ),
    ],
    ids=["submission", "ring"],
)
def test_a_fixed_registrar_signature_verifies_over_the_model_signing_bytes(
    record, signature, changes
):
    """Known answer: a change to the signed bytes, the context or the signature scheme
    breaks it; any field changed after signing fails the check."""
    import ringcrypto
    from tests.fixtures.votes import REGISTRAR_KEY, registrar_keys

    assert REGISTRAR_KEY.public_key.hex() == (
        "24b1c97702915138398a9d90f00accc0f6955e095b74da9ea73f6b8736733f47"
    )
    signed = record.model_copy(update={"registrar_signature": signature})
    assert registrar_keys().check(signed) is None
    ring = ringcrypto.Ring([REGISTRAR_KEY.public_key])
    raw = base64.b64decode(signature)
    assert (
        ringcrypto.hazmat.sign_with_randomness(
            REGISTRAR_KEY, ring, REGISTRAR_CONTEXT, record.signing_bytes(), b"\x07" * 32
        )
        == raw
    )
    for changed in changes:
        assert registrar_keys().check(signed.model_copy(update=changed)) is not None, changed


def test_a_registrar_signature_over_one_kind_of_record_is_not_valid_for_another():
    """The record type is in the signed bytes: a submission's signature is not a ring's."""
    from tests.fixtures.votes import registrar_keys

    ring_with_submission_sig = RING.model_copy(update={"registrar_signature": SUBMISSION_SIGNATURE})
    assert registrar_keys().check(ring_with_submission_sig) is not None


def test_the_same_instant_in_another_timezone_signs_the_same_bytes():
    later_zone = AT.astimezone(timezone(timedelta(hours=2)))
    fields = dict(
        ring_id="r",
        version=1,
        genre="g",
        epoch=1,
        public_keys=[bytes(32)],
        votes_per_epoch=1,
        active=True,
    )
    assert ring_signing_bytes(**fields, valid_from=later_zone) == (
        ring_signing_bytes(**fields, valid_from=AT)
    )
    assert submission_signing_bytes(submission_id="s", genre="g", epoch=1) != (
        submission_signing_bytes(submission_id="s", genre="g", epoch=2)
    )
