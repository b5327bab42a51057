"""The Voter and build_vote without Kafka: slot picking, the slots file, the vote's tag.

Why these matter: a Voter that reused a slot would have its second vote rejected
``token_spent`` after publishing (the user learns too late); one that picked
slots in order would tell a topic reader which of a key's votes in the epoch
this is; a slots file readable by others, or silently taken for another key's,
would leak or lose the record.
"""

from __future__ import annotations

import json

import pytest

import ringcrypto
from connectors.sdk import SlotsExhausted, SlotUsed, Voter, build_vote, create_key_file
from connectors.sdk.voter import slots_file_for
from models.encoding import epoch_bytes
from models.internal import vote_id_for_token
from streams.errors import UsageProblem


def test_picks_every_slot_once_then_reports_exhaustion() -> None:
    voter = Voter(ringcrypto.SecretKey.generate())
    picked = [voter.take_slot(7, 5) for _ in range(5)]
    assert sorted(picked) == [0, 1, 2, 3, 4]
    with pytest.raises(SlotsExhausted, match="all 5 slots of epoch 7"):
        voter.take_slot(7, 5)
    assert voter.take_slot(8, 5) in range(5)  # another epoch has its own slots


def test_slots_are_picked_at_random_not_in_order() -> None:
    firsts = {Voter(ringcrypto.SecretKey.generate()).take_slot(1, 64) for _ in range(12)}
    assert len(firsts) > 1  # in order, every first pick would be 0 (chance of this: 64^-11)


def test_an_explicit_used_slot_is_refused_and_out_of_range_is_usage() -> None:
    voter = Voter(ringcrypto.SecretKey.generate())
    assert voter.take_slot(3, 10, 4) == 4
    with pytest.raises(SlotUsed, match="slot 4 of epoch 3 is already used"):
        voter.take_slot(3, 10, 4)
    with pytest.raises(UsageProblem, match="out of range"):
        voter.take_slot(3, 10, 10)
    voter.release_slot(3, 4)
    assert voter.take_slot(3, 10, 4) == 4


def test_the_slots_file_is_private_keyed_to_its_key_and_shared(tmp_path) -> None:
    key_path = tmp_path / "alice.key"
    create_key_file(key_path)
    first = Voter.from_key_file(key_path)
    assert first.slots_file == slots_file_for(key_path) == tmp_path / "alice.slots.json"
    slot = first.take_slot(2, 3)
    assert first.slots_file.stat().st_mode & 0o777 == 0o600
    data = json.loads(first.slots_file.read_text())
    assert data["used"] == {"2": [slot]} and data["public_key"] == first.public_key.hex()
    assert set(data) == {"version", "type", "public_key", "used"}  # nothing about votes
    second = Voter.from_key_file(key_path)  # another process, in effect
    with pytest.raises(SlotUsed):
        second.take_slot(2, 3, slot)
    other = Voter(ringcrypto.SecretKey.generate(), slots_file=first.slots_file)
    with pytest.raises(UsageProblem, match="another key"):
        other.take_slot(2, 3)


def test_a_corrupt_slots_file_is_one_line_not_a_traceback(tmp_path) -> None:
    path = tmp_path / "k.slots.json"
    path.write_text("{not json")
    with pytest.raises(UsageProblem, match="not a ringtally used-slots file"):
        Voter(ringcrypto.SecretKey.generate(), slots_file=path).take_slot(1, 2)


def test_build_vote_carries_the_slot_tag_and_verifies() -> None:
    keys = [ringcrypto.SecretKey.generate() for _ in range(3)]
    ring = ringcrypto.Ring([k.public_key for k in keys])
    vote = build_vote(
        keys[1],
        ring,
        submission_id="sub-1",
        ring_id="r",
        ring_version=2,
        vote_type="approve",
        epoch=9,
        slot=3,
    )
    tag = keys[1].slot_tag(epoch_bytes(9), 3)
    assert vote.token_id == tag.hex() and vote.vote_id == vote_id_for_token(tag.hex())
    assert (vote.ring_version, vote.slot, vote.epoch) == (2, 3, 9)
    image, carried = ringcrypto.verify_vote(
        ring, b"sub-1", epoch_bytes(9), 3, vote.signing_bytes(), vote.signature_bytes()
    )
    assert carried == tag and image == keys[1].key_image(b"sub-1")
    other = build_vote(
        keys[1],
        ring,
        submission_id="sub-2",
        ring_id="r",
        ring_version=2,
        vote_type="approve",
        epoch=9,
        slot=4,
    )
    assert other.token_id != vote.token_id and other.vote_id != vote.vote_id


def test_no_trusted_registrar_key_refuses_to_read_rings(tmp_path):
    """Fail closed (review finding): with no registrar key known, a ring that merely carries
    a signature must not be trusted, or whoever can write the rings topic picks the
    anonymity set a voter signs with. Fails if _Signatures accepts any signature again."""
    import pytest

    from connectors.sdk.errors import NoTrustedRegistrar
    from connectors.sdk.reader import _Signatures
    from streams.settings import Settings

    with pytest.raises(NoTrustedRegistrar, match="no registrar public key"):
        _Signatures(Settings(data_dir=tmp_path / "empty", registrar_public_keys=""))
