"""The final head (SPEC §14.3): after the registrar closes a submission, its log's head is
signed as final once every votes partition has passed the closing, and a receipt under it
says so.

A small round goes through a real worker and the sink; one of its submissions is closed;
then votes on another submission land on every votes partition (each partition's
watermark passes the closing). The closed submission's stored head becomes final with its
live size and root, ``receipt show`` of one of its ballots carries that head, and
``receipt verify`` prints FINAL; the same head without its ``closed_ms`` does not verify.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

import ringcrypto
from connectors.postgres.db import connect
from connectors.sdk.receipt import ReceiptInvalid, trusted_log_key, verify_head
from models.log import Receipt
from streams.partitioner import partition_for_key
from tests.fixtures.rounds import Scenario, live_round
from tests.test_log_live import _cli, _heads_stored


def _stored_head(settings, submission_id):
    async def go():
        conn = await connect(settings)
        try:
            return await conn.fetchrow(
                "SELECT tree_size, root_hash, closed_ms FROM log_heads WHERE submission_id = $1",
                submission_id,
            )
        finally:
            await conn.close()

    return asyncio.run(go())


def _close_the_largest(settings, outputs):
    """Once every head is stored, close the submission with the largest log (not final yet):
    its id and its latest Tally."""
    from connectors.sdk import Admin

    outputs.wait_for(lambda o: _heads_stored(settings, o), timeout=60, what="heads stored")
    closed = max(
        {b["submission_id"] for b in outputs.ballots},
        key=lambda s: outputs.latest_tally(s)["log_size"],
    )
    assert _stored_head(settings, closed)["closed_ms"] is None
    live = outputs.latest_tally(closed)
    Admin(settings).close_submission(closed)
    return closed, live


def _final_head_stored(settings, outputs, submission_id, *, timeout):
    outputs.wait_for(
        lambda o: (_stored_head(settings, submission_id) or {}).get("closed_ms") is not None,
        timeout=timeout,
        what=f"the final head of {submission_id} stored",
    )
    return _stored_head(settings, submission_id)


@pytest.mark.timeout(300)
def test_a_closed_submission_gets_a_final_head_and_its_receipts_say_final(stack, tmp_path):
    with live_round(stack, tmp_path, sink=True) as lr:
        settings, outputs = lr.settings, lr.outputs
        closed, live = _close_the_largest(settings, outputs)

        # a vote after the closing on every votes partition (another submission's)
        scenario = Scenario(settings, genre="after-closing")
        keys, ring = scenario.seeded("after-closing", k=16)
        by_partition = {}
        for key in keys:
            for slot in range(16):
                tag = key.slot_tag((1).to_bytes(8, "big"), slot).hex()
                by_partition.setdefault(
                    partition_for_key(tag.encode(), settings.partitions), (key, slot)
                )
        assert len(by_partition) == settings.partitions
        for key, slot in by_partition.values():
            scenario.vote(key, ring, "s-after-closing", slot=slot)

        final = _final_head_stored(settings, outputs, closed, timeout=60)
        assert (final["tree_size"], final["root_hash"]) == (live["log_size"], live["log_root"])

        counted = next(b["vote_id"] for b in outputs.ballots if b["submission_id"] == closed)
        env = settings.to_env()
        shown = _cli(env, "receipt", "show", counted)
        assert shown.returncode == 0, shown.stderr
        receipt = Receipt.model_validate_json(shown.stdout)
        assert receipt.head.closed_ms == final["closed_ms"]
        path = tmp_path / "final.json"
        path.write_text(shown.stdout)
        ok = _cli(env, "receipt", "verify", str(path))
        assert ok.returncode == 0, ok.stderr
        assert "FINAL" in ok.stdout, ok.stdout
        key = trusted_log_key(settings)
        with pytest.raises(ReceiptInvalid, match="signature invalid"):
            verify_head(receipt.head.model_copy(update={"closed_ms": None}), key)


@pytest.mark.timeout(300)
def test_a_closed_submission_gets_its_final_head_with_no_vote_after_the_closing(stack, tmp_path):
    """No vote follows the closing on any votes partition: the verify stage passes the closing
    on its idle partitions from their end offsets (SPEC §14.3), so the final head comes anyway,
    at the log's live size and root (before: the head waited for traffic for good)."""
    with live_round(stack, tmp_path, sink=True) as lr:
        settings, outputs = lr.settings, lr.outputs
        closed, live = _close_the_largest(settings, outputs)
        final = _final_head_stored(settings, outputs, closed, timeout=90)
        assert (final["tree_size"], final["root_hash"]) == (live["log_size"], live["log_root"])
        assert outputs.latest_tally(closed)["log_size"] == live["log_size"]


