"""Double votes (one key image, several votes): the vote cast first counts, in any arrival order.

DESIGN invariant 6: replaying the input into fresh state gives the same
ballots, rejections and tallies. The votes of a double vote spend different
slots (tags), usually on different votes partitions, so they can reach the tally
stage in either order; these tests feed TallyKeeper every order and every
crash-restore it must repair, and compare what a downstream store ends with.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
import uuid

import pytest

from agents.records import SourceRecord
from agents.tally import TallyKeeper
from models import first_break
from streams.settings import Settings
from tests.fixtures.accepted import accepted_vote

SETTINGS = Settings(topic_prefix="unit", partitions=4)
KEY_IMAGE = "ab" * 32
OTHER_KEY_IMAGE = "cd" * 32


class Store:
    """What a downstream store keeps: the sink's rules, in memory.

    Ballots: one per (submission, key image), the last on the topic; a ballot
    naming ``supersedes`` replaces that vote's row. Rejections: the first per
    votes-topic position. Tallies: the highest version.
    """

    def __init__(self) -> None:
        self.ballots: dict[tuple[str, str], object] = {}
        self.rejections: dict[tuple[str, int, int], object] = {}
        self.tallies: dict[str, object] = {}
        self.events: dict[tuple[str, int], object] = {}
        self.forks: list = []

    async def ballot(self, b):
        self.ballots[(b.submission_id, b.key_image)] = b

    async def rejection(self, key, r):
        self.rejections.setdefault((r.source_topic, r.source_partition, r.source_offset), r)

    async def tally(self, t):
        def newer(t):  # a refusal's leaf grows the log, not the version
            return (t.version, t.log_size or 0)

        if t.submission_id not in self.tallies or newer(self.tallies[t.submission_id]) < newer(t):
            self.tallies[t.submission_id] = t

    async def audit(self, e):
        stored = self.events.setdefault((e.chain, e.sequence), e)
        if stored != e:
            self.forks.append(e)

    @property
    def chain(self) -> list:
        assert self.forks == [], "an audit event was re-emitted with other content"
        return sorted(self.events.values(), key=lambda e: (e.chain, e.sequence))

    def outcome(self):
        """What invariant 6 compares: counted votes, rejections (without detail), counts."""
        return (
            sorted(
                (b.vote_id, b.vote_type.value, b.source_partition, b.source_offset)
                for b in self.ballots.values()
            ),
            sorted(
                (k, r.vote_id, r.reason.value, r.payload_b64) for k, r in self.rejections.items()
            ),
            {s: t.counts.model_dump() for s, t in self.tallies.items()},
        )


#: (partition, offset) -> raw value: the votes topic the tests' votes came from.
VOTES_TOPIC: dict[tuple[int, int], bytes] = {}


def _vote(vote_type, *, ts, partition, offset, key_image=KEY_IMAGE, sub="s1"):
    token = uuid.uuid4().hex * 2  # a slot tag's hex (64 digits)
    VOTES_TOPIC[(partition, offset)] = f"raw vote {token}".encode()
    return accepted_vote(
        uuid.uuid4(),
        sub,
        key_image,
        vote_type,
        token=token,
        partition=partition,
        offset=offset,
        timestamp_ms=ts,
    )


async def _read_vote(partition, offset):
    """TallyKeeper's read_vote: the raw votes-topic value of every vote made by _vote."""
    return VOTES_TOPIC.get((partition, offset))


def _records(votes, start=0, partition=1):
    return [
        SourceRecord("accepted", partition, start + n, v.submission_id.encode(), v.to_json())
        for n, v in enumerate(votes)
    ]


def _run(state, store, votes, *, start=0, batch=None):
    keeper = TallyKeeper(settings=SETTINGS, state=state, outputs=store, read_vote=_read_vote)
    records = _records(votes, start)
    step = batch or len(records)
    for i in range(0, len(records), step):
        asyncio.run(keeper.process(records[i : i + step]))


# A reviewer's three votes on s1 (the same key image), cast at t=100, 200, 300,
# on three votes partitions, plus another reviewer's vote on s1.
FIRST = _vote("approve", ts=100, partition=3, offset=7)
SECOND = _vote("reject", ts=200, partition=0, offset=2)
THIRD = _vote("flag", ts=300, partition=1, offset=9)
BYSTANDER = _vote("reject", ts=150, partition=2, offset=4, key_image=OTHER_KEY_IMAGE)


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_every_arrival_order_counts_the_first_cast_vote_and_ends_the_same(order):
    votes = [FIRST, SECOND, THIRD, BYSTANDER]
    reference, arrived = Store(), Store()
    _run({}, reference, votes)  # cast order
    _run({}, arrived, [votes[i] for i in order])
    assert arrived.outcome() == reference.outcome()
    counted = {b.vote_id for b in arrived.ballots.values()}
    assert counted == {FIRST.vote_id, BYSTANDER.vote_id}
    assert arrived.tallies["s1"].counts.model_dump() == {
        "approve": 1,
        "reject": 1,
        "flag": 0,
        "escalate": 0,
    }
    rejected = {r.vote_id: r for r in arrived.rejections.values()}
    assert set(rejected) == {SECOND.vote_id, THIRD.vote_id}
    assert all(r.reason.value == "duplicate_key_image" for r in rejected.values())
    # each rejection keeps its own vote's raw payload (read back from the votes topic)
    # and votes-topic position
    assert base64.b64decode(rejected[SECOND.vote_id].payload_b64) == VOTES_TOPIC[(0, 2)]
    assert base64.b64decode(rejected[THIRD.vote_id].payload_b64) == VOTES_TOPIC[(1, 9)]
    assert (rejected[THIRD.vote_id].source_partition, rejected[THIRD.vote_id].source_offset) == (
        1,
        9,
    )
    assert first_break(arrived.chain) is None


