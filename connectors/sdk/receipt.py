"""Checking a receipt offline: signed head, inclusion, consistency (native/SPEC.md §14.4).

A voter (or anyone) needs the receipt, the log's public key and nothing else:
no ringtally service. :func:`verify_receipt` raises :class:`ReceiptInvalid`
(one line, exit 1) naming the first check that failed; passing ``vote`` also
checks that the receipt is about that very vote (its digest), and ``earlier``
that the receipt's head extends an earlier receipt's (the consistency proof).

Example::

    receipt = Receipt.model_validate_json(Path("receipt.json").read_bytes())
    verify_receipt(receipt, trusted_log_key(settings), vote=my_vote)
"""

from __future__ import annotations

import time

from models.log import Receipt, SignedHead, vote_digest, vote_problem
from models.merkle import verify_consistency, verify_inclusion
from models.outputs import Ballot, Rejection
from models.votes import VoteCast
from streams.errors import RingtallyError
from streams.heads import head_problem, trusted_log_key
from streams.settings import Settings

__all__ = [
    "ReceiptInvalid",
    "ReceiptTimeout",
    "fetch_receipt",
    "trusted_log_key",
    "verify_head",
    "verify_receipt",
]


class ReceiptInvalid(RingtallyError):
    """A receipt or head that does not verify; the message says which check failed."""


class ReceiptTimeout(RingtallyError):
    """No signed head covered the vote (with every leaf below it on the topic) in time."""


def fetch_receipt(
    settings: Settings,
    ballot: Ballot | Rejection,
    *,
    timeout: float = 30.0,
    since: Receipt | None = None,
    vote: VoteCast | None = None,
) -> Receipt:
    """The receipt of a counted vote (its Ballot, as ``wait_outcome`` returns it), or of a
    refused well-formed vote (its Rejection, which names its leaf), from the
    output topics, no Postgres: the submission's Ballots (every leaf of its log) and
    its latest signed head, both on the submission's partition, read until a head covers
    the vote. The receipt is checked before it is returned (``verify_receipt`` with
    the trusted log key), so what comes back is proof, not hearsay. With ``vote`` (the
    VoteCast as sent) the receipt carries it and is refused unless the ballot's digest
    is that vote's: the Ballot is only what the output topic says.

    Reads the whole partition each try (and the whole rejections topic, whose
    refusals of well-formed votes are leaves too): for a vote now and then, not for a bulk job
    (``ringtally receipt show`` builds from Postgres).
    """
    from models.log import (
        LeafRow,
        LogGap,
        LogMismatch,
        ballot_leaves,
        receipt_from_log,
        rejection_leaves,
    )
    from models.outputs import Ballot as BallotModel
    from streams.partitioner import partition_for_key

    from .reader import read_topic

    if None in (ballot.vote_id, ballot.leaf_index, ballot.vote_digest, ballot.submission_id):
        raise ReceiptInvalid(f"the outcome of vote {ballot.vote_id} names no leaf: no receipt")
    if vote is not None:
        sent = vote_digest(vote.signing_bytes(), vote.signature_bytes()).hex()
        if (sent, vote.vote_id) != (ballot.vote_digest, ballot.vote_id):
            raise ReceiptInvalid(
                f"the ballot of vote {ballot.vote_id} is not about the vote sent "
                f"({vote.vote_id}, digest {sent})"
            )
    key = ballot.submission_id.encode()
    partition = [partition_for_key(key, settings.partitions)]
    trusted = trusted_log_key(settings)
    deadline = time.monotonic() + timeout
    while True:
        heads = [
            SignedHead.model_validate_json(r.value)
            for r in read_topic(settings, "heads", partitions=partition)
            if r.key == key and r.value
        ]
        head = max(heads, key=lambda h: (h.tree_size, h.closed_ms is not None), default=None)
        if head is not None and head.tree_size > ballot.leaf_index:
            leaves: list[LeafRow] = [
                leaf
                for r in read_topic(settings, "ballots", partitions=partition)
                if r.key == key and r.value
                for leaf in ballot_leaves(BallotModel.model_validate_json(r.value))
            ]
            # refusals are leaves too; rejections are keyed by token: every partition
            leaves += [
                leaf
                for r in read_topic(settings, "rejections")
                if r.value and b'"leaf_index"' in r.value
                for rejection in [Rejection.model_validate_json(r.value)]
                if rejection.submission_id == ballot.submission_id
                for leaf in rejection_leaves(rejection)
            ]
            try:
                receipt = receipt_from_log(
                    head,
                    leaves,
                    vote_id=ballot.vote_id,
                    vote_digest=bytes.fromhex(ballot.vote_digest),
                    since=since,
                    vote=vote,
                )
            except LogMismatch as exc:
                raise ReceiptInvalid(str(exc)) from None
            except (LogGap, LookupError):
                pass  # the head came before its ballots: read again
            else:
                verify_receipt(receipt, trusted, vote=vote)
                return receipt
        if time.monotonic() >= deadline:
            raise ReceiptTimeout(
                f"no signed head covers vote {ballot.vote_id} (leaf {ballot.leaf_index} of "
                f"{ballot.submission_id}) after {timeout:g}s",
                fix="is a worker running and caught up? (ringtally worker)",
            )
        time.sleep(0.2)


