"""The tally stage: accepted votes (keyed by submission) in; ballots, tallies, audit events out.

State, in ONE changelog-backed table partition per accepted-topic partition::

    b|<submission>|<key image>  -> {winner, changes}     the vote counted, and its history
    t|<submission>              -> {counts, version, log}  the running tally and log
    r|<submission>|<p>|<offset> -> {leaf_index, leaf, reason}  a refusal's leaf (below)
    f|<submission>              -> {closed_ms, passed}  the closing, and the votes
                                                       partitions past it (final head)
    c|<partition>               -> {seq, hash}          head of the audit chain

Which vote counts when two share a key image (one reviewer, two slots, one
submission): the one cast first, by the votes-topic record's broker timestamp
(LogAppendTime: the producer cannot backdate it), then its (partition,
offset). Those are properties of the input log, so a replay
into fresh state counts the same vote (DESIGN invariant 6) although the two
usually sit on different votes partitions and may reach this stage in either
order. A vote cast later is rejected ``duplicate_key_image``; a vote cast
EARLIER than the one counted retracts it: the tally moves that vote's count to
the earlier one (a new version), the counted vote gets its
``duplicate_key_image`` rejection, the audit chain a ``retraction`` event, and
the earlier vote a Ballot whose ``supersedes`` names the retracted one (the
sink replaces that row). The last Ballot of a key image on the ballots topic
is therefore always the one that counts.

Crash repair: after a SIGKILL, Faust restores each key to *some* write of it:
the changelog's, or a RocksDB write that never reached the changelog. Each
entry keeps every change it made to the tally (the version it produced, the
vote types moved, its audit events), and the entries of a batch are written
before its tally and chain heads, so a restored tally or chain head may be
older than the entries beside it, never newer. Redelivered votes (everything
after the last committed offset comes again, in the same order) then repair
them: a vote whose change is one version past the tally re-applies it, a chain
head behind a stored event moves up to it, and the stored events are
re-emitted byte for byte. So a vote is never counted twice, a counted vote is
never lost, and the audit chain never forks or skips a sequence number.

The log (native/SPEC.md §14): each submission's tally entry also holds the
RFC 9162 frontier of its log (``log``: size and the O(log n) subtree roots),
written in the same table write as the counts, so the two never disagree. A
count appends a ``ballot`` leaf, preceded by a ``retraction`` leaf when it
retracts a vote; the change keeps its leaf hashes and the ballot's index, so
the repair above re-appends exactly them and a redelivered Ballot carries the
same ``leaf_index``. Leaves go in the order this stage counts votes (its input
topic's order): a replay into fresh state counts the same votes but may
append them in another order, so its roots are its own.

A refused well-formed vote is a ``rejection`` leaf (SPEC §14.1): the verify
stage's refusals come here as :class:`~models.internal.RefusedVote` records
(only this stage orders a submission's log), and a vote cast after the one
counted for its key image is refused here. Each refusal's leaf is kept under
its votes-topic position (``r|``), written before the tally like a ballot
entry: a redelivered refusal re-appends its stored leaf only when the restored
log is exactly one leaf short of it, and otherwise appends nothing, so one
position never gets two leaves. The emitted Rejection carries ``leaf_index``
and ``vote_digest``; a counted vote's later ``duplicate_key_image`` rejection
points at its ``retraction`` leaf.

The final head (SPEC §14.3): the verify stage sends a
:class:`~models.internal.ClosingPassed` per votes partition that passed a
closed submission's closing (by a vote, or by its end offset when idle), after
that partition's earlier outcomes. When every votes partition has passed
(``f|``), the log holds every vote appended before the closing and will take
no other: its head is signed as final (``closed_ms`` in the signed bytes), and
signed again on every later marker (idempotent: a crash may have lost it).
After that, a new leaf for the submission is refused ``submission_closed``
instead of appended (a redelivery that re-appends a stored leaf is no new
leaf): whatever went wrong upstream, the signed final log stays final.

Within a batch, each submission's tally and each partition's chain head are
written (and the Tally emitted) once, at the end, after every ballot entry of
the batch: fewer changelog writes, and the order above is kept, since the
ballot entries still reach the changelog first.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from models.audit import AuditEvent, AuditKind, genesis_hash
from models.decision import Decision, decide, rules_version
from models.fields import VoteType
from models.internal import AcceptedVote, ClosingPassed, RefusedVote, parse_accepted_record
from models.log import LeafKind, SignedHead, log_leaf_hash
from models.merkle import Frontier
from models.outputs import Ballot, Rejection, Tally, VoteCounts
from models.reasons import ReasonCode
from streams import metrics
from streams.settings import Settings

from .records import Outputs, SourceRecord, event_scope, rejection_for

__all__ = ["TallyKeeper", "TallyStateBehind"]

log = logging.getLogger(__name__)


class TallyStateBehind(RuntimeError):
    """The tally state misses a change a ballot entry records: a bug or a lost changelog;
    the worker stops (the tally agent's guard exits EXIT_BUG) rather than reuse indexes."""


class TallyKeeper:
    """Counts each key image once per submission and keeps the decision current."""

    def __init__(
        self,
        *,
        settings: Settings,
        state: MutableMapping[bytes, dict[str, Any]],
        outputs: Outputs,
        read_vote: Callable[[int, int], Awaitable[bytes | None]],
        sign_heads: Callable[[list[tuple[str, int, bytes, int | None]]], list[SignedHead]]
        | None = None,
    ) -> None:
        """``read_vote(partition, offset)``: a votes-topic record's raw value, or None when
        the log no longer holds it (:class:`~agents.record_reader.RecordReader`); called
        only to reject a vote here (a double vote), for the rejection's payload.
        ``sign_heads([(submission_id, size, root, closed_ms), ...])``: the signed heads (final
        where ``closed_ms`` is set) of a batch's
        tallies, sent (``outputs.head``) after them (:meth:`agents.loghead.LogSigner.sign`,
        one signature per batch); None: no heads."""
        self.state = state
        self.sign_heads = sign_heads
        self.outputs = outputs
        self.read_vote = read_vote
        self.min_votes = settings.min_votes
        self.flag_threshold = settings.flag_threshold
        self.rules_version = rules_version(
            min_votes=settings.min_votes, flag_threshold=settings.flag_threshold
        )
        self.votes_topic = settings.topic("votes")
        self.votes_partitions = settings.partitions

    async def process(self, records: Sequence[SourceRecord]) -> None:
        self._tallies: dict[str, tuple[VoteCounts, int, Frontier]] = {}
        self._chains: dict[int, tuple[int, str]] = {}
        self._last: dict[int, SourceRecord] = {}
        self._partition_of: dict[str, int] = {}
        self._final: dict[str, int] = {}  # submission -> closing time, when final now
        #: submission -> closing time when its final head was signed before, else None
        self._fixed: dict[str, int | None] = {}
        for record in records:
            self._last[record.partition] = record
            with event_scope(record):
                await self._process_one(record)
        await self._flush_batch()

    async def _flush_batch(self) -> None:
        """Write the batch's tallies and chain heads, emit each final Tally, then the batch's
        signed heads."""
        heads = []
        for submission_id, (counts, version, frontier) in self._tallies.items():
            with event_scope(self._last[self._partition_of[submission_id]]):
                self.state[f"t|{submission_id}".encode()] = {
                    "counts": counts.model_dump(),
                    "version": version,
                    "log": frontier.to_json(),
                }
            await self.outputs.tally(self._tally(submission_id, counts, version, frontier))
            closed_ms = self._final.get(submission_id)
            heads.append((submission_id, frontier.size, frontier.root(), closed_ms))
        if self.sign_heads is not None:
            for head in self.sign_heads(heads):
                await self.outputs.head(head)
        for partition, (seq, head) in self._chains.items():
            with event_scope(self._last[partition]):
                self.state[f"c|{partition}".encode()] = {"seq": seq, "hash": head}

    async def _process_one(self, record: SourceRecord) -> None:
        try:
            vote = parse_accepted_record(record.value or b"")
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
        if isinstance(vote, RefusedVote):
            await self._refuse(record, vote.submission_id, vote.vote_digest, vote.rejection)
            return
        if isinstance(vote, ClosingPassed):
            self._closing_passed(record, vote)
            return
        entry_key = f"b|{vote.submission_id}|{vote.key_image}".encode()
        raw = self.state.get(entry_key)
        entry = None if raw is None else _Entry.load(raw)
        change = None if entry is None else entry.change_by(str(vote.vote_id))
        if change is not None:
            assert entry is not None
            await self._redeliver(record, vote, entry_key, entry, change)
        elif entry is not None and _order(vote) >= entry.winner_order():
            await self._reject_duplicate(vote, record, entry, later=True)
        elif not await self._after_final_vote(record, vote):
            await self._count(record, vote, entry_key, entry)

    async def _count(
        self, record: SourceRecord, vote: AcceptedVote, entry_key: bytes, entry: _Entry | None
    ) -> None:
        """Count ``vote``; when ``entry`` holds a vote cast after it, retract that one."""
        counts, version, frontier = self._load_tally(vote.submission_id)
        retracted = None if entry is None else entry.winner
        leaves = []
        if retracted is not None:
            counts = counts.minus(VoteType(retracted["vote_type"]))
            if "digest" in retracted:  # counted before the log existed: no leaf to retract
                leaves.append(
                    log_leaf_hash(LeafKind.RETRACTION, bytes.fromhex(retracted["digest"]))
                )
        counts, version = counts.plus(vote.vote_type), version + 1
        leaves.append(log_leaf_hash(LeafKind.BALLOT, bytes.fromhex(vote.vote_digest)))
        leaf_index = [frontier.append(h) for h in leaves][-1]
        decision = self._decide(counts)
        seq, head = self._load_chain(record.partition)
        winner = _winner(vote)
        events = []
        if retracted is not None:
            events.append(
                self._event(
                    record.partition,
                    seq + 1,
                    head,
                    AuditKind.RETRACTION,
                    vote,
                    decision,
                    retracted,
                    reason=ReasonCode.DUPLICATE_KEY_IMAGE,
                )
            )
            seq, head = events[-1].sequence, events[-1].hash
        events.append(
            self._event(record.partition, seq + 1, head, AuditKind.BALLOT, vote, decision, winner)
        )
        change = {
            "by": str(vote.vote_id),
            "version": version,
            "plus": vote.vote_type.value,
            "events": [e.model_dump_json() for e in events],
            "leaves": [h.hex() for h in leaves],
            "leaf_index": leaf_index,
        }
        if retracted is not None:
            change["retracted"] = retracted
        changes = [] if entry is None else entry.changes
        # Write order matters: the ballot entry now, tally and chain head at the
        # end of the batch (see the module docstring).
        self.state[entry_key] = {"winner": winner, "changes": [*changes, change]}
        self._set_tally(record, vote.submission_id, counts, version, frontier)
        self._chains[record.partition] = (events[-1].sequence, events[-1].hash)
        await self._emit(record, vote, change, events, winner=True)

    async def _redeliver(
        self,
        record: SourceRecord,
        vote: AcceptedVote,
        entry_key: bytes,
        entry: _Entry,
        change: dict[str, Any],
    ) -> None:
        """A vote that changed this entry before: repair what a crash lost, count nothing twice."""
        events = [AuditEvent.model_validate_json(e) for e in change["events"]]
        counts, version, frontier = self._load_tally(vote.submission_id)
        if version == change["version"] - 1:
            if "retracted" in change:
                counts = counts.minus(VoteType(change["retracted"]["vote_type"]))
            counts, version = counts.plus(VoteType(change.get("plus", vote.vote_type))), version + 1
            leaves = change.get("leaves", ())
            if leaves and frontier.size != change["leaf_index"] - len(leaves) + 1:
                raise TallyStateBehind(
                    f"log of {vote.submission_id} at size {frontier.size}: ballot version "
                    f"{change['version']} appended its leaves at {change['leaf_index']}; "
                    "stopping (restore the tally changelog, or replay)"
                )
            for h in leaves:  # the log was written with the tally: as far behind
                frontier.append(bytes.fromhex(h))
            log.warning("tally of %s repaired to version %d", vote.submission_id, version)
        elif version < change["version"] - 1:
            # A change between them is lost: going on would count wrong and give the next
            # leaves indexes already used (a second log under the same signed sizes).
            raise TallyStateBehind(
                f"tally of {vote.submission_id} at version {version} is behind ballot version "
                f"{change['version']} by more than one: the state lost a change no redelivery "
                "repairs; stopping (restore the tally changelog, or replay)"
            )
        # Written (and emitted) at the end of the batch either way: the emission may
        # be what the crash lost.
        self._set_tally(record, vote.submission_id, counts, version, frontier)
        seq, _ = self._load_chain(record.partition)
        if seq < events[-1].sequence:
            self._chains[record.partition] = (events[-1].sequence, events[-1].hash)
        # Rewrite the entry so that a write only RocksDB had reaches the changelog.
        self.state[entry_key] = entry.raw
        winner = entry.winner["vote_id"] == str(vote.vote_id)
        await self._emit(record, vote, change, events, winner=winner)
        if not winner:  # counted once, retracted since by a vote cast before it
            await self._reject_duplicate(vote, record, entry, later=False)

    async def _emit(
        self,
        record: SourceRecord,
        vote: AcceptedVote,
        change: dict[str, Any],
        events: list[AuditEvent],
        *,
        winner: bool,
    ) -> None:
        """Send what ``change`` decided (byte for byte the same on a redelivery).

        The audit events always go (a crash may have lost them, and the chain must
        not skip); the ballot only while ``vote`` is the one counted, so the last
        ballot of a key image on the ballots topic is always the winner's.
        """
        retracted = change.get("retracted")
        if winner:
            if retracted is not None:
                rejection = await self._duplicate(
                    record,
                    f"retracted: vote {vote.vote_id} has the same key image on submission "
                    f"{vote.submission_id!r} and was cast before this one",
                    vote_id=UUID(retracted["vote_id"]),
                    token_id=retracted["token_id"],
                    position=(retracted["source_partition"], retracted["source_offset"]),
                )
                await self._emit_retracted(rejection, vote.submission_id, change)
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
                    supersedes=None if retracted is None else UUID(retracted["vote_id"]),
                    vote_digest=vote.vote_digest,
                    leaf_index=change.get("leaf_index"),
                    supersedes_digest=None if retracted is None else retracted.get("digest"),
                )
            )
        for event in events:
            await self.outputs.audit(event)

    async def _reject_duplicate(
        self, vote: AcceptedVote, record: SourceRecord, entry: _Entry, *, later: bool
    ) -> None:
        """``vote`` is not the one counted for its key image: cast after it (``later``: a
        refusal, a leaf of its own), or counted once and retracted since (its leaf is the
        ``retraction`` leaf of the change that withdrew it)."""
        how = "cast after" if later else "retracted: cast after"
        rejection = await self._duplicate(
            record,
            f"{how} vote {entry.winner['vote_id']}, which has the same key image on "
            f"submission {vote.submission_id!r}",
            vote_id=vote.vote_id,
            token_id=vote.token_id,
            position=(vote.source_partition, vote.source_offset),
        )
        if later:
            await self._refuse(record, vote.submission_id, vote.vote_digest, rejection)
            return
        withdrawn = next(
            (
                c
                for c in entry.changes
                if c.get("retracted", {}).get("vote_id") == str(vote.vote_id)
            ),
            None,
        )
        if withdrawn is None:  # from before retractions were logged: no leaf to name
            await self.outputs.rejection(vote.token_id.encode(), rejection)
        else:
            await self._emit_retracted(rejection, vote.submission_id, withdrawn)

    async def _emit_retracted(
        self, rejection: Rejection, submission_id: str, change: dict[str, Any]
    ) -> None:
        """The rejection of a vote ``change`` retracted, naming that retraction leaf (the
        ballot leaf's predecessor) when the change was logged."""
        retracted = change["retracted"]
        if "leaf_index" in change and "digest" in retracted:
            rejection = rejection.model_copy(
                update={
                    "submission_id": submission_id,
                    "vote_digest": retracted["digest"],
                    "leaf_index": change["leaf_index"] - 1,
                    "leaf_kind": LeafKind.RETRACTION.value,
                }
            )
        await self.outputs.rejection((rejection.token_id or "").encode(), rejection)

    def _closing_passed(self, record: SourceRecord, passed: ClosingPassed) -> None:
        """Note that a votes partition passed the submission's closing; once all have, the
        batch signs the submission's head as final (module docstring)."""
        key = f"f|{passed.submission_id}".encode()
        entry = self.state.get(key) or {"closed_ms": passed.closed_ms, "passed": []}
        if passed.votes_partition not in entry["passed"]:
            entry = {**entry, "passed": sorted({*entry["passed"], passed.votes_partition})}
        self.state[key] = entry
        if len(entry["passed"]) >= self.votes_partitions:
            counts, version, frontier = self._load_tally(passed.submission_id)
            self._set_tally(record, passed.submission_id, counts, version, frontier)
            self._final[passed.submission_id] = int(entry["closed_ms"])
            self._fixed[passed.submission_id] = int(entry["closed_ms"])

    def _fixed_at(self, submission_id: str) -> int | None:
        """The closing time once the submission's final head is signed (every votes partition
        passed: its log takes no new leaf), else None. Read once per submission per batch."""
        if submission_id not in self._fixed:
            entry = self.state.get(f"f|{submission_id}".encode())
            final = entry is not None and len(entry["passed"]) >= self.votes_partitions
            self._fixed[submission_id] = int(entry["closed_ms"]) if final else None
        return self._fixed[submission_id]

    async def _after_final_vote(self, record: SourceRecord, vote: AcceptedVote) -> bool:
        """Refuse (True) to count a vote whose submission's log is final; False otherwise."""
        if self._fixed_at(vote.submission_id) is None:
            return False
        position = (vote.source_partition, vote.source_offset)
        payload = await self.read_vote(*position)
        rejection = rejection_for(
            record,
            ReasonCode.SUBMISSION_CLOSED,
            "",
            vote_id=vote.vote_id,
            token_id=vote.token_id,
            payload=payload or b"",
            source=(self.votes_topic, *position),
        )
        await self._refuse_after_final(
            vote.submission_id, rejection, "the verify stage accepted it"
        )
        return True

    async def _refuse_after_final(self, submission_id: str, rejection: Rejection, why: str) -> None:
        """A leaf for a log whose final head this stage signed: appending it would change the
        final log (SPEC §14.3), so it is refused ``submission_closed``, no leaf, with one
        ERROR line (no reviewer data) and a metric. Only a bug, or a broken rule upstream
        (the verify stage passed a closing too early), gets here."""
        closed_ms = self._fixed_at(submission_id)
        metrics.LEAVES_AFTER_FINAL.inc()
        log.error(
            "vote at %s:%s reached the tally stage after the final head of %r (closed at %s) "
            "was signed: refused submission_closed, the log unchanged",
            rejection.source_partition,
            rejection.source_offset,
            submission_id,
            closed_ms,
        )
        refused = rejection.model_copy(
            update={
                "reason": ReasonCode.SUBMISSION_CLOSED,
                "detail": f"submission {submission_id!r} closed at broker time {closed_ms} and "
                f"its final head was signed before this vote reached its log ({why})"[:2000],
                "submission_id": submission_id,
            }
        )
        await self.outputs.rejection((rejection.token_id or "").encode(), refused)

    async def _refuse(
        self, record: SourceRecord, submission_id: str, digest: str, rejection: Rejection
    ) -> None:
        """Append the ``rejection`` leaf of a refused well-formed vote (once per votes-topic
        position, see the module docstring) and emit its Rejection with the leaf's index."""
        key = f"r|{submission_id}|{rejection.source_partition}|{rejection.source_offset}".encode()
        stored = self.state.get(key)
        if stored is None and self._fixed_at(submission_id) is not None:
            why = f"refused upstream {rejection.reason}: {rejection.detail}"
            await self._refuse_after_final(submission_id, rejection, why)
            return
        counts, version, frontier = self._load_tally(submission_id)
        if stored is None:
            leaf = log_leaf_hash(LeafKind.REJECTION, bytes.fromhex(digest), str(rejection.reason))
            index = frontier.append(leaf)
            stored = {"leaf_index": index, "leaf": leaf.hex(), "reason": str(rejection.reason)}
        else:
            index = stored["leaf_index"]
            if frontier.size == index:  # the tally write was lost with the crash: repair
                frontier.append(bytes.fromhex(stored["leaf"]))
                log.warning("log of %s repaired to size %d", submission_id, frontier.size)
            elif frontier.size < index:
                raise TallyStateBehind(
                    f"log of {submission_id} at size {frontier.size} is behind refusal leaf "
                    f"{index} by more than one: stopping (restore the tally changelog, or replay)"
                )
            if stored["reason"] != str(rejection.reason):
                log.error(
                    "refusal at %s:%s decided %s again, %s the first time: the leaf's stands",
                    rejection.source_partition,
                    rejection.source_offset,
                    rejection.reason,
                    stored["reason"],
                )
        # Written now, the tally at the end of the batch (module docstring).
        self.state[key] = stored
        self._set_tally(record, submission_id, counts, version, frontier)
        emitted = rejection.model_copy(
            update={
                "reason": ReasonCode(stored["reason"]),
                "submission_id": submission_id,
                "vote_digest": digest,
                "leaf_index": index,
                "leaf_kind": LeafKind.REJECTION.value,
            }
        )
        await self.outputs.rejection((rejection.token_id or "").encode(), emitted)

    async def _duplicate(
        self,
        record: SourceRecord,
        detail: str,
        *,
        vote_id: UUID,
        token_id: str,
        position: tuple[int, int],
        payload: bytes | None = None,
    ) -> Rejection:
        """A ``duplicate_key_image`` rejection of the vote at ``position`` on the votes topic
        (the caller emits it).

        Its raw payload, unless given, is read back from the votes topic there (see
        :mod:`agents.record_reader`); when the log no longer holds it, the detail says so.
        """
        if payload is None:
            payload = await self.read_vote(*position)
            if payload is None:
                payload = b""
                detail += " (payload not kept: the votes topic no longer holds the record)"
        return rejection_for(
            record,
            ReasonCode.DUPLICATE_KEY_IMAGE,
            detail,
            vote_id=vote_id,
            token_id=token_id,
            payload=payload,
            source=(self.votes_topic, *position),
        )

    def _event(
        self,
        partition: int,
        sequence: int,
        prev_hash: str,
        kind: AuditKind,
        vote: AcceptedVote,
        decision: Decision,
        subject: dict[str, Any],
        reason: ReasonCode | None = None,
    ) -> AuditEvent:
        """An event of ``vote``'s key image about ``subject`` (a :func:`_winner` record)."""
        return AuditEvent.chained(
            prev_hash=prev_hash,
            chain=_chain(partition),
            sequence=sequence,
            kind=kind,
            vote_id=subject["vote_id"],
            submission_id=vote.submission_id,
            key_image=vote.key_image,
            reason=reason,
            decision=decision,
            source_partition=subject["source_partition"],
            source_offset=subject["source_offset"],
        )

    # --- state helpers ---------------------------------------------------------

    def _decide(self, counts: VoteCounts) -> Decision:
        return decide(
            approve=counts.approve,
            reject=counts.reject,
            flag=counts.flag,
            escalate=counts.escalate,
            min_votes=self.min_votes,
            flag_threshold=self.flag_threshold,
        )

    def _tally(
        self, submission_id: str, counts: VoteCounts, version: int, frontier: Frontier
    ) -> Tally:
        decision = self._decide(counts)
        return Tally(
            submission_id=submission_id,
            counts=counts,
            total=counts.total,
            decision=decision,
            rules_version=self.rules_version,
            version=version,
            log_size=frontier.size,
            log_root=frontier.root().hex(),
        )

    def _set_tally(
        self,
        record: SourceRecord,
        submission_id: str,
        counts: VoteCounts,
        version: int,
        frontier: Frontier,
    ) -> None:
        self._tallies[submission_id] = (counts, version, frontier)
        self._partition_of[submission_id] = record.partition

    def _load_tally(self, submission_id: str) -> tuple[VoteCounts, int, Frontier]:
        """The submission's tally and log frontier (the batch's own, which callers may append
        to, or a fresh copy of the stored one)."""
        if submission_id in self._tallies:
            return self._tallies[submission_id]
        raw = self.state.get(f"t|{submission_id}".encode())
        if not raw:
            return VoteCounts(), 0, Frontier()
        frontier = Frontier.from_json(raw["log"]) if "log" in raw else Frontier()
        return VoteCounts.model_validate(raw["counts"]), int(raw["version"]), frontier

    def _load_chain(self, partition: int) -> tuple[int, str]:
        if partition in self._chains:
            return self._chains[partition]
        raw = self.state.get(f"c|{partition}".encode())
        if not raw:
            return 0, genesis_hash(_chain(partition))
        return int(raw["seq"]), str(raw["hash"])


