"""F5 (design, fixed): token lifecycle events on the votes topic must come from the issuer.

DESIGN.md puts TokenIssued and TokenRevoked on the votes topic (one ordered log
per token), and Kafka ACLs cannot tell them apart from votes (same topic). So,
before token events were signed, any producer allowed to publish votes could

* mint tokens for itself: a ring member publishes ``TokenIssued`` for a fresh
  token id and then votes with it, beyond the per-credential per-epoch token
  budget (one vote per submission still holds: key images);
* revoke anyone's unspent token: a ``TokenRevoked`` for a token id it has seen
  or guessed makes its owner's vote ``token_revoked``.

The fix (agents/issuer.py, docs/security.md): the issuer signs TokenIssued,
TokenRevoked and CredentialRevoked with its own key (a ring signature over a
ring of one); the workers know only its public key(s). A token event that no
trusted key signed changes nothing and becomes an ``unauthorized_token_event``
rejection. The revocation fan-out runs in the workers and cannot sign, so the
TokenRevoked records it writes embed the signed CredentialRevoked, which
revokes only tokens issued to that credential.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime

import pytest

import ringcrypto
from agents.control import ControlState
from agents.issuer import IssuerKeys
from agents.records import SourceRecord
from agents.revocation import RevocationFanout
from agents.verify import VoteVerifier
from connectors.sdk.issuer import Issuer
from connectors.sdk.vote import build_vote
from models import CredentialRevoked, Ring, Submission, TokenIssued, TokenRevoked
from models.internal import CredentialToken
from streams.settings import Settings
from tests.fixtures.issuer import ISSUER, issuer_keys

SETTINGS = Settings(topic_prefix="authz", partitions=1)
VOTES = SETTINGS.topic("votes")
KEYS = [ringcrypto.SecretKey.from_seed(hashlib.sha256(b"authz%d" % i).digest()) for i in range(3)]
RING = ringcrypto.Ring([k.public_key for k in KEYS])
#: A ring member who signs token events with its own reviewer key.
VOTER = Issuer(KEYS[1])
OWNER, OTHER = "cd" * 32, "ef" * 32
AT = datetime(2026, 1, 1, tzinfo=UTC)
UNAUTHORIZED = "unauthorized_token_event"


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


def _verifier(issuer: IssuerKeys | None = None) -> tuple[VoteVerifier, _Out, dict]:
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
    out, tokens = _Out(), {}
    verifier = VoteVerifier(
        control=control,
        tokens=tokens,
        outputs=out,
        verify_batch=ringcrypto.verify_batch,
        verify_one=ringcrypto.verify,
        issuer=issuer or issuer_keys(),
    )
    return verifier, out, tokens


def _issue(token: str, by: Issuer = ISSUER, credential: str = OWNER) -> bytes:
    return by.token_issued(token, credential_hash=credential, epoch=1, issued_at=AT).to_json()


def _unsigned_issue(token: str) -> bytes:
    return TokenIssued(token_id=token, credential_hash=OWNER, epoch=1, issued_at=AT).to_json()


def _copied_signature_issue(token: str) -> bytes:
    """A genuine issuance's signature pasted onto another token id."""
    genuine = ISSUER.token_issued("genuine", credential_hash=OWNER, epoch=1, issued_at=AT)
    return genuine.model_copy(update={"token_id": token}).to_json()


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


def _embedding(token: str, revocation: CredentialRevoked, reason: str = "r") -> bytes:
    return TokenRevoked(token_id=token, reason=reason, credential_revocation=revocation).to_json()


def _records(*values: tuple[str, bytes], start: int = 0) -> list[SourceRecord]:
    return [
        SourceRecord(VOTES, 0, start + i, token.encode(), value)
        for i, (token, value) in enumerate(values)
    ]


def _reasons(out: _Out) -> list[tuple[int, str]]:
    return [(r.source_offset, r.reason.value) for r in out.rejections]


