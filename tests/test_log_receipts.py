"""A receipt is tied to its vote (native/SPEC.md §14.4): it carries the VoteCast, and
``verify_receipt`` / ``ringtally receipt verify`` recompute the digest from it (and the
vote id from its token id). Editing ``vote_id`` or swapping the vote must fail; a
receipt with no vote proves a digest, never "vote X counted". No stack needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import pytest

import ringcrypto
from agents.loghead import LogSigner
from connectors.sdk.receipt import ReceiptInvalid, verify_receipt
from connectors.sdk.vote import build_vote
from models.log import LeafKind, log_leaf_hash, receipt_from_log, vote_digest
from models.merkle import tree_hash

DEAD = UUID("00000000-0000-4000-8000-00000000dead")  # a vote that was never counted


def _votes(n: int = 4):
    keys = [ringcrypto.SecretKey.generate() for _ in range(n)]
    ring = ringcrypto.Ring([k.public_key for k in keys])
    return [
        build_vote(
            k, ring, submission_id="sub-1", ring_id="r", ring_version=1,
            vote_type="approve", epoch=1, slot=0,
        )
        for k in keys
    ]  # fmt: skip


def _receipt(with_vote: bool = True):
    signer = LogSigner(ringcrypto.SecretKey.generate())
    votes = _votes()
    digests = [vote_digest(v.signing_bytes(), v.signature_bytes()) for v in votes]
    root = tree_hash([log_leaf_hash(LeafKind.BALLOT, d) for d in digests])
    [head] = signer.sign([("sub-1", len(votes), root)])
    receipt = receipt_from_log(
        head,
        [(i, LeafKind.BALLOT, d) for i, d in enumerate(digests)],
        vote_id=votes[2].vote_id,
        vote_digest=digests[2],
        vote=votes[2] if with_vote else None,
    )
    return signer.public_key, receipt, votes


def test_a_receipt_carries_its_vote_and_verifies_as_that_vote():
    key, receipt, votes = _receipt()
    assert receipt.vote == votes[2]
    assert verify_receipt(receipt, key) == votes[2]
    assert verify_receipt(receipt, key, vote=votes[2]) == votes[2]


def test_a_receipt_edited_to_name_another_vote_fails():
    key, receipt, votes = _receipt()
    with pytest.raises(ReceiptInvalid, match="not about vote"):
        verify_receipt(receipt.model_copy(update={"vote_id": DEAD}), key)
    with pytest.raises(ReceiptInvalid, match="not about vote"):  # another vote put in
        verify_receipt(receipt.model_copy(update={"vote": votes[1]}), key)
    with pytest.raises(ReceiptInvalid, match="not about vote"):  # another vote as sent
        verify_receipt(receipt, key, vote=votes[1])
    forged = votes[1].model_copy(update={"vote_id": votes[2].vote_id})  # id not its token's
    with pytest.raises(ReceiptInvalid, match="not the id of its token"):
        verify_receipt(receipt.model_copy(update={"vote": forged}), key)
    with pytest.raises(ValueError, match="not the receipt's"):  # the builder refuses it
        receipt_from_log(
            receipt.head,
            _all_leaves(votes),
            vote_id=votes[1].vote_id,
            vote_digest=bytes.fromhex(receipt.vote_digest),
            vote=votes[1],
        )


def _all_leaves(votes):
    return [
        (i, LeafKind.BALLOT, vote_digest(v.signing_bytes(), v.signature_bytes()))
        for i, v in enumerate(votes)
    ]


def _cli_verify(tmp_path: Path, key: bytes, receipt, *args: str):
    path = tmp_path / "receipt.json"
    path.write_text(receipt.model_dump_json())
    env = {
        **os.environ,
        "RINGTALLY_LOG_PUBLIC_KEY": key.hex(),
        "RINGTALLY_DATA_DIR": str(tmp_path / "data"),
    }
    return subprocess.run(
        [sys.executable, "-m", "connectors.cli", "receipt", "verify", str(path), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_receipt_verify_never_says_a_swapped_vote_id_was_counted(tmp_path):
    """The review's cli_swap.py: only ``vote_id`` edited in a real receipt."""
    key, receipt, votes = _receipt()
    ok = _cli_verify(tmp_path, key, receipt)
    assert ok.returncode == 0 and f"vote {votes[2].vote_id} is leaf 2" in ok.stdout
    swapped = _cli_verify(tmp_path, key, receipt.model_copy(update={"vote_id": DEAD}))
    assert swapped.returncode == 1 and "dead" not in swapped.stdout
    assert "not about vote" in swapped.stderr + swapped.stdout
    # no vote in the receipt: it proves a digest, and says no more
    _, bare, _ = _receipt(with_vote=False)
    bare_key = bytes.fromhex(bare.head.log_key)
    digest_only = _cli_verify(tmp_path, bare_key, bare.model_copy(update={"vote_id": DEAD}))
    assert digest_only.returncode == 0
    assert f"digest {bare.vote_digest} is leaf 2" in digest_only.stdout
    assert "counted" not in digest_only.stdout and "dead" not in digest_only.stdout