def _chain(partition: int) -> str:
    return f"tally-{partition}"


#: The order of a vote whose record has no timestamp: after every timestamped one.
_UNTIMED = 2**63


def _order(vote: AcceptedVote) -> tuple[int, int, int]:
    """Which of two votes with one key image was cast first: timestamp, then position.

    Both are properties of the votes-topic records, so a replay into fresh state
    picks the same winner whatever order the two reach this stage in.
    """
    ts = vote.source_timestamp_ms
    return (_UNTIMED if ts is None else ts, vote.source_partition, vote.source_offset)


def _winner(vote: AcceptedVote) -> dict[str, Any]:
    """What the entry keeps of its counted vote: enough to retract it later (the payload,
    needed only then, is read back from the votes topic)."""
    return {
        "vote_id": str(vote.vote_id),
        "vote_type": vote.vote_type.value,
        "token_id": vote.token_id,
        "source_partition": vote.source_partition,
        "source_offset": vote.source_offset,
        "order": list(_order(vote)),
        "digest": vote.vote_digest,
    }


class _Entry:
    """A ballot entry: the vote counted for (submission, key image), and how it got there.

    ``changes`` lists every change the entry made to the tally, in order: the
    first vote counted, then each retraction-and-count by a vote cast earlier.
    Each keeps the tally version it produced and its audit events, so the vote
    that made it can repair a tally or chain head a crash set back, whichever
    of the key image's votes comes again.

    Entries written before retractions existed (``vote_id``, ``version``,
    ``event``) read as one change whose vote can never be retracted: they keep
    no order, and keep counting as they always did.
    """

    __slots__ = ("changes", "raw", "winner")

    def __init__(self, raw: dict[str, Any], winner: dict[str, Any], changes: list) -> None:
        self.raw, self.winner, self.changes = raw, winner, changes

    @classmethod
    def load(cls, raw: dict[str, Any]) -> _Entry:
        if "winner" in raw:
            return cls(raw, raw["winner"], raw["changes"])
        legacy = {"by": raw["vote_id"], "version": raw["version"], "events": [raw["event"]]}
        return cls(raw, {"vote_id": raw["vote_id"]}, [legacy])

    def change_by(self, vote_id: str) -> dict[str, Any] | None:
        return next((c for c in self.changes if c["by"] == vote_id), None)

    def winner_order(self) -> tuple[int, int, int]:
        order = self.winner.get("order")
        return (-1, -1, -1) if order is None else tuple(order)