def test_a_vote_cast_earlier_retracts_the_counted_one_in_the_open():
    store, state = Store(), {}
    _run(state, store, [SECOND])
    assert store.tallies["s1"].counts.reject == 1 and store.tallies["s1"].version == 1
    _run(state, store, [FIRST], start=1)
    tally = store.tallies["s1"]
    assert (tally.counts.approve, tally.counts.reject, tally.total, tally.version) == (1, 0, 1, 2)
    ballot = store.ballots[("s1", KEY_IMAGE)]
    assert ballot.vote_id == FIRST.vote_id and ballot.supersedes == SECOND.vote_id
    [rejection] = store.rejections.values()
    assert rejection.vote_id == SECOND.vote_id and "retracted" in rejection.detail
    assert [e.kind.value for e in store.chain] == ["ballot", "retraction", "ballot"]
    assert store.chain[1].vote_id == SECOND.vote_id and store.chain[2].vote_id == FIRST.vote_id
    assert first_break(store.chain) is None


def test_a_vote_without_timestamp_loses_to_a_timed_one_and_position_breaks_ties():
    untimed = _vote("flag", ts=None, partition=0, offset=11)
    same_ts_later_partition = _vote("reject", ts=100, partition=5, offset=0)
    store = Store()
    _run({}, store, [untimed, same_ts_later_partition, FIRST])
    assert store.ballots[("s1", KEY_IMAGE)].vote_id == FIRST.vote_id  # (100, 3, 7) < (100, 5, 0)


def _history(votes, batch):
    """Process ``votes`` batch by batch, keeping the state after each batch."""
    state, store, snapshots = {}, Store(), [{}]
    keeper = TallyKeeper(settings=SETTINGS, state=state, outputs=store, read_vote=_read_vote)
    records = _records(votes)
    for i in range(0, len(records), batch):
        asyncio.run(keeper.process(records[i : i + batch]))
        snapshots.append(copy.deepcopy(state))
    return store, snapshots


ARRIVAL = [THIRD, BYSTANDER, SECOND, _vote("escalate", ts=50, partition=2, offset=1), FIRST]


CRASHES = [(r, t, e) for e in range(6) for t in range(e + 1) for r in range(t + 1)]


@pytest.mark.parametrize(("redelivered", "tallied", "entries"), CRASHES)
def test_a_crash_restoring_older_state_is_repaired_by_the_redelivered_votes(
    redelivered, tallied, entries
):
    """Batches of one record; the crash comes after the last one.

    Faust restores the ballot entries as of batch ``entries``, the tally and
    chain head as of batch ``tallied`` (no later: a batch's entries reach the
    changelog before its tally), and redelivers from the committed record
    ``redelivered`` (no later than anything lost). The store, which saw every
    output of the first run, must end exactly as without the crash, and so
    must the state.
    """
    clean, snapshots = _history(ARRIVAL, batch=1)
    # ballot and refusal entries are written before the tally (agents/tally.py)
    crashed = {k: v for k, v in snapshots[entries].items() if k.startswith((b"b|", b"r|"))}
    crashed.update(
        {k: v for k, v in snapshots[tallied].items() if not k.startswith((b"b|", b"r|"))}
    )
    store = copy.deepcopy(clean)
    _run(crashed, store, ARRIVAL[redelivered:], start=redelivered, batch=1)
    assert crashed == snapshots[-1]
    assert store.outcome() == clean.outcome()
    assert first_break(store.chain) is None
    assert store.tallies["s1"].counts.escalate == 1 and store.tallies["s1"].total == 2


def test_an_entry_written_before_retractions_existed_keeps_its_vote():
    legacy_vote = _vote("approve", ts=500, partition=0, offset=0)
    store, state = Store(), {}
    _run(state, store, [legacy_vote])
    entry = state[f"b|s1|{KEY_IMAGE}".encode()]
    change = entry["changes"][0]
    state[f"b|s1|{KEY_IMAGE}".encode()] = {
        "vote_id": str(legacy_vote.vote_id),
        "version": change["version"],
        "event": change["events"][0],
    }
    _run(state, store, [FIRST, legacy_vote], start=1)  # cast earlier, but no order to compare
    assert store.ballots[("s1", KEY_IMAGE)].vote_id == legacy_vote.vote_id
    assert [r.vote_id for r in store.rejections.values()] == [FIRST.vote_id]
    assert store.tallies["s1"].version == 1


def test_a_later_vote_whose_record_is_gone_is_rejected_without_its_payload():
    """Retention removed the later vote's votes record: the rejection says so, nothing else."""

    async def gone(partition, offset):
        return None

    store = Store()
    keeper = TallyKeeper(settings=SETTINGS, state={}, outputs=store, read_vote=gone)
    asyncio.run(keeper.process(_records([FIRST, SECOND])))
    [rejection] = store.rejections.values()
    assert rejection.vote_id == SECOND.vote_id and rejection.payload_b64 == ""
    assert "no longer holds the record" in rejection.detail
    assert store.ballots[("s1", KEY_IMAGE)].vote_id == FIRST.vote_id
