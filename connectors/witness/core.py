"""The witness's decisions, pure: leaves in (from Ballots and Rejections), heads in,
verdicts out.

A head is judged once the witness holds every leaf below its size: it agrees
when the leaves' RFC 9162 root is the signed root, and disagrees when the root
differs, when two records put different leaves at one index, or when the
head is not signed by the trusted log key. Leaves arrive on another topic
than heads, so a head waits (``pending``) until its leaves are in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.log import (
    LeafRow,
    SignedHead,
    ballot_leaves,
    final_head_problem,
    log_leaf_hash,
    rejection_leaves,
)
from models.merkle import Frontier, tree_hash
from models.outputs import Ballot, Rejection

__all__ = ["Disagreement", "Witness"]


@dataclass(frozen=True, slots=True)
class Disagreement:
    submission_id: str
    tree_size: int
    root_hash: str
    # "leaf_conflict", "root_mismatch", "bad_signature", "final_conflict", "after_final"
    reason: str
    detail: str


@dataclass
class _Log:
    leaves: dict[int, bytes] = field(default_factory=dict)
    #: (tree size, final) -> head: a final head and an ordinary one of one size both wait
    pending: dict[tuple[int, bool], SignedHead] = field(default_factory=dict)
    judged: set[tuple[int, str, int | None]] = field(default_factory=set)
    #: The leaves judged so far, folded: heads come in growing sizes, so each leaf is
    #: hashed into a root once (a late, smaller head is recomputed from scratch).
    frontier: Frontier = field(default_factory=Frontier)
    #: The final head judged (size, root, closed_ms): nothing may follow or replace it.
    final: tuple[int, str, int] | None = None
    #: The largest size of any head judged: a final head below it came too early.
    largest: int = 0

    def root(self, size: int) -> str:
        if size < self.frontier.size:
            return tree_hash([self.leaves[i] for i in range(size)]).hex()
        while self.frontier.size < size:
            self.frontier.append(self.leaves[self.frontier.size])
        return self.frontier.root().hex()


class Witness:
    """Rebuilds logs and judges heads; ``check_signature(head)`` says whether a head's
    signature verifies under the trusted log key."""

    def __init__(self, check_signature) -> None:  # noqa: ANN001 - Callable[[SignedHead], bool]
        self.check_signature = check_signature
        self.logs: dict[str, _Log] = {}

    def ballot(self, ballot: Ballot) -> tuple[list[SignedHead], list[Disagreement]]:
        """Add a Ballot's leaves; the heads that can now be judged, judged."""
        what = f"ballot of vote {ballot.vote_id}"
        return self._leaves(ballot.submission_id, ballot_leaves(ballot), what)

    def rejection(self, rejection: Rejection) -> tuple[list[SignedHead], list[Disagreement]]:
        """Add a Rejection's leaf (a refused well-formed vote's); the heads that can now be
        judged, judged. A rejection with no leaf changes nothing."""
        leaves = rejection_leaves(rejection)
        if not leaves or rejection.submission_id is None:
            return [], []
        what = f"rejection ({rejection.reason}) of vote {rejection.vote_id}"
        return self._leaves(rejection.submission_id, leaves, what)

    def _leaves(
        self, submission_id: str, leaves: list[LeafRow], what: str
    ) -> tuple[list[SignedHead], list[Disagreement]]:
        log = self.logs.setdefault(submission_id, _Log())
        disagreements = []
        for index, kind, digest, *reason in leaves:
            h = log_leaf_hash(kind, digest, *reason)
            if log.leaves.setdefault(index, h) != h:
                disagreements.append(
                    Disagreement(
                        submission_id,
                        index + 1,
                        "",
                        "leaf_conflict",
                        f"{what} puts another leaf at index {index} of {submission_id}'s log",
                    )
                )
        agreed, more = self._judge(submission_id)
        return agreed, disagreements + more

    def head(self, head: SignedHead) -> tuple[list[SignedHead], list[Disagreement]]:
        """Take a head; the heads that can now be judged, judged."""
        if not self.check_signature(head):
            return [], [
                Disagreement(
                    head.submission_id,
                    head.tree_size,
                    head.root_hash,
                    "bad_signature",
                    "the head is not signed by the trusted log key",
                )
            ]
        log = self.logs.setdefault(head.submission_id, _Log())
        log.pending[(head.tree_size, head.closed_ms is not None)] = head
        return self._judge(head.submission_id)

    def _judge(self, submission_id: str) -> tuple[list[SignedHead], list[Disagreement]]:
        log = self.logs[submission_id]
        agreed, disagreements = [], []
        for size, final in sorted(log.pending):
            if any(i not in log.leaves for i in range(size)):
                break  # leaves still on their way (the next heads need them too)
            head = log.pending.pop((size, final))
            if (size, head.root_hash, head.closed_ms) in log.judged:
                continue
            log.judged.add((size, head.root_hash, head.closed_ms))
            root = log.root(size)
            broken = final_head_problem(head, log.final, log.largest)
            log.largest = max(log.largest, size)
            if broken is not None:
                disagreements.append(Disagreement(submission_id, size, head.root_hash, *broken))
            elif root == head.root_hash:
                if head.closed_ms is not None:
                    log.final = (size, head.root_hash, head.closed_ms)
                agreed.append(head)
            else:
                disagreements.append(
                    Disagreement(
                        submission_id,
                        size,
                        head.root_hash,
                        "root_mismatch",
                        f"the ballots topic's leaves give root {root} at size {size}",
                    )
                )
        return agreed, disagreements