def _keeper_with_heads():
    """A TallyKeeper (unit settings, 4 votes partitions) signing heads with a fresh log key;
    its outputs keep the heads too. (keeper, outputs, signer)"""
    from agents.loghead import LogSigner
    from agents.tally import TallyKeeper
    from tests.test_double_votes import SETTINGS, Store, _read_vote

    class Heads(Store):
        def __init__(self) -> None:
            super().__init__()
            self.heads: list = []

        async def head(self, h):
            self.heads.append(h)

    signer = LogSigner(ringcrypto.SecretKey.generate())
    store = Heads()
    keeper = TallyKeeper(
        settings=SETTINGS, state={}, outputs=store, read_vote=_read_vote, sign_heads=signer.sign
    )
    return keeper, store, signer


def _passed(offset, partition):
    """The accepted-topic record of s1's closing (broker time 9000) passed on ``partition``."""
    from agents.records import SourceRecord
    from models.internal import ClosingPassed

    m = ClosingPassed(submission_id="s1", closed_ms=9000, votes_partition=partition)
    return SourceRecord("accepted", 1, offset, b"s1", m.to_json())


def test_the_tally_stage_signs_the_final_head_when_every_votes_partition_passed():
    """Without Kafka: a ClosingPassed per votes partition (4 here, redeliveries included);
    only the fourth distinct one makes the head final, at the log's size and root."""
    from tests.test_double_votes import FIRST, _records

    keeper, store, signer = _keeper_with_heads()
    asyncio.run(keeper.process(_records([FIRST])))

    asyncio.run(keeper.process([_passed(1, 0), _passed(2, 1), _passed(3, 1), _passed(4, 2)]))
    assert [h.closed_ms for h in store.heads] == [None]  # partition 3 has not passed yet
    asyncio.run(keeper.process([_passed(5, 3)]))
    final = store.heads[-1]
    assert (final.closed_ms, final.tree_size) == (9000, 1)
    assert final.root_hash == store.tallies["s1"].log_root
    verify_head(final, signer.public_key)
    asyncio.run(keeper.process([_passed(6, 3)]))  # redelivered: signed again, the same head
    assert store.heads[-1].head_bytes() == final.head_bytes()


def test_after_its_final_head_the_tally_stage_appends_no_leaf_and_refuses_instead(caplog):
    """Without Kafka: once the final head is signed, a new vote, an earlier vote that would
    retract the counted one, a later double vote and a refusal of the same submission reach
    the tally stage (a bug upstream): each is rejected submission_closed with no leaf, with
    one ERROR line naming no key image or token and a metric; the log and tally stay as the
    final head says, and a redelivery of a vote counted before still changes nothing."""
    from streams.metrics import WORKER_REGISTRY
    from tests.test_double_votes import FIRST, KEY_IMAGE, OTHER_KEY_IMAGE, SETTINGS, _records, _vote
    from tests.test_log_rejections import _refusal

    def refused() -> float:
        return WORKER_REGISTRY.get_sample_value("ringtally_log_leaves_after_final_total") or 0.0

    keeper, store, _ = _keeper_with_heads()
    asyncio.run(keeper.process(_records([FIRST])))
    asyncio.run(keeper.process([_passed(1 + p, p) for p in range(SETTINGS.partitions)]))
    final = store.heads[-1]
    assert (final.closed_ms, final.tree_size) == (9000, 1)
    tally = store.tallies["s1"]
    before, heads = refused(), len(store.heads)

    late = [
        _vote("reject", ts=9500, partition=2, offset=40, key_image=OTHER_KEY_IMAGE),  # new
        _vote("flag", ts=50, partition=0, offset=41, key_image=KEY_IMAGE),  # would retract
        _vote("escalate", ts=9600, partition=1, offset=42, key_image=KEY_IMAGE),  # double
    ]
    caplog.clear()
    with caplog.at_level("ERROR", logger="agents.tally"):
        asyncio.run(keeper.process(_records(late, start=10) + [_refusal(43)]))
        asyncio.run(keeper.process(_records([FIRST], start=20)))  # a redelivery: no new leaf
    for partition, offset in [(2, 40), (0, 41), (1, 42), (2, 43)]:
        r = store.rejections[(SETTINGS.topic("votes"), partition, offset)]
        assert r.reason == "submission_closed" and r.leaf_index is None, r
        assert r.submission_id == "s1" and "final head" in r.detail
    assert refused() - before == 4
    errors = [m for m in caplog.messages if "after the final head" in m]
    assert len(errors) == 4
    assert not any(KEY_IMAGE in m or OTHER_KEY_IMAGE in m or "ab" * 32 in m for m in errors)
    assert store.tallies["s1"] == tally  # no new count, no new leaf
    assert all(h.tree_size == 1 and h.root_hash == final.root_hash for h in store.heads[heads:])
    assert store.ballots[("s1", KEY_IMAGE)].vote_id == FIRST.vote_id