@pytest.mark.parametrize(
    "forge",
    [_unsigned_issue, lambda t: _issue(t, by=VOTER), _copied_signature_issue],
    ids=["unsigned", "signed-by-a-voter", "copied-signature"],
)
def test_a_voter_cannot_mint_its_own_token(forge):
    verifier, out, tokens = _verifier()
    asyncio.run(
        verifier.process(
            _records(("self-minted", forge("self-minted")), ("self-minted", _vote("self-minted")))
        )
    )
    assert out.accepted_votes == [], "a self-issued token was spent by a valid vote"
    assert _reasons(out) == [(0, UNAUTHORIZED), (1, "unknown_token")]
    assert b"self-minted" not in tokens and out.index == []  # unknown, never indexed


_STRANGER_REVOCATIONS = {
    "signed-by-a-voter": lambda: VOTER.token_revoked("t1", "griefing").to_json(),
    "embedded-revocation-signed-by-a-voter": lambda: _embedding(
        "t1", VOTER.credential_revoked(OWNER, "griefing")
    ),
    "embedded-unsigned-revocation": lambda: _embedding(
        "t1", CredentialRevoked(credential_hash=OWNER, reason="griefing")
    ),
    "embedded-genuine-revocation-of-another-credential": lambda: _embedding(
        "t1", ISSUER.credential_revoked(OTHER, "really revoked")
    ),
}


@pytest.mark.parametrize("forge", _STRANGER_REVOCATIONS.values(), ids=_STRANGER_REVOCATIONS)
def test_a_stranger_cannot_revoke_someone_elses_token(forge):
    verifier, out, tokens = _verifier()
    asyncio.run(verifier.process(_records(("t1", _issue("t1")))))  # the real issuer
    asyncio.run(
        verifier.process(_records(("t1", forge()), ("t1", _vote("t1")), start=1))  # owner votes
    )
    assert _reasons(out) == [(1, UNAUTHORIZED)], "the stranger's revocation was not refused"
    assert len(out.accepted_votes) == 1 and tokens[b"t1"]["phase"] == "spent"


def test_a_token_revocation_with_no_authorisation_is_malformed():
    verifier, out, _ = _verifier()
    bare = json.dumps({"type": "token_revoked", "token_id": "t1", "reason": "x"}).encode()
    asyncio.run(verifier.process(_records(("t1", _issue("t1")), ("t1", bare), ("t1", _vote("t1")))))
    assert _reasons(out) == [(1, "malformed")] and len(out.accepted_votes) == 1


def test_the_issuers_own_revocations_still_revoke():
    """Directly (its signature) and fanned out (its signed CredentialRevoked, embedded)."""
    verifier, out, tokens = _verifier()
    fanned = _embedding("t2", ISSUER.credential_revoked(OWNER, "leaked"), reason="not signed")
    asyncio.run(
        verifier.process(
            _records(
                ("t1", _issue("t1")),
                ("t2", _issue("t2")),
                ("t1", ISSUER.token_revoked("t1", "lost").to_json()),
                ("t2", fanned),
                ("t1", _vote("t1")),
                ("t2", _vote("t2")),
            )
        )
    )
    assert _reasons(out) == [(4, "token_revoked"), (5, "token_revoked")]
    assert out.accepted_votes == []
    assert tokens[b"t1"]["revoked_reason"] == "lost"
    # the reason recorded is the signed one, not the TokenRevoked's own text
    assert tokens[b"t2"]["revoked_reason"] == "credential revoked: leaked"


def test_a_redelivered_revocation_is_decided_as_the_first_time():
    verifier, out, tokens = _verifier()
    records = _records(
        ("t1", _issue("t1")),
        ("t1", _embedding("t1", ISSUER.credential_revoked(OWNER, "leaked"))),
    )
    asyncio.run(verifier.process(records))
    asyncio.run(verifier.process(records))  # a crash before the commit: all again
    assert out.rejections == [] and tokens[b"t1"]["changed_offset"] == 1