def verify_head(head: SignedHead, trusted: bytes) -> None:
    """The head's batch (its path to the batch root) is signed by the trusted log key under
    the log-head context (:func:`streams.heads.head_problem`)."""
    problem = head_problem(head, trusted)
    if problem is not None:
        raise ReceiptInvalid(problem)


def verify_receipt(
    receipt: Receipt,
    trusted: bytes,
    *,
    vote: VoteCast | None = None,
    earlier: Receipt | None = None,
) -> VoteCast | None:
    """Every check of SPEC §14.4; raises :class:`ReceiptInvalid` at the first that fails.

    Returns the vote the receipt is proved to be about (the ``vote`` it carries, or the
    one given, its digest recomputed from its bytes), or None: then only its digest is
    proved to be in the log, and ``vote_id`` is an unchecked claim."""
    head = receipt.head
    verify_head(head, trusted)
    if head.submission_id != receipt.submission_id:
        raise ReceiptInvalid(
            f"the head is of submission {head.submission_id}, the receipt of "
            f"{receipt.submission_id}"
        )
    if receipt.vote is not None and vote is not None and receipt.vote != vote:
        raise ReceiptInvalid(f"the receipt is not about vote {vote.vote_id} as sent")
    bound = vote if vote is not None else receipt.vote
    if bound is not None:
        problem = vote_problem(receipt, bound)
        if problem is not None:
            what = "as sent" if vote is not None else "it carries"
            raise ReceiptInvalid(f"the receipt is not about vote {bound.vote_id} {what}: {problem}")
    path = [bytes.fromhex(p) for p in receipt.inclusion_path]
    root = bytes.fromhex(head.root_hash)
    try:
        leaf = receipt.leaf_hash()
    except ValueError as exc:  # a rejection leaf without its reason, or another with one
        raise ReceiptInvalid(f"the receipt's leaf is malformed: {exc}") from None
    if not verify_inclusion(leaf, receipt.leaf_index, head.tree_size, path, root):
        raise ReceiptInvalid(
            f"leaf {receipt.leaf_index} ({receipt.kind.value} of digest {receipt.vote_digest}) is "
            f"not "
            f"in the log of {receipt.submission_id} at size {head.tree_size}: inclusion proof "
            "fails"
        )
    if earlier is not None:
        verify_receipt(earlier, trusted)
        if earlier.submission_id != receipt.submission_id:
            raise ReceiptInvalid("the earlier receipt is of another submission")
        proof = receipt.consistency
        first = earlier.head
        if first.tree_size == head.tree_size:
            ok = first.root_hash == head.root_hash
        else:
            ok = (
                proof is not None
                and (proof.first_size, proof.first_root) == (first.tree_size, first.root_hash)
                and verify_consistency(
                    first.tree_size,
                    head.tree_size,
                    bytes.fromhex(first.root_hash),
                    root,
                    [bytes.fromhex(p) for p in proof.path],
                )
            )
        if not ok:
            raise ReceiptInvalid(
                f"the log of {receipt.submission_id} at size {head.tree_size} does not extend "
                f"the earlier head at size {first.tree_size}: consistency proof fails"
            )
    return bound
