"""The SDK's receipts against a real worker: ``VoteClient.wait_receipt`` after
``wait_outcome``, checked offline against the vote as sent, and a later receipt's head
proved to extend the earlier one. No Postgres: the receipt comes from the output topics.
"""

from __future__ import annotations

import pytest

from connectors.sdk import ReceiptInvalid, VoteClient, fetch_receipt, verify_receipt
from connectors.sdk.receipt import trusted_log_key
from models import Ballot, Rejection
from models.log import LeafKind
from tests.fixtures.ring_setup import RingSetup

pytestmark = pytest.mark.integration


def test_wait_receipt_proves_the_vote_as_sent_and_later_heads_extend_it(pipeline) -> None:
    setup = RingSetup(pipeline[0], members=3, votes_per_epoch=2, epoch=6)
    key = trusted_log_key(setup.settings)
    with VoteClient(setup.settings, setup.keys[0]) as client:
        first = client.sign(setup.ring_id, submission_id=setup.sub, vote_type="approve")
        ballot = client.wait_outcome(client.publish(first), timeout=60)
        assert isinstance(ballot, Ballot)
        receipt = client.wait_receipt(ballot, timeout=60)
        verify_receipt(receipt, key, vote=first)  # the very vote sent, by its digest
        assert receipt.vote == first  # it carries the vote sent, so it verifies alone
        assert (receipt.kind, receipt.leaf_index) == (LeafKind.BALLOT, ballot.leaf_index)
        # the same reviewer again: a duplicate is refused, and its refusal is a leaf too
        second = client.sign(setup.ring_id, submission_id=setup.sub, vote_type="reject")
        again = client.wait_outcome(client.publish(second), timeout=60)
        assert isinstance(again, Rejection) and again.reason == "duplicate_key_image"
        refused = client.wait_receipt(again, timeout=60)
        verify_receipt(refused, key, vote=second)
        assert (refused.kind, refused.reason) == (LeafKind.REJECTION, "duplicate_key_image")
        assert refused.leaf_index == again.leaf_index > receipt.leaf_index
    with VoteClient(setup.settings, setup.keys[1]) as other:
        other_ballot = other.vote_and_wait(
            setup.ring_id, submission_id=setup.sub, vote_type="reject", timeout=60
        )
        assert isinstance(other_ballot, Ballot)
        other.wait_receipt(other_ballot, timeout=60)
        # a vote on no registered submission reaches no log: no receipt
        lost = other.sign(setup.ring_id, submission_id="no-such-submission", vote_type="flag")
        nowhere = other.wait_outcome(other.publish(lost), timeout=60)
        assert isinstance(nowhere, Rejection) and nowhere.reason == "unknown_submission"
        assert nowhere.leaf_index is None
        with pytest.raises(ValueError, match="no receipt"):
            other.wait_receipt(nowhere)
    later = fetch_receipt(setup.settings, ballot, since=receipt, timeout=60)
    assert later.head.tree_size > receipt.head.tree_size
    verify_receipt(later, key, vote=first, earlier=receipt)
    # someone else's vote is not this receipt's
    other_vote = setup.vote(setup.keys[2], setup.sub, slot=0)
    with pytest.raises(ReceiptInvalid, match="not about vote"):
        verify_receipt(receipt, key, vote=other_vote)
    with pytest.raises(ReceiptInvalid, match="not about the vote sent"):
        fetch_receipt(setup.settings, ballot, vote=other_vote, timeout=5)