def test_the_verify_stage_passes_an_idle_partitions_closing_once_all_below_its_end_is_decided():
    """Without Kafka: VoteVerifier.pass_idle_closings. A closing is not passed within its
    grace; then each idle partition passes once every record below its end offset was
    decided here, or lies below its commit; a partition with an undecided record below its
    end waits, and passes (after that record's outcome, even asked while the record is being
    applied) once it is decided; asked again, nothing is sent twice."""
    from agents.control import ControlRecord
    from agents.verify import VoteVerifier
    from models.control import SubmissionClosed
    from tests.fixtures.votes import signed
    from tests.test_agents_logic import SETTINGS, VerifyOut, _control, _ring_v, _vote

    keys = [ringcrypto.SecretKey.generate() for _ in range(4)]
    ring = ringcrypto.Ring([k.public_key for k in keys])
    control = _control((_ring_v(1, keys), 1000))
    closing = signed(SubmissionClosed(submission_id="s2")).to_json()
    subs = SETTINGS.topic("submissions")
    assert control.apply(ControlRecord(subs, 0, 3, 6000, b"s2", closing)) is None

    events: list = []

    class Out(VerifyOut):
        async def accepted(self, v):
            await asyncio.sleep(0.05)  # a slow producer: the check must wait for it
            events.append(("outcome", v.source_partition, v.source_offset))

        async def rejection(self, key, r):  # the second vote, when not on its home partition
            await asyncio.sleep(0.05)
            events.append(("outcome", r.source_partition, r.source_offset))

        async def closing_passed(self, passed):
            events.append(("passed", passed.submission_id, passed.votes_partition))

    verifier = VoteVerifier(
        control=control,
        tokens={},
        outputs=Out(),
        verify_batch=ringcrypto.verify_vote_batch,
        partitions=SETTINGS.partitions,
    )
    first, second = _vote(0, keys, ring, 0, sub="s1"), _vote(1, keys, ring, 1, sub="s1")
    busy = first.partition
    second = dataclasses.replace(second, partition=busy)  # a second record there
    asked = []

    async def ends(partitions):
        asked.append(list(partitions))
        return {p: (2 if p == busy else 5 if p == committed_at else 0) for p in partitions}

    committed_at = (busy + 1) % SETTINGS.partitions  # its records decided before a restart

    def committed(p):
        return 5 if p == committed_at else None

    async def story():
        idle = list(range(SETTINGS.partitions))
        await verifier.process([first])
        await verifier.pass_idle_closings(idle, end_offsets=ends, committed=committed, grace=60)
        assert events == [("outcome", busy, 0)] and asked == []  # within the grace
        await verifier.pass_idle_closings(idle, end_offsets=ends, committed=committed, grace=0)
        passed = {p for kind, _, p in events if kind == "passed"}
        assert passed == set(idle) - {busy}  # busy: offset 1 below its end undecided
        applying = asyncio.create_task(verifier.process([second]))
        await asyncio.sleep(0.01)  # the batch is being applied: its outcome not out yet
        await verifier.pass_idle_closings(idle, end_offsets=ends, committed=committed, grace=0)
        await applying
        await verifier.pass_idle_closings(idle, end_offsets=ends, committed=committed, grace=0)

    asyncio.run(story())
    assert events[-2:] == [("outcome", busy, 1), ("passed", "s2", busy)]
    markers = [e for e in events if e[0] == "passed"]
    assert sorted(p for _, _, p in markers) == list(range(SETTINGS.partitions))  # once each
    assert all(s == "s2" for _, s, _ in markers)
