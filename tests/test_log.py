"""The per-submission log (native/SPEC.md §14): RFC 9162 proofs, and the tally stage's frontier.

The tree code is checked against a straight transcription of RFC 9162's MTH
recursion; tampering with, dropping or reordering leaves must break the
proofs; and the tally stage's log, rebuilt from the Ballots it emitted, must
have the root its Tally names, through retractions and every crash-restore
that test_double_votes already replays.
"""

from __future__ import annotations

import asyncio
import copy
import json

import pytest

import ringcrypto
from agents.loghead import LogSigner
from agents.tally import TallyKeeper
from connectors.sdk.receipt import ReceiptInvalid, verify_head
from models.log import (
    LeafKind,
    LogGap,
    ballot_leaves,
    leaf_hashes,
    log_leaf_hash,
    rejection_leaves,
)
from models.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    inclusion_proof,
    inclusion_root,
    leaf_hash,
    node_hash,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)
from tests.test_double_votes import (
    ARRIVAL,
    CRASHES,
    FIRST,
    SECOND,
    SETTINGS,
    Store,
    _history,
    _read_vote,
    _records,
    _run,
)


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1, word for word."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(f"leaf {i}".encode()) for i in range(n)]


@pytest.mark.parametrize("n", range(0, 34))
def test_frontier_root_and_proofs_match_rfc_9162(n):
    leaves = _leaves(n)
    root = mth(leaves)
    assert tree_hash(leaves) == root
    frontier = Frontier()
    for i, h in enumerate(leaves):
        assert frontier.append(h) == i
        assert len(frontier.hashes) == frontier.size.bit_count()  # O(log n)
    assert Frontier.from_json(frontier.to_json()).root() == root
    for i in range(n):
        assert verify_inclusion(leaves[i], i, n, inclusion_proof(leaves, i), root)
    for m in range(1, n + 1):
        assert verify_consistency(m, n, mth(leaves[:m]), root, consistency_proof(leaves, m))


def test_rfc_9162_example_tree_of_seven_leaves():
    """RFC 9162 §2.1.5: the path of d0 in the 7-leaf tree is [b, h, l]; PROOF(3, D[7])
    is [c, d, g, l] (the RFC's node names: g, h, i over leaf pairs, k = (g, h), l = (i, j))."""
    d = _leaves(7)
    g, h = node_hash(d[0], d[1]), node_hash(d[2], d[3])
    i, j = node_hash(d[4], d[5]), d[6]
    k, l_ = node_hash(g, h), node_hash(i, j)
    assert inclusion_proof(d, 0) == [d[1], h, l_]
    assert inclusion_proof(d, 5) == [d[4], j, k]
    assert consistency_proof(d, 3) == [d[2], d[3], g, l_]
    assert consistency_proof(d, 4) == [l_]
    assert consistency_proof(d, 6) == [i, j, k]


@pytest.mark.parametrize("n", [2, 5, 8, 13])
def test_tampered_dropped_or_reordered_leaves_fail_inclusion_and_consistency(n):
    leaves = _leaves(n)
    root = mth(leaves)
    tampered = [*leaves[:1], leaf_hash(b"forged"), *leaves[2:]]
    dropped = leaves[:1] + leaves[2:]
    reordered = [leaves[1], leaves[0], *leaves[2:]]
    for i in range(n):
        path = inclusion_proof(leaves, i)
        for other in (tampered, dropped, reordered):
            if i < len(other) and other[i] != leaves[i]:
                assert not verify_inclusion(other[i], i, n, path, root)
            # a proof computed from the altered log never reaches the signed root
            if i < len(other):
                alt = inclusion_proof(other, i)
                assert not verify_inclusion(other[i], i, len(other), alt, root)
    for m in range(1, n):
        for other in (tampered, dropped, reordered):
            later = [*other, leaf_hash(b"new")]
            proof = consistency_proof(later, m) if m < len(later) else []
            assert not verify_consistency(m, len(later), mth(leaves[:m]), mth(later), proof) or (
                later[:m] == leaves[:m]
            )
    # a proof for one index never proves another (the size is bound by the signed head)
    assert not verify_inclusion(leaves[0], 1, n, inclusion_proof(leaves, 0), root)


def _rebuilt(store: Store) -> list[bytes]:
    """The log as a reader rebuilds it from every Ballot and Rejection emitted."""
    return leaf_hashes(
        [
            *(leaf for b in store.all_ballots for leaf in ballot_leaves(b)),
            *(leaf for r in store.all_rejections for leaf in rejection_leaves(r)),
        ]
    )


