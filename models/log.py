"""What goes into a submission's transparency log: leaves, and the signed tree head's bytes.

native/SPEC.md §14 specifies these bytes; the tree over the leaves is RFC 9162's
(:mod:`models.merkle`). A voter computes the leaf of their vote from the very
vote they sent (its §13.1 message and its signature), so a receipt proves
"this vote, byte for byte, is leaf i of the log whose head the log key signed"::

    vote_digest = SHA-256(lp("ringtally/v2/vote-digest") || lp(m) || lp(signature))
    leaf        = lp("ringtally/v2/log-leaf") || lp(kind) || vote_digest
                  [|| lp(reason)   only when kind is "rejection"]
    head        = lp("ringtally/v2/log-head") || lp(submission_id) || u64(tree_size) || root
    final head  = lp("ringtally/v2/log-final-head") || lp(submission_id) || u64(tree_size)
                  || root || i64(closed_ms)
    heads       = lp("ringtally/v2/log-heads") || u64(count) || MTH(head_1, ..., head_count)

``kind`` is ``ballot`` (the vote was counted), ``retraction`` (a vote counted
before was withdrawn, because the same key image voted earlier: its digest is
the withdrawn vote's) or ``rejection`` (a well-formed vote was refused; the
reason code is in the leaf, so the voter's receipt says why). The heads a tally
batch changed are signed together: one signature (a ring of one member, the log key, context
:data:`LOG_HEAD_CONTEXT`, as the registrar signs) over ``heads``, the RFC 9162
root of the batch's head messages; each head carries its index and inclusion
path in that batch, so it verifies alone. One signature per batch instead of
one per submission changed: signing is ~90 µs, a vote's whole processing ~1 ms.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from enum import StrEnum
from typing import TYPE_CHECKING, Literal
from uuid import UUID

from pydantic import Field

from .base import WireModel
from .encoding import length_prefixed
from .fields import HexDigest, HexPoint, Identifier, RegistrarSignature
from .internal import vote_id_for_token
from .merkle import consistency_proof, inclusion_proof, inclusion_root, leaf_hash, tree_hash
from .votes import VoteCast

if TYPE_CHECKING:
    from .outputs import Ballot, Rejection

__all__ = [
    "LOG_HEAD_CONTEXT",
    "LeafKind",
    "LeafRow",
    "final_head_problem",
    "Consistency",
    "LogGap",
    "LogMismatch",
    "Receipt",
    "SignedHead",
    "WITNESS_CONTEXT",
    "WitnessCosignature",
    "ballot_leaves",
    "leaf_hashes",
    "rejection_leaves",
    "receipt_from_log",
    "head_message",
    "heads_signing_bytes",
    "leaf_bytes",
    "log_leaf_hash",
    "vote_digest",
    "vote_problem",
]

VOTE_DIGEST_TAG = b"ringtally/v2/vote-digest"
LEAF_TAG = b"ringtally/v2/log-leaf"
HEAD_TAG = b"ringtally/v2/log-head"
FINAL_HEAD_TAG = b"ringtally/v2/log-final-head"
HEADS_TAG = b"ringtally/v2/log-heads"
#: The ringcrypto context of every signed tree head (the registrar's is another).
LOG_HEAD_CONTEXT = b"ringtally/v2/log-head"
#: The context of a witness's co-signature of a head it recomputed (same bytes signed).
WITNESS_CONTEXT = b"ringtally/v2/log-witness"


class LeafKind(StrEnum):
    """What a leaf records about its vote."""

    BALLOT = "ballot"
    RETRACTION = "retraction"
    #: A well-formed vote refused (SPEC §14.1): the leaf carries the reason code.
    REJECTION = "rejection"


def vote_digest(signing_bytes: bytes, signature: bytes) -> bytes:
    """The 32-byte digest of a vote: its §13.1 message and its decoded signature."""
    return hashlib.sha256(
        length_prefixed(VOTE_DIGEST_TAG)
        + length_prefixed(signing_bytes)
        + length_prefixed(signature)
    ).digest()


def leaf_bytes(kind: LeafKind | str, digest: bytes, reason: str | None = None) -> bytes:
    """The leaf ``d`` of RFC 9162 (hashed as SHA-256(0x00 || d)); a ``rejection`` leaf ends
    with its reason code, and only it has one."""
    if len(digest) != 32:
        raise ValueError(f"a vote digest is 32 bytes, got {len(digest)}")
    kind = LeafKind(kind)
    if (kind is LeafKind.REJECTION) != (reason is not None):
        raise ValueError(f"a {kind.value} leaf {'needs' if reason is None else 'has no'} reason")
    tail = b"" if reason is None else length_prefixed(str(reason).encode("utf-8"))
    return length_prefixed(LEAF_TAG) + length_prefixed(kind.value.encode()) + digest + tail


def log_leaf_hash(kind: LeafKind | str, digest: bytes, reason: str | None = None) -> bytes:
    """The leaf hash of a leaf of ``kind`` about the vote with ``digest`` (and, for a
    rejection, its ``reason`` code)."""
    return leaf_hash(leaf_bytes(kind, digest, reason))


def head_message(
    *, submission_id: str, tree_size: int, root: bytes, closed_ms: int | None = None
) -> bytes:
    """A tree head's message: a leaf of its signed batch (and what a witness signs). With
    ``closed_ms`` (the registrar's closing's broker time) the head is the submission's
    final one: its own tag, so no ordinary head's signature makes a final one."""
    if len(root) != 32:
        raise ValueError(f"a root hash is 32 bytes, got {len(root)}")
    body = length_prefixed(submission_id.encode("utf-8")) + tree_size.to_bytes(8, "big") + root
    if closed_ms is None:
        return length_prefixed(HEAD_TAG) + body
    return length_prefixed(FINAL_HEAD_TAG) + body + closed_ms.to_bytes(8, "big", signed=True)


