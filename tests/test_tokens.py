"""The per-tag state machine (agents.tokens): unspent -> spent, idempotence, reasons.

Protocol v2 issues nothing: a tag the table has never seen is unspent, and
the first vote with a valid signature spends it (docs/protocol.md).
"""

from agents.tokens import TokenState, vote_digest
from models.reasons import ReasonCode

DIGEST = vote_digest(b"msg", b"sig")


def _spent(offset=12):
    return TokenState.spend(vote_id="v", digest=DIGEST, key_image="ki", offset=offset)


def test_a_tag_never_seen_is_unspent_and_may_be_spent():
    """No issuance in v2: an unknown tag is simply unspent (v1 said unknown_token)."""
    verdict = TokenState.check_spend(None, digest=DIGEST)
    assert verdict.reason is None and not verdict.replay


def test_the_same_vote_again_is_a_replay_and_another_vote_is_token_spent():
    spent = _spent()
    assert TokenState.check_spend(spent, digest=DIGEST).replay
    other = TokenState.check_spend(spent, digest=vote_digest(b"msg", b"sig2"))
    assert other.reason is ReasonCode.TOKEN_SPENT and not other.replay
    assert "offset 12" in other.detail


def test_state_round_trips_through_its_table_form():
    spent = _spent()
    assert TokenState.from_dict(spent.to_dict()) == spent
    assert set(spent.to_dict()) == {"spent_by", "spent_digest", "key_image", "changed_offset"}


def test_vote_digest_separates_message_and_signature():
    assert vote_digest(b"ab", b"c") != vote_digest(b"a", b"bc")


def test_as_of_reads_back_the_state_each_earlier_record_saw():
    """A redelivered record is decided against the state it saw the first time."""
    spent = _spent(offset=12)
    assert spent.as_of(11) is None  # before the spend: unspent
    assert spent.as_of(12) == spent and spent.as_of(13) == spent
    assert [spent.newer_than(o) for o in (11, 12, 13)] == [True, False, False]