class LoggingStore(Store):
    """A Store that also keeps every Ballot ever emitted (the ballots topic's history)."""

    def __init__(self) -> None:
        super().__init__()
        self.all_ballots: list = []
        self.all_tallies: list = []
        self.all_rejections: list = []

    async def rejection(self, key, r):
        self.all_rejections.append(r)
        await super().rejection(key, r)

    async def ballot(self, b):
        self.all_ballots.append(b)
        await super().ballot(b)

    async def tally(self, t):
        self.all_tallies.append(t)
        await super().tally(t)


def test_tally_carries_the_root_of_the_leaves_its_ballots_record():
    store, state = LoggingStore(), {}
    _run(state, store, [SECOND])
    first_tally = store.tallies["s1"]
    assert (first_tally.log_size, store.all_ballots[0].leaf_index) == (1, 0)
    _run(state, store, [FIRST], start=1)  # cast earlier: retracts SECOND
    tally = store.tallies["s1"]
    leaves = _rebuilt(store)
    assert tally.log_size == 3 and tally.log_root == mth(leaves).hex()
    assert leaves == [
        log_leaf_hash(LeafKind.BALLOT, bytes.fromhex(SECOND.vote_digest)),
        log_leaf_hash(LeafKind.RETRACTION, bytes.fromhex(SECOND.vote_digest)),
        log_leaf_hash(LeafKind.BALLOT, bytes.fromhex(FIRST.vote_digest)),
    ]
    ballot = store.ballots[("s1", FIRST.key_image)]
    assert ballot.leaf_index == 2 and ballot.supersedes_digest == SECOND.vote_digest
    # the first head is a prefix of the later one
    proof = consistency_proof(leaves, 1)
    assert verify_consistency(1, 3, bytes.fromhex(first_tally.log_root), mth(leaves), proof)


def test_a_ballot_missing_from_the_stored_log_is_a_gap():
    store = LoggingStore()
    _run({}, store, [SECOND])
    _run({}, store, [FIRST])  # another state: FIRST is leaf 0 too, with another leaf
    with pytest.raises(LogGap, match="two different leaves at index 0"):
        _rebuilt(store)
    with pytest.raises(LogGap, match="leaf 0 is missing"):
        leaf_hashes([(1, LeafKind.BALLOT, b"\0" * 32)])


@pytest.mark.parametrize(("redelivered", "tallied", "entries"), CRASHES)
def test_receipts_from_before_a_crash_verify_after_the_repair(redelivered, tallied, entries):
    """test_double_votes' crash matrix, for the log: after the repair, every ballot's leaf
    proves into the final root, the leaf indexes are those of the clean run, and every head
    emitted before the crash is a prefix of the final one."""
    clean, snapshots = _history(ARRIVAL, batch=1)
    logging_clean = LoggingStore()
    _run({}, logging_clean, ARRIVAL, batch=1)
    clean_final = logging_clean.tallies["s1"]
    # ballot and refusal entries are written before the tally (agents/tally.py)
    crashed = {k: v for k, v in snapshots[entries].items() if k.startswith((b"b|", b"r|"))}
    crashed.update(
        {k: v for k, v in snapshots[tallied].items() if not k.startswith((b"b|", b"r|"))}
    )
    store = copy.deepcopy(logging_clean)
    keeper = TallyKeeper(settings=SETTINGS, state=crashed, outputs=store, read_vote=_read_vote)
    records = _records(ARRIVAL[redelivered:], redelivered)
    for r in records:
        asyncio.run(keeper.process([r]))
    final = store.tallies["s1"]
    leaves = _rebuilt(store)  # pre-crash and redelivered ballots agree leaf for leaf
    assert (final.log_size, final.log_root) == (clean_final.log_size, clean_final.log_root)
    assert final.log_root == mth(leaves).hex() and final.log_size == len(leaves)
    for head in store.all_tallies:  # before the crash and during the repair
        first = bytes.fromhex(head.log_root)
        proof = consistency_proof(leaves, head.log_size)
        assert verify_consistency(head.log_size, len(leaves), first, mth(leaves), proof)
    for b in store.all_ballots:
        if b.submission_id == "s1":
            path = inclusion_proof(leaves, b.leaf_index)
            leaf = log_leaf_hash(LeafKind.BALLOT, bytes.fromhex(b.vote_digest))
            assert verify_inclusion(leaf, b.leaf_index, len(leaves), path, mth(leaves))


