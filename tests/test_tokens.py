"""The per-token state machine (agents.tokens): transitions, idempotence, reasons."""

import pytest

from agents.tokens import TokenPhase, TokenState, vote_digest
from models.reasons import ReasonCode

CRED = "ab" * 32


def _issued(epoch=1):
    verdict = TokenState.issue(None, credential_hash=CRED, epoch=epoch, offset=10)
    assert verdict.state is not None and verdict.reason is None
    return verdict.state


def test_issue_creates_an_issued_token():
    state = _issued()
    assert (state.phase, state.credential_hash, state.epoch) == (TokenPhase.ISSUED, CRED, 1)


def test_repeating_the_same_issuance_changes_nothing():
    assert TokenState.issue(_issued(), credential_hash=CRED, epoch=1, offset=11).replay


def test_contradicting_issuance_is_a_token_conflict():
    verdict = TokenState.issue(_issued(), credential_hash="cd" * 32, epoch=1, offset=11)
    assert verdict.reason is ReasonCode.TOKEN_CONFLICT
    assert "cd" * 32 in verdict.detail


def test_spend_then_the_same_vote_again_is_a_replay_and_another_is_token_spent():
    digest = vote_digest(b"msg", b"sig")
    state = _issued()
    assert state.check_spend(vote_epoch=1, digest=digest).state is state
    spent = state.spend(vote_id="v", digest=digest, key_image="ki", offset=12)
    assert spent.phase is TokenPhase.SPENT
    assert spent.check_spend(vote_epoch=1, digest=digest).replay
    other = spent.check_spend(vote_epoch=1, digest=vote_digest(b"msg", b"sig2"))
    assert other.reason is ReasonCode.TOKEN_SPENT


def test_epoch_mismatch_is_checked_before_spending():
    verdict = _issued(epoch=2).check_spend(vote_epoch=3, digest="d")
    assert verdict.reason is ReasonCode.EPOCH_MISMATCH


def test_revoked_token_rejects_votes():
    revoked = TokenState.revoke(_issued(), reason="stolen", offset=13).state
    assert revoked.phase is TokenPhase.REVOKED
    verdict = revoked.check_spend(vote_epoch=1, digest="d")
    assert verdict.reason is ReasonCode.TOKEN_REVOKED and "stolen" in verdict.detail


def test_revoking_a_spent_token_keeps_it_spent():
    spent = _issued().spend(vote_id="v", digest="d", key_image="ki", offset=12)
    assert TokenState.revoke(spent, reason="late", offset=14).replay


def test_revocation_before_issuance_survives_the_issuance():
    revoked = TokenState.revoke(None, reason="early", offset=1).state
    after = TokenState.issue(revoked, credential_hash=CRED, epoch=1, offset=2).state
    assert after.phase is TokenPhase.REVOKED and after.credential_hash == CRED


def test_only_an_issued_token_can_be_spent():
    revoked = TokenState.revoke(_issued(), reason="x", offset=13).state
    with pytest.raises(ValueError, match="revoked"):
        revoked.spend(vote_id="v", digest="d", key_image="ki", offset=14)


def test_state_round_trips_through_its_table_form():
    spent = _issued().spend(vote_id="v", digest="d", key_image="ki", offset=12)
    assert TokenState.from_dict(spent.to_dict()) == spent


def test_vote_digest_separates_message_and_signature():
    assert vote_digest(b"ab", b"c") != vote_digest(b"a", b"bc")


def test_as_of_reads_back_the_state_each_earlier_record_saw():
    issued = _issued()  # issued at offset 10
    spent = issued.spend(vote_id="v", digest="d", key_image="ki", offset=12)
    assert spent.as_of(9) is None and spent.as_of(10) is None  # before / at the issuance
    assert spent.as_of(11) == issued  # between issuance and spend: still issued
    assert spent.as_of(12) == issued  # the spending vote itself saw an issued token
    assert spent.as_of(13) == spent
    assert [spent.newer_than(o) for o in (11, 12, 13)] == [True, False, False]
    revoked = TokenState.revoke(issued, reason="x", offset=15).state
    assert revoked.as_of(14) == issued and revoked.as_of(16) == revoked
    early = TokenState.revoke(None, reason="early", offset=3).state
    late_issue = TokenState.issue(early, credential_hash=CRED, epoch=1, offset=5).state
    assert late_issue.as_of(2) is None and late_issue.as_of(4) == late_issue