def test_key_rotation_accepts_both_trusted_keys_and_no_other():
    new = Issuer(ringcrypto.SecretKey.from_seed(hashlib.sha256(b"authz new issuer").digest()))
    calls = []

    def counting_verify(*args):  # noqa: ANN002, ANN202 - the real check, counted
        calls.append(args[0])
        return ringcrypto.verify(*args)

    keys = IssuerKeys([ISSUER.public_key, new.public_key], verify=counting_verify)
    verifier, out, tokens = _verifier(keys)
    asyncio.run(
        verifier.process(
            _records(
                ("old", _issue("old", by=ISSUER)),
                ("new", _issue("new", by=new)),
                ("voter", _issue("voter", by=VOTER)),
                ("old", _vote("old")),
                ("new", _vote("new")),
            )
        )
    )
    assert _reasons(out) == [(2, UNAUTHORIZED)]
    assert sorted(a.token_id for a in out.accepted_votes) == ["new", "old"]
    # once a key's signature verified, that key is tried first: one check per genuine event
    calls.clear()
    assert keys.check(new.token_revoked("x", "y")) is None and len(calls) == 1
    assert keys.check(VOTER.token_revoked("x", "y")) is not None and len(calls) == 3


# --- the revocation fan-out ---------------------------------------------------------------


class _FanoutOut:
    def __init__(self) -> None:
        self.revoked: list[tuple[str, CredentialRevoked]] = []
        self.rejections: list = []

    async def token_revoked(self, token_id, revocation):  # noqa: ANN001
        self.revoked.append((token_id, revocation))

    async def rejection(self, key, r):  # noqa: ANN001
        self.rejections.append(r)


def _fanout() -> tuple[RevocationFanout, _FanoutOut, dict]:
    out, state = _FanoutOut(), {}
    fanout = RevocationFanout(
        revocations_topic=SETTINGS.topic("revocations"),
        state=state,
        outputs=out,
        issuer=issuer_keys(),
    )
    index = SETTINGS.topic("credential-index")
    entry = CredentialToken(credential_hash=OWNER, token_id="t1", epoch=1).to_json()
    asyncio.run(fanout.process([SourceRecord(index, 0, 0, OWNER.encode(), entry)]))
    return fanout, out, state


@pytest.mark.parametrize(
    "revocation",
    [
        CredentialRevoked(credential_hash=OWNER, reason="griefing"),
        VOTER.credential_revoked(OWNER, "griefing"),
    ],
    ids=["unsigned", "signed-by-a-voter"],
)
def test_the_fanout_refuses_a_credential_revocation_the_issuer_did_not_sign(revocation):
    fanout, out, state = _fanout()
    before = dict(state)
    record = SourceRecord(SETTINGS.topic("revocations"), 0, 0, OWNER.encode(), revocation.to_json())
    asyncio.run(fanout.process([record]))
    assert [r.reason.value for r in out.rejections] == [UNAUTHORIZED]
    assert out.revoked == [] and state == before


def test_the_fanout_embeds_the_signed_revocation_in_every_token_revocation():
    fanout, out, _ = _fanout()
    revocation = ISSUER.credential_revoked(OWNER, "leaked")
    topic = SETTINGS.topic("revocations")
    asyncio.run(fanout.process([SourceRecord(topic, 0, 0, OWNER.encode(), revocation.to_json())]))
    # a token issued after the revocation is revoked as soon as the index hears of it
    later = CredentialToken(credential_hash=OWNER, token_id="t2", epoch=1).to_json()
    index = SETTINGS.topic("credential-index")
    asyncio.run(fanout.process([SourceRecord(index, 0, 1, OWNER.encode(), later)]))
    assert out.rejections == [] and out.revoked == [("t1", revocation), ("t2", revocation)]
    assert issuer_keys().check(out.revoked[1][1]) is None
