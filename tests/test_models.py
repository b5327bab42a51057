"""Wire models: strict parsing, caps, the canonical signed message, schema freshness."""

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from models import (
    MAX_RING_MEMBERS,
    Ballot,
    CredentialRevoked,
    ReasonCode,
    Rejection,
    Ring,
    TokenIssued,
    TokenRevoked,
    VoteCast,
    VoteCounts,
    VoteType,
    parse_votes_message,
    vote_signing_bytes,
)
from models.encoding import (
    ISSUER_CONTEXT,
    credential_revoked_signing_bytes,
    token_issued_signing_bytes,
    token_revoked_signing_bytes,
)
from models.schema import main as schema_main

SIG = base64.b64encode(b"\x01" + bytes(96)).decode()


def _vote(**overrides):
    fields = {
        "vote_id": str(uuid.UUID(int=7)),
        "submission_id": "sub-1",
        "ring_id": "ring-a",
        "vote_type": "approve",
        "token_id": "tok-1",
        "epoch": 4,
        "signature": SIG,
        "type": "vote_cast",
    }
    fields.update(overrides)
    return json.dumps(fields).encode()


def test_votes_topic_union_dispatches_on_type():
    assert isinstance(parse_votes_message(_vote()), VoteCast)
    issued = TokenIssued(
        token_id="t", credential_hash="ab" * 32, epoch=1, issued_at=datetime.now(UTC)
    )
    assert parse_votes_message(issued.to_json()) == issued
    revoked = TokenRevoked(token_id="t", reason="lost", issuer_signature=SIG)
    assert parse_votes_message(revoked.to_json()) == revoked
    fanned = TokenRevoked(
        token_id="t",
        reason="credential revoked: leaked",
        credential_revocation=CredentialRevoked(
            credential_hash="ab" * 32, reason="leaked", issuer_signature=SIG
        ),
    )
    assert parse_votes_message(fanned.to_json()) == fanned


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
        _vote(vote_type="maybe"),
        _vote(vote_id="not-a-uuid"),
        _vote(submission_id=""),
        _vote(submission_id="x" * 129),
        _vote(submission_id="has space"),
        _vote(signature="***"),
        _vote(signature="AQ"),  # unpadded: not canonical
        _vote(signature="A" * 200_000),  # over the cap
        _vote(extra_field=1),
    ],
)
def test_malformed_votes_raise_validation_error(payload):
    with pytest.raises(ValidationError):
        parse_votes_message(payload)


def test_signing_bytes_cover_every_field_but_the_signature():
    base = VoteCast.model_validate_json(_vote())
    assert base.signing_bytes() == vote_signing_bytes(
        vote_id=uuid.UUID(int=7),
        submission_id="sub-1",
        ring_id="ring-a",
        vote_type="approve",
        token_id="tok-1",
        epoch=4,
    )
    changed = {
        "vote_id": str(uuid.UUID(int=8)),
        "submission_id": "sub-2",
        "ring_id": "ring-b",
        "vote_type": "reject",
        "token_id": "tok-2",
        "epoch": 5,
    }
    seen = {base.signing_bytes()}
    for field, value in changed.items():
        other = VoteCast.model_validate_json(_vote(**{field: value}))
        assert other.signing_bytes() not in seen, field
        seen.add(other.signing_bytes())
    other_sig = base64.b64encode(b"\x02" + bytes(96)).decode()
    assert VoteCast.model_validate_json(_vote(signature=other_sig)).signing_bytes() == (
        base.signing_bytes()
    )


def test_signing_bytes_are_injective_across_field_boundaries():
    """Length prefixes: moving a character from one field to the next changes the bytes."""
    a = vote_signing_bytes(
        vote_id=uuid.UUID(int=1),
        submission_id="ab",
        ring_id="c",
        vote_type="approve",
        token_id="t",
        epoch=1,
    )
    b = vote_signing_bytes(
        vote_id=uuid.UUID(int=1),
        submission_id="a",
        ring_id="bc",
        vote_type="approve",
        token_id="t",
        epoch=1,
    )
    assert a != b
    assert a.startswith(b"\x00\x00\x00\x11ringtally/vote/v1")


def test_ring_caps_members():
    key = "11" * 32
    with pytest.raises(ValidationError):
        Ring(ring_id="r", genre="g", epoch=1, public_keys=[])
    with pytest.raises(ValidationError):
        Ring(ring_id="r", genre="g", epoch=1, public_keys=[key] * (MAX_RING_MEMBERS + 1))
    with pytest.raises(ValidationError):
        Ring(ring_id="r", genre="g", epoch=1, public_keys=["zz" * 32])


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
        reason=ReasonCode.MALFORMED,
        detail="not JSON",
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


def test_exported_schemas_match_the_models(capsys):
    """Fails when a model changes without `python -m models.schema` being rerun."""
    assert schema_main(["--check"]) == 0, capsys.readouterr().out


