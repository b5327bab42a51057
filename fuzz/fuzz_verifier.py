"""atheris: the verify stage itself (``agents.verify.VoteVerifier``) on fuzzed batches.

Each input becomes a batch of 1-8 votes-topic records: mutated copies of a
valid vote (bytes replaced, inserted, cut; JSON fields swapped), raw bytes,
token issuances and revocations (issuer-signed, or unsigned: finding F5), under a
few token keys. The real verifier
runs with the real ``ringcrypto`` batch check, a dict for its token table and
lists for its outputs. Properties (DESIGN invariants 2-4):

* no exception escapes ``process`` (bad input becomes a rejection);
* no record gets two outcomes, and every record that is not a token
  event gets one (a rejection at its offset, or an accepted vote);
* every accepted vote carries a signature that ``ringcrypto.verify`` accepts
  over the message the verifier rebuilt, with that key image (no forgery);
* a token is spent by at most one vote (one distinct accepted digest per token).

    python fuzz/fuzz_verifier.py fuzz/corpus/verifier -max_total_time=120
"""

import asyncio
import base64
import hashlib
import json
import os
import sys

import atheris

with atheris.instrument_imports():
    from agents.control import ControlState
    from agents.issuer import IssuerKeys
    from agents.records import SourceRecord
    from agents.tokens import vote_digest
    from agents.verify import VoteVerifier
    from connectors.sdk.issuer import Issuer
    from models import Ring, Submission, TokenIssued
    from models.votes import VoteCast, parse_votes_message
    from streams.settings import Settings

from datetime import UTC, datetime

import ringcrypto

SETTINGS = Settings(topic_prefix="fuzz", partitions=1)
VOTES = SETTINGS.topic("votes")
KEYS = [ringcrypto.SecretKey.from_seed(hashlib.sha256(b"fuzz%d" % i).digest()) for i in range(4)]
RING = ringcrypto.Ring([k.public_key for k in KEYS])
ISSUER = Issuer(ringcrypto.SecretKey.from_seed(hashlib.sha256(b"fuzz issuer").digest()))
ISSUER_KEYS = IssuerKeys([ISSUER.public_key])
CONTROL = ControlState(SETTINGS)
CONTROL.apply(
    SETTINGS.topic("rings"),
    b"r1",
    Ring(
        ring_id="r1", genre="g", epoch=1, public_keys=[pk.hex() for pk in RING.public_keys]
    ).to_json(),
)
for _sub in ("s1", "s2"):
    CONTROL.apply(
        SETTINGS.topic("submissions"),
        _sub.encode(),
        Submission(submission_id=_sub, genre="g", epoch=1).to_json(),
    )
TOKENS = ["tok-1", "tok-2"]
from connectors.sdk.vote import build_vote  # noqa: E402

VALID = {
    (t, s, m): build_vote(
        KEYS[m],
        RING,
        submission_id=s,
        ring_id="r1",
        vote_type="approve",
        token_id=t,
        epoch=1,
        batchable=m % 2 == 0,
    ).to_json()
    for t in TOKENS
    for s in ("s1", "s2")
    for m in range(2)
}
_AT = datetime(2026, 1, 1, tzinfo=UTC)
ISSUE = {
    t: ISSUER.token_issued(t, credential_hash="ab" * 32, epoch=1, issued_at=_AT).to_json()
    for t in TOKENS
}
#: Unsigned: rejected unauthorized_token_event, the token stays unknown.
FORGED_ISSUE = {
    t: TokenIssued(token_id=t, credential_hash="ab" * 32, epoch=1, issued_at=_AT).to_json()
    for t in TOKENS
}
LOOP = asyncio.new_event_loop()
#: Finding F2 (fixed; tests/test_hostile_known_bugs.py): a TokenRevoked for a token with
#: no state crashed the verifier. FUZZ_SKIP_F2=1 only revokes issued tokens.
SKIP_F2 = os.environ.get("FUZZ_SKIP_F2") == "1"


class Out:
    def __init__(self) -> None:
        self.rejections: list = []
        self.accepted_votes: list = []

    async def rejection(self, key, r):  # noqa: ANN001
        self.rejections.append(r)

    async def accepted(self, v):  # noqa: ANN001
        self.accepted_votes.append(v)

    async def credential_token(self, e):  # noqa: ANN001
        pass


async def _no_sync(timeout: float = 0.0) -> bool:
    return True


CONTROL.sync = _no_sync  # no Kafka here: the control state is complete


