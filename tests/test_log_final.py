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


@pytest.mark.timeout(300)
def test_a_closed_submission_gets_a_final_head_and_its_receipts_say_final(stack, tmp_path):
    from connectors.sdk import Admin

    with live_round(stack, tmp_path, sink=True) as lr:
        settings, outputs = lr.settings, lr.outputs
        outputs.wait_for(lambda o: _heads_stored(settings, o), timeout=60, what="heads stored")
        closed = max(
            {b["submission_id"] for b in outputs.ballots},
            key=lambda s: outputs.latest_tally(s)["log_size"],
        )
        live = outputs.latest_tally(closed)
        assert _stored_head(settings, closed)["closed_ms"] is None
        Admin(settings).close_submission(closed)

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

        outputs.wait_for(
            lambda o: (_stored_head(settings, closed) or {}).get("closed_ms") is not None,
            timeout=60,
            what="the final head stored",
        )
        final = _stored_head(settings, closed)
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


def test_the_tally_stage_signs_the_final_head_when_every_votes_partition_passed():
    """Without Kafka: a ClosingPassed per votes partition (4 here, redeliveries included);
    only the fourth distinct one makes the head final, at the log's size and root."""
    from agents.loghead import LogSigner
    from agents.records import SourceRecord
    from agents.tally import TallyKeeper
    from models.internal import ClosingPassed
    from tests.test_double_votes import FIRST, SETTINGS, Store, _read_vote, _records

    class Heads(Store):
        def __init__(self) -> None:
            super().__init__()
            self.heads: list = []

        async def head(self, h):
            self.heads.append(h)

    signer = LogSigner(ringcrypto.SecretKey.generate())
    store, state = Heads(), {}
    keeper = TallyKeeper(
        settings=SETTINGS, state=state, outputs=store, read_vote=_read_vote, sign_heads=signer.sign
    )
    asyncio.run(keeper.process(_records([FIRST])))

    def passed(offset, partition):
        m = ClosingPassed(submission_id="s1", closed_ms=9000, votes_partition=partition)
        return SourceRecord("accepted", 1, offset, b"s1", m.to_json())

    asyncio.run(keeper.process([passed(1, 0), passed(2, 1), passed(3, 1), passed(4, 2)]))
    assert [h.closed_ms for h in store.heads] == [None]  # partition 3 has not passed yet
    asyncio.run(keeper.process([passed(5, 3)]))
    final = store.heads[-1]
    assert (final.closed_ms, final.tree_size) == (9000, 1)
    assert final.root_hash == store.tallies["s1"].log_root
    verify_head(final, signer.public_key)
    asyncio.run(keeper.process([passed(6, 3)]))  # redelivered: signed again, the same head
    assert store.heads[-1].head_bytes() == final.head_bytes()