def heads_signing_bytes(*, count: int, root: bytes) -> bytes:
    """What the log key signs for a batch of ``count`` heads whose head messages have the
    RFC 9162 root ``root``."""
    if len(root) != 32:
        raise ValueError(f"a root hash is 32 bytes, got {len(root)}")
    return length_prefixed(HEADS_TAG) + count.to_bytes(8, "big") + root


_FINAL = (
    "set on a submission's final head (native/SPEC.md §14.3): the broker time (ms) of the "
    "registrar's closing; the log holds every vote appended before it and no other"
)


class _HeadBytes:
    """A head's message (§14.3): a leaf of its signed batch, and what a witness signs."""

    submission_id: str
    tree_size: int
    root_hash: str
    closed_ms: int | None

    def head_bytes(self) -> bytes:
        return head_message(
            submission_id=self.submission_id,
            tree_size=self.tree_size,
            root=bytes.fromhex(self.root_hash),
            closed_ms=self.closed_ms,
        )


class SignedHead(_HeadBytes, WireModel):
    """A submission log's size and root, signed by the log key (key: submission_id;
    compacted topic ``<prefix>.heads``)."""

    type: Literal["log_head"] = "log_head"
    submission_id: Identifier
    tree_size: int = Field(ge=0, le=2**63 - 1)
    root_hash: HexDigest
    log_key: HexPoint = Field(description="the log's public key (trust it only if configured)")
    batch_size: int = Field(ge=1, le=2**32, description="heads signed together with this one")
    batch_index: int = Field(ge=0, lt=2**32, description="this head's leaf in the batch")
    batch_path: list[HexDigest] = Field(
        max_length=32, description="RFC 9162 inclusion path of this head in its batch"
    )
    signature: RegistrarSignature = Field(
        description="base64 ringcrypto signature, a ring of one member (the log key), "
        "context ringtally/v2/log-head, over the batch's signing bytes (native/SPEC.md §14.3)"
    )
    closed_ms: int | None = Field(None, ge=-(2**63), lt=2**63, description=_FINAL)

    def batch_root(self) -> bytes | None:
        """The root of the signed batch this head's path leads to (None: a malformed path)."""
        leaf = leaf_hash(self.head_bytes())
        return inclusion_root(leaf, self.batch_index, self.batch_size, self.path_bytes())

    def path_bytes(self) -> list[bytes]:
        return [bytes.fromhex(p) for p in self.batch_path]


class WitnessCosignature(_HeadBytes, WireModel):
    """A witness recomputed a head's root from the ballots topic and agrees (key:
    submission_id; topic ``<prefix>.witness``): its signature over the head's signing
    bytes under :data:`WITNESS_CONTEXT` (native/SPEC.md §14.5)."""

    type: Literal["witness_cosignature"] = "witness_cosignature"
    submission_id: Identifier
    tree_size: int = Field(ge=0, le=2**63 - 1)
    root_hash: HexDigest
    log_key: HexPoint
    witness_key: HexPoint
    closed_ms: int | None = Field(None, ge=-(2**63), lt=2**63, description=_FINAL)
    signature: RegistrarSignature = Field(
        description="base64 ringcrypto signature, a ring of one member (the witness key), "
        "context ringtally/v2/log-witness, over the head's message (native/SPEC.md §14.5)"
    )


#: Longest proof a log of up to 2^63 leaves can need.
_MAX_PATH = 64


class Consistency(WireModel):
    """RFC 9162 PROOF(first_size, D[head.tree_size]): the head extends an earlier one."""

    first_size: int = Field(ge=1, le=2**63 - 1)
    first_root: HexDigest
    path: list[HexDigest] = Field(max_length=2 * _MAX_PATH)