# --- issuer-signed messages (finding F5) ---------------------------------------------------

AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
HEAD = "00000013" + b"ringtally/issuer/v1".hex()  # lp(protocol)
CRED = "00000020" + "ab" * 32  # lp(32 raw bytes of the credential hash)


def test_issuer_signing_bytes_match_the_fixed_vectors():
    """models/encoding.py's layout, byte by byte: a change here breaks every issued token."""
    issued = token_issued_signing_bytes(
        token_id="tok-1", credential_hash="ab" * 32, epoch=7, issued_at=AT
    )
    assert issued.hex() == (
        HEAD
        + "0000000c" + b"token_issued".hex()
        + "00000005" + b"tok-1".hex()
        + CRED
        + "0000000000000007"  # u64 epoch
        + "0006475ef6574f35"  # i64 1767323045678901 microseconds since 1970 UTC
    )  # fmt: skip
    assert token_revoked_signing_bytes(token_id="tok-1", reason="lost").hex() == (
        HEAD
        + "0000000d" + b"token_revoked".hex()
        + "00000005" + b"tok-1".hex()
        + "00000004" + b"lost".hex()
    )  # fmt: skip
    assert credential_revoked_signing_bytes(credential_hash="ab" * 32, reason="leaked").hex() == (
        HEAD
        + "00000012" + b"credential_revoked".hex()
        + CRED
        + "00000006" + b"leaked".hex()
    )  # fmt: skip
    assert ISSUER_CONTEXT == b"ringtally/v1/issuer"


def test_a_fixed_issuer_signature_verifies_over_the_model_signing_bytes():
    """Known answer: the test issuer's signature (randomness 07..07, hazmat) of the vector."""
    import ringcrypto
    from tests.fixtures.issuer import ISSUER, issuer_keys

    assert ISSUER.public_key.hex() == (
        "de55ce73b26bd0aac1f567490d84b6ac0933dad36d1fc3484fcfb296190d7c06"
    )
    signed = TokenIssued(
        token_id="tok-1",
        credential_hash="ab" * 32,
        epoch=7,
        issued_at=AT,
        issuer_signature="AU5PN8cPBoGdsiimcVqx7ZHPtiJX/cZPh0LYA21vVK19Bw0QeQcpRh8Ye2g+A8PC8RNk/OVTSGi6"
        "+xPhl7Y1twXeAChdNU7fsR2PPwpsZuGa8hFLHy3NwuWgAvKO9tqEDA==",
    )
    assert issuer_keys().check(signed) is None
    ring = ringcrypto.Ring([ISSUER.public_key])
    assert ringcrypto.verify(
        ring, ISSUER_CONTEXT, signed.signing_bytes(), signed.issuer_signature_bytes()
    )
    for changed in ({"epoch": 8}, {"token_id": "tok-2"}, {"issued_at": datetime.now(UTC)}):
        assert issuer_keys().check(signed.model_copy(update=changed)) is not None, changed


def test_the_same_instant_in_another_timezone_signs_the_same_bytes():
    from datetime import timedelta, timezone

    later_zone = AT.astimezone(timezone(timedelta(hours=2)))
    fields = {"token_id": "t", "credential_hash": "ab" * 32, "epoch": 1}
    assert token_issued_signing_bytes(**fields, issued_at=later_zone) == (
        token_issued_signing_bytes(**fields, issued_at=AT)
    )


@pytest.mark.parametrize(
    "payload",
    [
        {"issued_at": "2026-01-01T00:00:00"},  # no timezone: the instant is undefined
        {"issuer_signature": "***"},
        {"issuer_signature": "AQ"},  # not canonical base64
        {"issuer_signature": "A" * 400},  # longer than any ring-of-one signature
    ],
)
def test_malformed_token_issuances_raise_validation_error(payload):
    body = {
        "type": "token_issued",
        "token_id": "t",
        "credential_hash": "ab" * 32,
        "epoch": 1,
        "issued_at": "2026-01-01T00:00:00Z",
        **payload,
    }
    with pytest.raises(ValidationError):
        parse_votes_message(json.dumps(body).encode())


@pytest.mark.parametrize(
    "authorisation",
    [
        {},
        {
            "issuer_signature": SIG,
            "credential_revocation": {"credential_hash": "ab" * 32, "reason": "x"},
        },
    ],
    ids=["neither", "both"],
)
def test_a_token_revocation_carries_exactly_one_authorisation(authorisation):
    body = {"type": "token_revoked", "token_id": "t", "reason": "x", **authorisation}
    with pytest.raises(ValidationError, match="exactly one"):
        parse_votes_message(json.dumps(body).encode())


def test_the_unauthorized_reason_code_has_a_meaning():
    assert ReasonCode("unauthorized_token_event").meaning