def test_one_signature_covers_a_batch_of_heads_and_each_verifies_alone():
    signer = LogSigner(ringcrypto.SecretKey.generate())
    leaves = _leaves(5)
    heads = signer.sign([(f"s{n}", n, tree_hash(leaves[:n])) for n in range(1, 6)])
    assert len({h.signature for h in heads}) == 1
    for h in heads:
        verify_head(h, signer.public_key)
    h = heads[2]
    for forged in (
        h.model_copy(update={"root_hash": heads[3].root_hash}),
        h.model_copy(update={"tree_size": 4}),
        h.model_copy(update={"batch_index": 3}),
        h.model_copy(update={"batch_path": list(reversed(h.batch_path))}),
        h.model_copy(update={"batch_size": 6}),
    ):
        with pytest.raises(ReceiptInvalid):
            verify_head(forged, signer.public_key)
    assert signer.sign([]) == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 2: not a bulletin line"),
        ('{"type": "leaf", "index": 0, "kind": "bogus", "vote": {}}', "line 2: invalid"),
        (
            '{"type": "leaf", "index": "0", "kind": "ballot"}',
            "line 2: invalid 'index': a leaf index",
        ),
        ('{"type": "ring", "record": {"ring_id": "r"}}', "line 2: invalid"),
        ('{"type": "tally"}', "line 2: unknown line type"),
    ],
)
def test_a_malformed_bulletin_line_is_one_clear_error_naming_the_line(line, message):
    from connectors.sdk.bulletin import BulletinInvalid, recount

    [head] = LogSigner(ringcrypto.SecretKey.generate()).sign([("s", 0, EMPTY_ROOT)])
    header = json.dumps(
        {
            "type": "bulletin",
            "submission_id": "s",
            "rules_version": "ringtally-rules-v1;min_votes=3;flag_threshold=3",
            "head": head.model_dump(mode="json"),
        }
    )
    with pytest.raises(BulletinInvalid, match=message):
        recount([header, line])
    assert recount([header]).log_size == 0  # the empty log recounts


@pytest.mark.parametrize(
    "args",
    [
        (0, 0, EMPTY_ROOT, b"\x01" * 32, []),  # an empty tree is consistent with itself only
        (-1, -1, b"\x01" * 32, b"\x01" * 32, []),
        (0, -1, EMPTY_ROOT, EMPTY_ROOT, []),
        (1, 1, b"\x01" * 32, b"\x01" * 32, [b"\x01" * 32]),
        (2, 1, b"\x01" * 32, b"\x01" * 32, [b"\x01" * 32]),
    ],
)
def test_consistency_refuses_empty_negative_and_padded_cases(args):
    """The review's merkle_fuzz.py: these verified."""
    assert not verify_consistency(*args)
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])


def test_proof_elements_that_are_not_32_bytes_never_verify():
    leaves = _leaves(4)
    root, path = tree_hash(leaves), inclusion_proof(leaves, 1)
    assert verify_inclusion(leaves[1], 1, 4, path, root)
    short = [path[0][:31], *path[1:]]
    assert inclusion_root(leaves[1], 1, 4, short) is None
    assert inclusion_root(leaves[1], 1, 2, [b"x"]) is None
    proof = consistency_proof(leaves, 3)
    assert verify_consistency(3, 4, tree_hash(leaves[:3]), root, proof)
    padded = [p + b"\0" for p in proof]
    assert not verify_consistency(3, 4, tree_hash(leaves[:3]), root, padded)


def test_a_tally_more_than_one_change_behind_stops_the_worker():
    """The ballot entries survived a crash, the tally lost two changes, and redelivery starts
    after them: nothing can repair that; going on would reuse leaf indexes. It raises (the
    tally agent's guard then stops the worker) instead of logging and going on."""
    from agents.tally import TallyStateBehind

    _, snapshots = _history(ARRIVAL, batch=1)
    state = {k: v for k, v in snapshots[3].items() if k.startswith((b"b|", b"r|"))}
    keeper = TallyKeeper(settings=SETTINGS, state=state, outputs=Store(), read_vote=_read_vote)
    with pytest.raises(TallyStateBehind, match="behind ballot version"):
        for r in _records(ARRIVAL[2:], 2):
            asyncio.run(keeper.process([r]))
