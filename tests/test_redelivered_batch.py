"""A tally batch whose outputs left but whose state did not, redelivered, through the real sink.

Finding F11 (docs/reliability.md), as seen in the three-broker chaos run (seed
8409): the tally stage emits a batch's ballots as it decides them, and its
table writes reach the changelog when the batch ends. A worker killed in
between leaves the outputs on the topics and no state. The batch comes again
and is decided again from the older state, byte for byte as the first time,
so a double vote whose later-cast half arrived first emits, again, the later
half's ballot and then the earlier half's ballot that supersedes it. The sink
had stored the superseding ballot already; the second copy of the retracted
ballot was dead-lettered ``ballot_conflict`` (four of them in that run) although
nothing was wrong. Here: the real TallyKeeper, real Kafka topics, the real
sink and Postgres.
"""

from __future__ import annotations

import uuid

import pytest

from agents.records import SourceRecord
from agents.tally import TallyKeeper
from connectors.postgres.sink import Sink
from tests.fixtures.accepted import accepted_vote
from tests.fixtures.sink_records import produce, sink_schema

pytestmark = pytest.mark.integration

KEY_IMAGE = "ab" * 32


class Sent:
    """The tally stage's outputs, in the order it sent them: (kind, key, value)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []

    async def rejection(self, key, rejection):  # noqa: ANN001, ANN201
        self.records.append(("rejections", key, rejection.to_json()))

    async def ballot(self, ballot):  # noqa: ANN001, ANN201
        self.records.append(("ballots", ballot.submission_id.encode(), ballot.to_json()))

    async def tally(self, tally):  # noqa: ANN001, ANN201
        self.records.append(("tallies", tally.submission_id.encode(), tally.to_json()))

    async def audit(self, event):  # noqa: ANN001, ANN201
        self.records.append(("audit", event.chain.encode(), event.to_json()))


async def _read_vote(partition: int, offset: int) -> bytes:
    return f"raw vote {partition}:{offset}".encode()


async def _decide(settings, records: list[SourceRecord]) -> Sent:  # noqa: ANN001
    """One attempt at the batch, from the state before it (the crash lost its writes)."""
    sent = Sent()
    keeper = TallyKeeper(settings=settings, state={}, outputs=sent, read_vote=_read_vote)
    await keeper.process(records)
    return sent


async def _publish(settings, records: list[tuple[str, bytes, bytes]]) -> None:  # noqa: ANN001
    """Produce these outputs, then let the sink store them (one or more transactions)."""
    for kind in ("rejections", "ballots", "tallies", "audit"):
        values = [v for k, _, v in records if k == kind]
        keys = [key for k, key, _ in records if k == kind]
        await produce(settings, kind, values, keys=keys, partition=0)
    await Sink(settings, once=True).run()


@pytest.fixture
async def pg(settings):  # noqa: ANN001, ANN201
    async with sink_schema(settings) as conn:
        yield conn


async def test_a_redelivered_batch_re_emitting_a_retracted_ballot_is_no_conflict(
    settings, pg
) -> None:
    later = accepted_vote(uuid.uuid4(), "sub-r", KEY_IMAGE, "reject", offset=9, timestamp_ms=200)
    earlier = accepted_vote(
        uuid.uuid4(), "sub-r", KEY_IMAGE, "flag", partition=1, offset=4, timestamp_ms=100
    )
    # the later-cast half reaches the tally stage first: counted, then retracted
    records = [
        SourceRecord("accepted", 0, n, v.submission_id.encode(), v.to_json())
        for n, v in enumerate([later, earlier])
    ]
    first = await _decide(settings, records)
    again = await _decide(settings, records)  # the worker died before its table writes left
    assert again.records == first.records  # a redelivery re-emits byte for byte
    ballots = [n for n, (k, _, _) in enumerate(first.records) if k == "ballots"]
    assert len(ballots) == 2  # the retracted ballot, then the one superseding it

    await _publish(settings, first.records)
    # the sink reads the second attempt in two transactions, cut between its two ballots
    # (as in the chaos run): the retracted ballot's copy comes alone
    await _publish(settings, again.records[: ballots[1]])
    await _publish(settings, again.records[ballots[1] :])

    assert await pg.fetch("SELECT reason, detail FROM sink_dead_letters") == []
    rows = await pg.fetch("SELECT vote_id, vote_type FROM ballots WHERE submission_id = 'sub-r'")
    assert [(r["vote_id"], r["vote_type"]) for r in rows] == [(earlier.vote_id, "flag")]
    retracted = await pg.fetchval(
        "SELECT reason FROM rejections WHERE source_partition = 0 AND source_offset = 9"
    )
    assert retracted == "duplicate_key_image"
    assert await pg.fetchval("SELECT total FROM tallies WHERE submission_id = 'sub-r'") == 1