class Receipt(WireModel):
    """Proof that a vote is leaf ``leaf_index`` of its submission's log under a signed head
    (native/SPEC.md §14.4); checked offline with the log public key alone.

    Only ``vote`` ties the leaf to a vote: a verifier recomputes the digest from it (and
    the vote id from its token id). ``vote_id`` and ``vote_digest`` alone are claims; a
    receipt without ``vote`` proves only that the digest is in the log."""

    type: Literal["receipt"] = "receipt"
    submission_id: Identifier
    vote_id: UUID
    vote: VoteCast | None = Field(
        None, description="the VoteCast the leaf is about, signature included (§14.4)"
    )
    kind: LeafKind
    reason: str | None = Field(
        None,
        max_length=200,
        description="with kind rejection: the reason code the leaf carries (why it was refused)",
    )
    vote_digest: HexDigest
    leaf_index: int = Field(ge=0, le=2**63 - 1)
    inclusion_path: list[HexDigest] = Field(max_length=_MAX_PATH)
    head: SignedHead
    consistency: Consistency | None = Field(
        None, description="from an earlier head of this log (e.g. an earlier receipt's)"
    )

    def leaf_hash(self) -> bytes:
        """Raises ``ValueError`` when ``reason`` does not fit ``kind`` (a malformed receipt)."""
        return log_leaf_hash(self.kind, bytes.fromhex(self.vote_digest), self.reason)


def vote_problem(receipt: Receipt, vote: VoteCast) -> str | None:
    """Why ``vote`` is not the vote ``receipt`` is about (None: it is): its digest,
    recomputed from its bytes, is the receipt's, its vote id is its token's, and its
    vote id and submission are the receipt's."""
    if vote.vote_id != vote_id_for_token(vote.token_id):
        return f"vote id {vote.vote_id} is not the id of its token {vote.token_id}"
    if (vote.vote_id, vote.submission_id) != (receipt.vote_id, receipt.submission_id):
        return (
            f"the receipt names vote {receipt.vote_id} on {receipt.submission_id}, "
            f"the vote is {vote.vote_id} on {vote.submission_id}"
        )
    if vote_digest(vote.signing_bytes(), vote.signature_bytes()).hex() != receipt.vote_digest:
        return f"vote {vote.vote_id}'s digest is not the receipt's {receipt.vote_digest}"
    return None


#: A leaf as the readers of the log pass it around: ``(index, kind, digest)``, or
#: ``(index, kind, digest, reason)`` (a ``rejection`` leaf's reason code).
LeafRow = tuple[int, LeafKind | str, bytes] | tuple[int, LeafKind | str, bytes, str | None]


def ballot_leaves(ballot: Ballot) -> list[tuple[int, LeafKind, bytes]]:
    """The leaves a Ballot records: its own, and the retraction just before it when it
    supersedes a vote. With :func:`rejection_leaves`, every leaf of a log is on some
    Ballot or Rejection of its submission, so the ballots and rejections topics (or the
    sink's ``log_leaves`` table) hold the whole log."""
    if ballot.leaf_index is None or ballot.vote_digest is None:
        return []
    leaves = [(ballot.leaf_index, LeafKind.BALLOT, bytes.fromhex(ballot.vote_digest))]
    if ballot.supersedes_digest is not None and ballot.leaf_index > 0:
        digest = bytes.fromhex(ballot.supersedes_digest)
        leaves.insert(0, (ballot.leaf_index - 1, LeafKind.RETRACTION, digest))
    return leaves


def rejection_leaves(rejection: Rejection) -> list[tuple[int, LeafKind, bytes, str]]:
    """The ``rejection`` leaf a Rejection records, if it has one (a well-formed vote
    refused: ``submission_id``, ``leaf_index`` and ``vote_digest`` set). A
    ``duplicate_key_image`` rejection of a vote that was counted and then retracted
    points at its ``retraction`` leaf instead, which its Ballot already records: none."""
    if rejection.leaf_index is None or rejection.vote_digest is None:
        return []
    if rejection.submission_id is None or rejection.leaf_kind != LeafKind.REJECTION:
        return []
    digest = bytes.fromhex(rejection.vote_digest)
    return [(rejection.leaf_index, LeafKind.REJECTION, digest, str(rejection.reason))]


def leaf_hashes(leaves: Iterable[LeafRow]) -> list[bytes]:
    """The log's leaf hashes in index order, from ``(index, kind, digest[, reason])`` in any
    order (a leaf seen twice, as on a redelivery, counts once). Raises :class:`LogGap`."""
    by_index: dict[int, bytes] = {}
    for index, kind, digest, *reason in leaves:
        h = log_leaf_hash(kind, digest, *reason)
        if by_index.setdefault(index, h) != h:
            raise LogGap(f"two different leaves at index {index}")
    missing = [i for i in range(len(by_index)) if i not in by_index]
    if missing:
        raise LogGap(f"leaf {missing[0]} is missing ({len(by_index)} leaves stored)")
    return [by_index[i] for i in range(len(by_index))]


