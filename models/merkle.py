"""RFC 9162 §2.1 Merkle trees over SHA-256: tree hash, compact frontier, inclusion and
consistency proofs (native/SPEC.md §14 says what the leaves of ringtally's logs are).

Pure hashlib, so every floor can import it: the tally stage keeps a
:class:`Frontier` per submission (O(log n) hashes: the roots of the perfect
subtrees that make up the tree, largest first), the CLI builds and checks
proofs from stored leaves, and a voter checks a receipt with nothing but this
module. The algorithms follow the RFC's text step by step; the RFC's names
are kept in comments (``fn``, ``sn``, ``fr``, ``sr``).

Example::

    leaves = [leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")]
    root = tree_hash(leaves)
    proof = inclusion_proof(leaves, 1)
    assert verify_inclusion(leaves[1], 1, 3, proof, root)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "Frontier",
    "consistency_proof",
    "inclusion_proof",
    "inclusion_proofs",
    "inclusion_root",
    "leaf_hash",
    "node_hash",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
]

#: MTH({}): the hash of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d)."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """k: the largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of the leaves whose leaf hashes are given."""
    frontier = Frontier()
    for h in leaf_hashes:
        frontier.append(h)
    return frontier.root()


class Frontier:
    """The compact range [0, size) of a tree: what appending and the root need.

    ``hashes[i]`` is the root of a perfect subtree, one per set bit of
    ``size``, largest (leftmost) first; RFC 9162's split of a tree at the
    largest power of two below its size is exactly this decomposition, so
    folding them right to left gives MTH.
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError(
                f"a frontier of {size} leaves has {size.bit_count()} hashes, got {len(hashes)}"
            )
        self.size = size
        self.hashes = list(hashes)

    def append(self, leaf_hash: bytes) -> int:
        """Append one leaf (its leaf hash); returns its index."""
        index, h, size = self.size, leaf_hash, self.size
        while size & 1:  # each trailing 1 bit is a perfect subtree the new leaf completes
            h = node_hash(self.hashes.pop(), h)
            size >>= 1
        self.hashes.append(h)
        self.size += 1
        return index

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        r = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            r = node_hash(h, r)
        return r

    def to_json(self) -> list:
        """``[size, [hex, ...]]``: the form the tally table stores."""
        return [self.size, [h.hex() for h in self.hashes]]

    @classmethod
    def from_json(cls, raw: Sequence) -> Frontier:
        size, hashes = raw
        return cls(int(size), [bytes.fromhex(h) for h in hashes])


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]) (RFC 9162 §2.1.3.1): sibling hashes from the leaf up."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise ValueError(f"leaf index {index} is outside a tree of {n} leaves")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_proof(leaf_hashes[:k], index), tree_hash(leaf_hashes[k:])]
    return [*inclusion_proof(leaf_hashes[k:], index - k), tree_hash(leaf_hashes[:k])]


def inclusion_root(leaf: bytes, index: int, tree_size: int, path: Sequence[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2 steps 1-4: the root ``path`` leads leaf hash ``leaf`` at ``index``
    to, or None when the path cannot belong to a tree of ``tree_size`` (step 5's check)."""
    if not 0 <= index < tree_size:  # step 1
        return None
    if len(leaf) != 32 or any(len(p) != 32 for p in path):  # a hash is 32 bytes, no other
        return None
    fn, sn, r = index, tree_size - 1, leaf  # steps 2-3
    for p in path:  # step 4
        if sn == 0:  # 4a
            return None
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1  # 4c
    return r if sn == 0 else None  # step 5, the size half


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``path`` prove leaf hash ``leaf`` at ``index`` under ``root``?"""
    return inclusion_root(leaf, index, tree_size, path) == root  # step 5


def inclusion_proofs(leaf_hashes: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """MTH and PATH(i, D[n]) for every i at once: O(n log n), where n calls of
    :func:`inclusion_proof` would take O(n^2)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT, []
    if n == 1:
        return leaf_hashes[0], [[]]
    k = _split(n)
    left_root, left = inclusion_proofs(leaf_hashes[:k])
    right_root, right = inclusion_proofs(leaf_hashes[k:])
    for p in left:  # the lists are this call's own: extended in place, never copied
        p.append(right_root)
    for p in right:
        p.append(left_root)
    return node_hash(left_root, right_root), left + right


def consistency_proof(leaf_hashes: Sequence[bytes], first_size: int) -> list[bytes]:
    """PROOF(m, D[n]) (RFC 9162 §2.1.4.1) for 0 < m <= n; empty when m == n."""
    n = len(leaf_hashes)
    if not 0 < first_size <= n:
        raise ValueError(f"no consistency proof from size {first_size} to size {n}")
    return _subproof(first_size, leaf_hashes, True)


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [tree_hash(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), tree_hash(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), tree_hash(leaves[:k])]


def verify_consistency(
    first_size: int,
    second_size: int,
    first_root: bytes,
    second_root: bytes,
    path: Sequence[bytes],
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree ``second_root`` an append-only extension of ``first_root``?

    Equal sizes need an empty path and equal roots; an empty first tree is
    consistent with any tree of a size >= 1, and an empty second one only with the
    empty tree (the RFC leaves these cases out). Negative sizes, and hashes that are
    not 32 bytes, never verify.
    """
    if first_size < 0 or second_size < 0:
        return False
    if len(first_root) != 32 or len(second_root) != 32 or any(len(p) != 32 for p in path):
        return False
    if first_size == 0:
        if second_size == 0:
            return not path and first_root == second_root == EMPTY_ROOT
        return not path and first_root == EMPTY_ROOT
    if first_size == second_size:
        return not path and first_root == second_root
    if not 0 < first_size < second_size or not path:  # step 1
        return False
    c = list(path)
    if first_size & (first_size - 1) == 0:  # step 2: an exact power of two
        c.insert(0, first_root)
    fn, sn = first_size - 1, second_size - 1  # step 3
    while fn & 1:  # step 4
        fn, sn = fn >> 1, sn >> 1
    fr = sr = c[0]  # step 5
    for p in c[1:]:  # step 6
        if sn == 0:  # 6a
            return False
        if fn & 1 or fn == sn:  # 6b
            fr, sr = node_hash(p, fr), node_hash(p, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, p)
        fn, sn = fn >> 1, sn >> 1  # 6c
    return fr == first_root and sr == second_root and sn == 0  # step 7
