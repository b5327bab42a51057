"""atheris: the verify stage itself (``agents.verify.VoteVerifier``) on fuzzed batches.

Each input becomes a batch of 1-8 votes-topic records on a 2-partition topic:
mutated copies of valid votes (bytes replaced, inserted, cut; JSON fields
swapped; the signature's bytes corrupted, its slot tag swapped for another
member's), valid signatures over messages naming another member's tag, raw
bytes, and valid votes copied onto the wrong partition. The
real verifier runs with the real ``ringcrypto`` batch check, a dict for its
tag table and lists for its outputs. Properties (DESIGN invariants 2-4, 9):

* no exception escapes ``process`` (bad input becomes a rejection);
* no record gets two outcomes, and every record gets one (a rejection at its
  position, or an accepted vote; a redelivered vote is accepted under the
  position of the record that spent its tag);
* every accepted vote sits on its key's murmur2 partition, names a slot below
  k, and carries a signature that ``ringcrypto.verify_vote`` accepts over the
  message the verifier rebuilt, with that key image and that slot tag as its
  token id (no forgery, no theft);
* a tag is spent by at most one vote (one distinct accepted digest per tag).

    python fuzz/fuzz_verifier.py fuzz/corpus/verifier -max_total_time=120
"""

import asyncio
import base64
import json
import sys
from datetime import UTC, datetime

import _common  # noqa: F401  (sys.path)
import atheris

with atheris.instrument_imports():
    from agents.control import ControlRecord, ControlState
    from agents.records import SourceRecord
    from agents.tokens import vote_digest
    from agents.verify import VoteVerifier
    from models import Ring, Submission
    from models.votes import VoteCast, parse_votes_message
    from streams.partitioner import partition_for_key
    from streams.settings import Settings

import ringcrypto
from tests.fixtures.votes import make_vote, registrar_keys, signed

SETTINGS = Settings(topic_prefix="fuzz", partitions=2)
VOTES = SETTINGS.topic("votes")
K = 2
KEYS = _common.fuzz_keys()
RING = ringcrypto.Ring([k.public_key for k in KEYS])
CONTROL = ControlState(SETTINGS, registrar=registrar_keys())
CONTROL.apply(
    ControlRecord(
        SETTINGS.topic("rings"),
        0,
        0,
        1000,
        b"r1",
        signed(
            Ring(
                ring_id="r1",
                version=1,
                genre="g",
                epoch=1,
                public_keys=[pk.hex() for pk in RING.public_keys],
                votes_per_epoch=K,
                valid_from=datetime(1970, 1, 1, tzinfo=UTC),
            )
        ).to_json(),
    )
)
for _offset, _sub in enumerate(("s1", "s2")):
    CONTROL.apply(
        ControlRecord(
            SETTINGS.topic("submissions"),
            0,
            _offset,
            1000,
            _sub.encode(),
            signed(Submission(submission_id=_sub, genre="g", epoch=1)).to_json(),
        )
    )
#: (member, submission, slot) -> a valid vote; slot K is out of range.
VALID = {
    (m, s, slot): make_vote(KEYS[m], RING, submission_id=s, slot=slot, batchable=m % 2 == 0)
    for m in range(2)
    for s in ("s1", "s2")
    for slot in range(K + 1)
}
TAGS = sorted({v.token_id for v in VALID.values()})
#: Valid signatures by member 1 over messages naming member 0's tags: theft attempts.
MISTAGGED = [
    make_vote(
        KEYS[1], RING, submission_id="s2", slot=slot, token_id=VALID[(0, "s1", slot)].token_id
    )
    for slot in range(K)
]
POOL = [*VALID.values(), *MISTAGGED]
LOOP = asyncio.new_event_loop()


class Out:
    def __init__(self) -> None:
        self.rejections: list = []
        self.accepted_votes: list = []

    async def rejection(self, key, r):  # noqa: ANN001
        self.rejections.append(r)

    async def accepted(self, v):  # noqa: ANN001
        self.accepted_votes.append(v)


def _home(key: bytes | None) -> int:
    return 0 if key is None else partition_for_key(key, SETTINGS.partitions)


