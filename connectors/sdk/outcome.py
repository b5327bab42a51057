"""Matching a published vote to its outcome (a Ballot or a Rejection) on the output topics.

Shared by :class:`~connectors.sdk.vote.VoteClient` and
:class:`~connectors.sdk.aio.AsyncVoteClient`; no I/O here.

How a wait works. Before a vote is published the client *registers* it and
captures the ``read_committed`` end offsets of the ballots and rejections
topics (its *start*). Its outcome can only be written after the publish, so it
lies at or after the start on one of those topics. One reader (a cursor per
partition) serves every wait of a client: each record it reads is offered to
every registered vote, and a match is kept until collected, so a record read
while waiting for one vote is not lost for another. Before each read the
cursor jumps forward to the earliest start of any vote still waiting, so old
records are never read twice or at all.

A record matches a vote when

* a **Ballot** has the vote's ``vote_id``;
* a **Rejection** has the vote's ``vote_id``, or has no vote id (an unreadable
  message) and the vote's ``token_id``;
* and, once the broker acknowledged the vote (always, by the time a wait
  starts), the record's source position (votes topic, partition, offset) is
  exactly where the vote was written. A vote id is derived from its token, so
  another message spending the same token carries the same vote id; the
  position tells them apart.

One exception: the same bytes published again (a retry after a timeout) are
a new record, and a worker rejects that copy ``duplicate_record`` at its own
position (docs/protocol.md; workers before issue 16 re-emitted the original
Ballot instead, with the original position). When this client saw the Ballot
of an earlier publish of those very bytes, a ``duplicate_record`` for the
retry resolves to that Ballot (the vote was counted, once); a Ballot at the
position of an earlier publish matches too (the older workers).

The outcome is the first match, and only a double vote can have a second:
when a reviewer votes twice on one submission and the later-cast vote is
counted before the earlier one arrives, the earlier one then counts and the
later one's Ballot is retracted by a ``duplicate_key_image`` Rejection (see
``agents/tally.py``). The client that cast both learns it from the earlier
vote's Ballot, whose ``supersedes`` names the retracted vote.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from uuid import UUID

from pydantic import ValidationError

from models.outputs import Ballot, Rejection
from models.reasons import ReasonCode

__all__ = ["Outcome", "Tracker"]

#: What a wait returns: the vote was counted (Ballot) or not, and why (Rejection).
Outcome = Ballot | Rejection

Position = tuple[str, int]


@dataclass
class _Pending:
    vote_id: str
    token_id: str
    start: dict[Position, int] = field(default_factory=dict)
    digest: bytes = b""
    #: (partition, offset) on the votes topic, once the broker acknowledged it.
    source: tuple[int, int] | None = None
    #: where this client published these exact bytes before (a Ballot there is ours too).
    earlier: frozenset[tuple[int, int]] = frozenset()
    #: the Ballot found at one of ``earlier``: the answer to a ``duplicate_record``.
    counted: Ballot | None = None


class Tracker:
    """Registered votes, the reader's cursor, and the outcomes found so far."""

    def __init__(
        self,
        votes_topic: str,
        ballots_topic: str,
        rejections_topic: str,
        *,
        max_pending: int = 100_000,
    ) -> None:
        self.votes_topic = votes_topic
        self.ballots_topic = ballots_topic
        self.rejections_topic = rejections_topic
        self.max_pending = max_pending
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._by_token: dict[str, str] = {}
        self._found: OrderedDict[str, Outcome] = OrderedDict()
        #: vote id -> (payload digest, positions this client published it at)
        self._published: OrderedDict[str, tuple[bytes, set[tuple[int, int]]]] = OrderedDict()
        #: vote id -> the Ballot found for a publish of it (its position tells which bytes)
        self._ballots: OrderedDict[str, Ballot] = OrderedDict()
        #: next offset the reader will read, per (topic, partition); empty: not reading yet.
        self.cursor: dict[Position, int] = {}

    @property
    def topics(self) -> tuple[str, str]:
        return (self.ballots_topic, self.rejections_topic)

    def register(self, vote_id: UUID | str, token_id: str, payload: bytes = b"") -> _Pending:
        """Call BEFORE capturing the start offsets, and before publishing."""
        key = str(vote_id)
        old = self._pending.pop(key, None)
        if old is not None:
            self._by_token.pop(old.token_id, None)
        self._found.pop(key, None)
        digest = hashlib.sha256(payload).digest()
        earlier: frozenset[tuple[int, int]] = frozenset()
        if key in self._published and self._published[key][0] == digest:
            earlier = frozenset(self._published[key][1])
        counted = self._ballots.get(key)
        if counted is not None and (counted.source_partition, counted.source_offset) not in earlier:
            counted = None
        pending = _Pending(key, token_id, digest=digest, earlier=earlier, counted=counted)
        self._pending[key] = pending
        self._by_token[token_id] = key
        while len(self._pending) > self.max_pending:  # never waited for: forget the oldest
            _, dropped = self._pending.popitem(last=False)
            self._by_token.pop(dropped.token_id, None)
        return pending

    def delivered(self, pending: _Pending, partition: int, offset: int) -> None:
        """The broker acknowledged ``pending``'s vote at (partition, offset)."""
        pending.source = (partition, offset)
        digest, positions = self._published.get(pending.vote_id, (pending.digest, set()))
        if digest != pending.digest:
            positions = set()
        positions.add((partition, offset))
        self._published[pending.vote_id] = (pending.digest, positions)
        self._published.move_to_end(pending.vote_id)
        while len(self._published) > self.max_pending:
            self._published.popitem(last=False)

    def forget(self, vote_id: UUID | str) -> None:
        pending = self._pending.pop(str(vote_id), None)
        if pending is not None:
            self._by_token.pop(pending.token_id, None)

    def knows(self, vote_id: UUID | str) -> bool:
        return str(vote_id) in self._pending or str(vote_id) in self._found

    def has_outcome(self, vote_id: UUID | str) -> bool:
        return str(vote_id) in self._found

    def take(self, vote_id: UUID | str) -> Outcome | None:
        """The outcome found for ``vote_id`` (removed from the tracker), or None yet."""
        return self._found.pop(str(vote_id), None)

    def seek_targets(self) -> dict[Position, int]:
        """Partitions whose cursor must jump forward (to the earliest start still waiting)."""
        if not self._pending:
            return {}
        earliest: dict[Position, int] = {}
        for pending in self._pending.values():
            for pos, offset in pending.start.items():
                if offset < earliest.get(pos, 1 << 62):
                    earliest[pos] = offset
        return {pos: off for pos, off in earliest.items() if off > self.cursor.get(pos, -1)}

    def advance(self, targets: dict[Position, int]) -> None:
        self.cursor.update(targets)

    def offer(self, topic: str, partition: int, offset: int, value: bytes | None) -> None:
        """One record read from the ballots or rejections topic."""
        self.cursor[(topic, partition)] = offset + 1
        if value is None or not self._pending:
            return
        try:
            if topic == self.ballots_topic:
                outcome: Outcome = Ballot.model_validate_json(value)
            else:
                outcome = Rejection.model_validate_json(value)
        except ValidationError:
            return
        key = str(outcome.vote_id) if outcome.vote_id is not None else None
        if key is None and isinstance(outcome, Rejection) and outcome.token_id is not None:
            key = self._by_token.get(outcome.token_id)
        pending = self._pending.get(key) if key else None
        if pending is None or not self._same_source(pending, outcome):
            return
        if offset < pending.start.get((topic, partition), 0):
            return  # before the vote was published: another message's outcome
        self.forget(pending.vote_id)
        if isinstance(outcome, Ballot):
            self._ballots[pending.vote_id] = outcome
            self._ballots.move_to_end(pending.vote_id)
            while len(self._ballots) > self.max_pending:
                self._ballots.popitem(last=False)
        elif outcome.reason == ReasonCode.DUPLICATE_RECORD and pending.counted is not None:
            outcome = pending.counted  # a retry of a counted vote: counted, once
        self._found[pending.vote_id] = outcome
        while len(self._found) > self.max_pending:
            self._found.popitem(last=False)

    def _same_source(self, pending: _Pending, outcome: Outcome) -> bool:
        if pending.source is None:
            return True
        position = (outcome.source_partition, outcome.source_offset)
        if isinstance(outcome, Rejection):
            return outcome.source_topic == self.votes_topic and position == pending.source
        return position == pending.source or position in pending.earlier