class LogGap(ValueError):
    """Stored leaves that do not make a log: an index missing, or two leaves at one index."""


class LogMismatch(ValueError):
    """Leaves that do not give the signed root: whoever stored or sent them is not the log."""


def receipt_from_log(
    head: SignedHead,
    leaves: Iterable[LeafRow],
    *,
    vote_id: UUID,
    vote_digest: bytes,
    since: Receipt | None = None,
    vote: VoteCast | None = None,
) -> Receipt:
    """The receipt (SPEC §14.4) of the vote with ``vote_digest`` under ``head``, from the log's
    ``(index, kind, digest[, reason])`` leaves (at least those below the head's size, in any
    order): of its ``ballot`` leaf, or of its ``retraction`` leaf when it was counted and
    then withdrawn, or, never counted, of its latest ``rejection`` leaf; with ``since``,
    the consistency proof from that receipt's head too.

    Raises :class:`LogGap` (a leaf below the head's size missing: retry later, the
    reader may be behind), :class:`LogMismatch` (the leaves are not the signed log), or
    ``LookupError`` (the vote has no leaf under this head). With ``vote`` (the
    VoteCast, as sent) the receipt carries it; ``ValueError`` when it is not the vote
    ``vote_id``/``vote_digest`` name.
    """
    below = [(i, LeafKind(k), d, *r) for i, k, d, *r in leaves if i < head.tree_size]
    hashes = leaf_hashes(below)
    if len(hashes) < head.tree_size:
        raise LogGap(f"{len(hashes)} leaves below the head's size {head.tree_size}")
    if tree_hash(hashes).hex() != head.root_hash:
        raise LogMismatch(
            f"the leaves of {head.submission_id} do not give the signed root at size "
            f"{head.tree_size}"
        )
    mine = sorted((i, k, (r or [None])[0]) for i, k, d, *r in below if d == vote_digest)
    ballot = next((i for i, k, _ in mine if k is LeafKind.BALLOT), None)
    reason = None
    if ballot is not None:
        index, kind = ballot, LeafKind.BALLOT
        retracted = next((i for i, k, _ in mine if k is LeafKind.RETRACTION and i > ballot), None)
        if retracted is not None:  # counted, then withdrawn: the receipt says so
            index, kind = retracted, LeafKind.RETRACTION
    else:
        refused = [(i, r) for i, k, r in mine if k is LeafKind.REJECTION]
        if not refused:
            raise LookupError(f"vote {vote_id} has no leaf under the head at {head.tree_size}")
        (index, reason), kind = refused[-1], LeafKind.REJECTION
    consistency = None
    if since is not None and 0 < since.head.tree_size < head.tree_size:
        consistency = Consistency(
            first_size=since.head.tree_size,
            first_root=since.head.root_hash,
            path=[p.hex() for p in consistency_proof(hashes, since.head.tree_size)],
        )
    receipt = Receipt(
        submission_id=head.submission_id,
        vote_id=vote_id,
        vote=vote,
        kind=kind,
        reason=reason,
        vote_digest=vote_digest.hex(),
        leaf_index=index,
        inclusion_path=[p.hex() for p in inclusion_proof(hashes, index)],
        head=head,
        consistency=consistency,
    )
    problem = None if vote is None else vote_problem(receipt, vote)
    if problem is not None:
        raise ValueError(problem)
    return receipt


def final_head_problem(
    head: SignedHead, final: tuple[int, str, int] | None, largest: int | None
) -> tuple[str, str] | None:
    """(reason, why) when ``head`` rewrites a closed log (§14.3), else None: ``final`` is
    the log's final head seen so far as (size, root, closed_ms), ``largest`` the largest
    size signed before. A closed log has one final head and nothing after it: a second,
    different final head or a final head below a size already signed is
    ``final_conflict``, a larger head after the final one ``after_final``. The witness
    and the sink apply this one rule."""
    sub, size = head.submission_id, head.tree_size
    if final is not None:
        if head.closed_ms is not None and (size, head.root_hash, head.closed_ms) != final:
            return "final_conflict", (
                f"a second final head of {sub} (size {size}, closed at {head.closed_ms}) "
                f"after the final head of size {final[0]}, closed at {final[2]}"
            )
        if head.closed_ms is None and size > final[0]:
            return "after_final", (
                f"a head of {sub} of size {size} after its final head of size {final[0]}"
            )
        return None
    if head.closed_ms is not None and largest is not None and size < largest:
        return "final_conflict", (
            f"a final head of {sub} of size {size} below a head of size {largest} signed before"
        )
    return None