def _record(fdp: atheris.FuzzedDataProvider) -> tuple[bytes | None, bytes | None, bool]:
    """(key, value, on its home partition?)"""
    vote = fdp.PickValueInList(POOL)
    key = vote.token_id.encode()
    choice = fdp.ConsumeIntInRange(0, 8)
    if choice == 0:
        return fdp.ConsumeBytes(8) or None, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64)), True
    value = bytearray(vote.to_json())
    if choice == 1:
        return key, bytes(value), True
    if choice == 2:  # a byte copy on the wrong partition
        return key, bytes(value), False
    if choice == 3:  # overwrite a run of bytes
        at = fdp.ConsumeIntInRange(0, len(value) - 1)
        chunk = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 16))
        value[at : at + len(chunk)] = chunk
    elif choice == 4:  # change one field's value
        body = json.loads(value)
        name = fdp.PickValueInList(sorted(body))
        body[name] = fdp.PickValueInList(
            [
                fdp.ConsumeUnicodeNoSurrogates(12),
                fdp.ConsumeIntInRange(-2, 3),
                None,
                "s2",
                "r1",
                "reject",
                *TAGS,
            ]
        )
        value = bytearray(json.dumps(body).encode())
        if name == "token_id" and isinstance(body[name], str):
            key = body[name].encode()
    elif choice in (5, 6):  # corrupt the signature, or swap another member's tag into it
        body = json.loads(value)
        sig = bytearray(base64.b64decode(body["signature"]))
        if choice == 5:
            at = fdp.ConsumeIntInRange(0, len(sig) - 1)
            sig[at] = fdp.ConsumeIntInRange(0, 255)
            if fdp.ConsumeBool():
                del sig[fdp.ConsumeIntInRange(0, len(sig) - 1) :]
        else:
            stolen = fdp.PickValueInList(TAGS)
            sig[33:65] = bytes.fromhex(stolen)
            body["token_id"] = stolen
            key = stolen.encode()
        body["signature"] = base64.b64encode(bytes(sig)).decode()
        value = bytearray(json.dumps(body).encode())
    else:  # insert bytes
        at = fdp.ConsumeIntInRange(0, len(value))
        value[at:at] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 8))
    return key, bytes(value), True


def TestOneInput(data: bytes) -> None:  # noqa: N802
    fdp = atheris.FuzzedDataProvider(data)
    records = []
    next_offset = [0, 0]
    for _ in range(fdp.ConsumeIntInRange(1, 8)):
        key, value, home = _record(fdp)
        partition = _home(key) if home else 1 - _home(key)
        records.append(
            SourceRecord(VOTES, partition, next_offset[partition], key, value, timestamp_ms=5000)
        )
        next_offset[partition] += 1
    out = Out()
    verifier = VoteVerifier(
        control=CONTROL,
        tokens={},
        outputs=out,
        verify_batch=ringcrypto.verify_vote_batch,
        partitions=SETTINGS.partitions,
    )
    LOOP.run_until_complete(verifier.process(records))

    rejected = [(r.source_partition, r.source_offset) for r in out.rejections]
    assert len(rejected) == len(set(rejected)), f"two rejections for one record: {rejected}"
    accepted_at = {(v.source_partition, v.source_offset) for v in out.accepted_votes}
    assert not accepted_at & set(rejected), "a record both accepted and rejected"
    value_at = {(r.partition, r.offset): r for r in records}
    digests: dict[str, set[str]] = {}
    for v in out.accepted_votes:
        record = value_at[(v.source_partition, v.source_offset)]
        assert record.partition == _home(record.key), "accepted off its key's partition"
        vote = parse_votes_message(record.value or b"")
        assert isinstance(vote, VoteCast) and vote.vote_id == v.vote_id, "wrong source record"
        assert vote.slot < K and v.ring_version == 1
        image, tag = ringcrypto.verify_vote(
            RING, vote.context(), vote.epoch_bytes(), vote.slot, vote.signing_bytes(),
            vote.signature_bytes(),
        )  # fmt: skip
        assert image.hex() == v.key_image, "accepted vote whose key image is not its signature's"
        assert tag.hex() == v.token_id == vote.token_id, "accepted vote spending another tag"
        digests.setdefault(v.token_id, set()).add(
            vote_digest(vote.signing_bytes(), vote.signature_bytes())
        )
    for tag, ds in digests.items():
        assert len(ds) == 1, f"tag {tag} spent by {len(ds)} different votes"
    for r in records:
        where = (r.partition, r.offset)
        if where in rejected or where in accepted_at:
            continue
        msg = parse_votes_message(r.value or b"")  # a record with no outcome must be a vote
        assert any(v.vote_id == msg.vote_id for v in out.accepted_votes), f"{where} vanished"


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