def _record(fdp: atheris.FuzzedDataProvider) -> tuple[bytes | None, bytes | None]:
    token = fdp.PickValueInList(TOKENS)
    choice = fdp.ConsumeIntInRange(0, 7)
    if choice == 0:
        return token.encode(), (ISSUE if fdp.ConsumeBool() else FORGED_ISSUE)[token]
    if choice == 1:
        return token.encode(), ISSUER.token_revoked(token, "fuzz").to_json()
    if choice == 2:
        return fdp.ConsumeBytes(8) or None, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))
    value = bytearray(
        VALID[(token, fdp.PickValueInList(["s1", "s2"]), fdp.ConsumeIntInRange(0, 1))]
    )
    if choice == 3:
        return token.encode(), bytes(value)
    if choice == 4:  # overwrite a run of bytes
        at = fdp.ConsumeIntInRange(0, len(value) - 1)
        chunk = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 16))
        value[at : at + len(chunk)] = chunk
    elif choice == 5:  # change one field's value
        body = json.loads(value)
        name = fdp.PickValueInList(sorted(body))
        body[name] = fdp.PickValueInList(
            [
                fdp.ConsumeUnicodeNoSurrogates(12),
                fdp.ConsumeIntInRange(-2, 3),
                None,
                "s2",
                "r1",
                "tok-1",
                "tok-2",
                "reject",
            ]
        )
        value = bytearray(json.dumps(body).encode())
    elif choice == 6:  # corrupt the decoded signature
        body = json.loads(value)
        sig = bytearray(base64.b64decode(body["signature"]))
        if sig:
            at = fdp.ConsumeIntInRange(0, len(sig) - 1)
            sig[at] = fdp.ConsumeIntInRange(0, 255)
            if fdp.ConsumeBool():
                del sig[fdp.ConsumeIntInRange(0, len(sig) - 1) :]
        body["signature"] = base64.b64encode(bytes(sig)).decode()
        value = bytearray(json.dumps(body).encode())
    else:  # insert bytes
        at = fdp.ConsumeIntInRange(0, len(value))
        value[at:at] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 8))
    return token.encode(), bytes(value)


def TestOneInput(data: bytes) -> None:  # noqa: N802
    fdp = atheris.FuzzedDataProvider(data)
    records = []
    for offset in range(fdp.ConsumeIntInRange(1, 8)):
        key, value = _record(fdp)
        records.append(SourceRecord(VOTES, 0, offset, key, value))
    tokens: dict = {}
    revokes = any(r.value and b'"token_revoked"' in r.value for r in records)
    if fdp.ConsumeBool() or (SKIP_F2 and revokes):  # most batches start with issued tokens
        for t in TOKENS:
            tokens[t.encode()] = {
                "phase": "issued",
                "credential_hash": "ab" * 32,
                "epoch": 1,
                "issued_offset": 0,
                "changed_offset": 0,
            }
    out = Out()
    verifier = VoteVerifier(
        control=CONTROL,
        tokens=tokens,
        outputs=out,
        verify_batch=ringcrypto.verify_batch,
        verify_one=ringcrypto.verify,
        issuer=ISSUER_KEYS,
    )
    LOOP.run_until_complete(verifier.process(records))

    rejected = [r.source_offset for r in out.rejections]
    assert len(rejected) == len(set(rejected)), f"two rejections for one record: {rejected}"
    accepted_at = {v.source_offset for v in out.accepted_votes}
    assert not accepted_at & set(rejected), "a record both accepted and rejected"
    digests: dict[str, set[bytes]] = {}
    value_at = {r.offset: r.value for r in records}
    for v in out.accepted_votes:
        # an accepted vote points at the record that spent its token (a copy at a later
        # offset points back at it); it no longer carries the payload itself
        vote = parse_votes_message(value_at[v.source_offset] or b"")
        assert isinstance(vote, VoteCast) and vote.vote_id == v.vote_id, "wrong source record"
        image = ringcrypto.verify(
            RING, vote.context(), vote.signing_bytes(), vote.signature_bytes()
        )
        assert image.hex() == v.key_image, "accepted vote whose key image is not its signature's"
        # the vote's identity is its digest (signing bytes + signature), not its JSON bytes:
        # the same vote re-serialised is a replay of it
        digests.setdefault(v.token_id, set()).add(
            vote_digest(vote.signing_bytes(), vote.signature_bytes())
        )
    for token, ds in digests.items():
        assert len(ds) == 1, f"token {token} spent by {len(ds)} different votes"
    for r in records:
        outcomes = (r.offset in rejected) + (r.offset in accepted_at)
        if outcomes == 0:
            try:
                msg = parse_votes_message(r.value or b"")
            except Exception:  # noqa: BLE001
                raise AssertionError(f"record at {r.offset} has no outcome") from None
            if isinstance(msg, VoteCast):  # a replay is accepted under its original offset
                assert any(v.vote_id == msg.vote_id for v in out.accepted_votes), (
                    f"vote at {r.offset} vanished"
                )


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
