"""The tally stage: accepted votes (keyed by submission) in; ballots, tallies, audit events out.

State, in ONE changelog-backed table partition per accepted-topic partition::

    b|<submission>|<key image>  -> {vote_id, version, event}  written once per ballot
    t|<submission>              -> {counts, version}          the running tally
    c|<partition>               -> {seq, hash}                head of the audit chain

Why the ballot entry stores its tally version and audit event: after a crash
(SIGKILL), Faust restores each key to *some* write of it: the changelog's, or
a RocksDB write that never reached the changelog. Ballot entries are written
once, so they are either there or not; the tally and the chain head may be
older than the ballots present. Redelivered votes (everything after the last
committed offset comes again) then repair them: a ballot whose version is one
past the tally's re-applies its count, a chain head behind a stored event moves
up to it, and the stored event is re-emitted byte for byte. So a vote is never
counted twice, a counted vote is never lost, and the audit chain never forks
or skips a sequence number.

Within a batch, each submission's tally and each partition's chain head are
written (and the Tally emitted) once, at the end, after every ballot entry of
the batch: fewer changelog writes, and the order above is kept, since the
ballot entries still reach the changelog first.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import MutableMapping, Sequence
from typing import Any

from pydantic import ValidationError

from models.audit import AuditEvent, AuditKind, genesis_hash
from models.decision import decide, rules_version
from models.internal import AcceptedVote
from models.outputs import Ballot, Tally, VoteCounts
from models.reasons import ReasonCode
from streams.settings import Settings

from .records import Outputs, SourceRecord, event_scope, rejection_for

__all__ = ["TallyKeeper"]

log = logging.getLogger(__name__)


class TallyKeeper:
    """Counts each key image once per submission and keeps the decision current."""

    def __init__(
        self, *, settings: Settings, state: MutableMapping[bytes, dict[str, Any]], outputs: Outputs
    ) -> None:
        self.state = state
        self.outputs = outputs
        self.min_votes = settings.min_votes
        self.flag_threshold = settings.flag_threshold
        self.rules_version = rules_version(
            min_votes=settings.min_votes, flag_threshold=settings.flag_threshold
        )
        self.votes_topic = settings.topic("votes")

    async def process(self, records: Sequence[SourceRecord]) -> None:
        self._tallies: dict[str, tuple[VoteCounts, int]] = {}
        self._chains: dict[int, tuple[int, str]] = {}
        self._last: dict[int, SourceRecord] = {}
        self._partition_of: dict[str, int] = {}
        for record in records:
            self._last[record.partition] = record
            with event_scope(record):
                await self._process_one(record)
        await self._flush_batch()

    async def _flush_batch(self) -> None:
        """Write the batch's tallies and chain heads, and emit each final Tally."""
        for submission_id, (counts, version) in self._tallies.items():
            with event_scope(self._last[self._partition_of[submission_id]]):
                self.state[f"t|{submission_id}".encode()] = {
                    "counts": counts.model_dump(),
                    "version": version,
                }
            await self.outputs.tally(self._tally(submission_id, counts, version))
        for partition, (seq, head) in self._chains.items():
            with event_scope(self._last[partition]):
                self.state[f"c|{partition}".encode()] = {"seq": seq, "hash": head}

    async def _process_one(self, record: SourceRecord) -> None:
        try:
            vote = AcceptedVote.model_validate_json(record.value or b"")
        except ValidationError as exc:
            # Only our own verify stage writes this topic: this is a bug, but the
            # record still ends as a rejection rather than vanishing.
            log.error("unreadable accepted vote at %s:%s: %s", record.partition, record.offset, exc)
            await self.outputs.rejection(
                record.key or b"",
                rejection_for(
                    record, ReasonCode.MALFORMED, f"internal record unreadable: {exc}"[:2000]
                ),
            )
            return
        entry_key = f"b|{vote.submission_id}|{vote.key_image}".encode()
        entry = self.state.get(entry_key)
        if entry is None:
            await self._count(record, vote, entry_key)
        elif entry["vote_id"] == str(vote.vote_id):
            await self._redeliver(record, vote, entry_key, entry)
        else:
            await self.outputs.rejection(
                vote.token_id.encode(),
                rejection_for(
                    record,
                    ReasonCode.DUPLICATE_KEY_IMAGE,
                    f"key image already used on submission {vote.submission_id!r} "
                    f"by vote {entry['vote_id']}",
                    vote_id=vote.vote_id,
                    token_id=vote.token_id,
                    payload=base64.b64decode(vote.payload_b64),
                    source=(self.votes_topic, vote.source_partition, vote.source_offset),
                ),
            )

    async def _count(self, record: SourceRecord, vote: AcceptedVote, entry_key: bytes) -> None:
        counts, version = self._load_tally(vote.submission_id)
        counts, version = counts.plus(vote.vote_type), version + 1
        tally = self._tally(vote.submission_id, counts, version)  # for the audit event's decision
        seq, head = self._load_chain(record.partition)
        event = AuditEvent.chained(
            prev_hash=head,
            chain=_chain(record.partition),
            sequence=seq + 1,
            kind=AuditKind.BALLOT,
            vote_id=vote.vote_id,
            submission_id=vote.submission_id,
            key_image=vote.key_image,
            decision=tally.decision,
            source_partition=vote.source_partition,
            source_offset=vote.source_offset,
        )
        # Write order matters: the ballot entry now, tally and chain head at the
        # end of the batch (see the module docstring).
        self.state[entry_key] = {
            "vote_id": str(vote.vote_id),
            "version": version,
            "event": event.model_dump_json(),
        }
        self._set_tally(record, vote.submission_id, counts, version)
        self._chains[record.partition] = (event.sequence, event.hash)
        await self._emit(vote, event)

    async def _redeliver(
        self, record: SourceRecord, vote: AcceptedVote, entry_key: bytes, entry: dict[str, Any]
    ) -> None:
        event = AuditEvent.model_validate_json(entry["event"])
        counts, version = self._load_tally(vote.submission_id)
        if version == entry["version"] - 1:
            counts, version = counts.plus(vote.vote_type), version + 1
            log.warning("tally of %s repaired to version %d", vote.submission_id, version)
        elif version < entry["version"] - 1:
            log.error(
                "tally of %s at version %d is behind ballot version %d by more than one",
                vote.submission_id,
                version,
                entry["version"],
            )
        # Written (and emitted) at the end of the batch either way: the emission may
        # be what the crash lost.
        self._set_tally(record, vote.submission_id, counts, version)
        seq, _ = self._load_chain(record.partition)
        if seq < event.sequence:
            self._chains[record.partition] = (event.sequence, event.hash)
        # Rewrite the entry so that a write only RocksDB had reaches the changelog.
        self.state[entry_key] = entry
        await self._emit(vote, event)

    async def _emit(self, vote: AcceptedVote, event: AuditEvent) -> None:
        await self.outputs.ballot(
            Ballot(
                vote_id=vote.vote_id,
                submission_id=vote.submission_id,
                key_image=vote.key_image,
                vote_type=vote.vote_type,
                ring_id=vote.ring_id,
                epoch=vote.epoch,
                source_partition=vote.source_partition,
                source_offset=vote.source_offset,
            )
        )
        await self.outputs.audit(event)

    # --- state helpers ---------------------------------------------------------

    def _tally(self, submission_id: str, counts: VoteCounts, version: int) -> Tally:
        decision = decide(
            approve=counts.approve,
            reject=counts.reject,
            flag=counts.flag,
            escalate=counts.escalate,
            min_votes=self.min_votes,
            flag_threshold=self.flag_threshold,
        )
        return Tally(
            submission_id=submission_id,
            counts=counts,
            total=counts.total,
            decision=decision,
            rules_version=self.rules_version,
            version=version,
        )

    def _set_tally(
        self, record: SourceRecord, submission_id: str, counts: VoteCounts, version: int
    ) -> None:
        self._tallies[submission_id] = (counts, version)
        self._partition_of[submission_id] = record.partition

    def _load_tally(self, submission_id: str) -> tuple[VoteCounts, int]:
        if submission_id in self._tallies:
            return self._tallies[submission_id]
        raw = self.state.get(f"t|{submission_id}".encode())
        if not raw:
            return VoteCounts(), 0
        return VoteCounts.model_validate(raw["counts"]), int(raw["version"])

    def _load_chain(self, partition: int) -> tuple[int, str]:
        if partition in self._chains:
            return self._chains[partition]
        raw = self.state.get(f"c|{partition}".encode())
        if not raw:
            return 0, genesis_hash(_chain(partition))
        return int(raw["seq"]), str(raw["hash"])


def _chain(partition: int) -> str:
    return f"tally-{partition}"
