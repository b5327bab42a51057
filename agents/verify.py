"""The verify stage: votes topic in, accepted votes (keyed by submission) and rejections out.

A refusal of a well-formed vote (its submission open at its broker time) goes
to the tally stage instead, as a ``RefusedVote`` on the accepted topic: it is
a leaf of the submission's log, which only that stage orders (native/SPEC.md
§14.1). So do the ``ClosingPassed`` markers from which that stage signs a
closed submission's final head (§14.3).

A batch of records is handled in three steps, so that checking signatures in
bulk never changes an outcome:

1. parse every record (malformed or on the wrong partition -> rejection),
   wait until the control topics are read up to the batch's newest broker
   timestamp, look up each vote's ring version and submission *at its broker
   time*, and pick the votes whose slot tag could still be unspent: only
   those need a signature check;
2. check those signatures together (``ringcrypto.verify_vote_batch``, in a
   thread, the GIL released), in chunks of :data:`CHECK_CHUNK`;
3. walk the batch again in offset order, applying each vote to the tag table
   exactly as if records came one by one: the first vote with a valid
   signature spends its tag, any later one finds it spent. A record waits
   only for its own chunk's check, so applying the first chunk overlaps
   checking the next ones (the event loop and the check use one core each).

Only a valid signature spends a tag (DESIGN invariant 4), and only the holder
of a ring key can make one for the key's tag (native/SPEC.md). A record on a
partition other than its key's murmur2 partition is rejected before it can
read or write any state (invariant 9, docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from models.fields import MAX_PAYLOAD_BYTES
from models.internal import AcceptedVote, ClosingPassed, RefusedVote, vote_id_for_token
from models.outputs import Rejection
from models.reasons import ReasonCode
from models.votes import VoteCast, parse_votes_message
from streams.partitioner import PARTITIONER_HINT, partition_for_key

from .control import ControlState, Lookup
from .records import (
    Outputs,
    SourceRecord,
    event_scope,
    in_log_order,
    producer_time_problem,
    rejection_for,
)
from .tokens import TokenState, vote_digest

__all__ = ["PreparedBatch", "VoteVerifier"]

log = logging.getLogger(__name__)

#: Signatures per ``verify_vote_batch`` call. Small enough that applying a batch's
#: first records starts soon, large enough to keep the combined check's saving
#: (bench/bench_crypto.py: batches of 64 already verify at the batch rate).
CHECK_CHUNK = 64

#: What ringcrypto checks for a vote: (ring, context, epoch bytes, slot, message, signature).
CheckItem = tuple[Any, bytes, bytes, int, bytes, bytes]
#: What a check returns: (key image, slot tag), or None when the signature failed.
#: (key image, slot tag), or why the signature failed: the exception ``verify_vote`` would
#: raise (ringcrypto's MalformedInput or InvalidSignature), as ``verify_vote_batch``
#: gives it with ``errors=True``.
CheckResult = tuple[bytes, bytes] | Exception


@dataclass(slots=True)
class _Parsed:
    record: SourceRecord
    message: VoteCast | None = None
    signing_bytes: bytes = b""
    signature: bytes = b""
    lookup: Lookup | None = None
    #: Index into the batch's signature results, when the signature was checked.
    check: int | None = None
    #: Set when parsing already decided the record: (reason, detail, message).
    early: tuple[ReasonCode, str, VoteCast | None] | None = None


class VoteVerifier:
    """Decides each votes-topic record; state lives in ``tokens`` (tag bytes -> dict)."""

    def __init__(
        self,
        *,
        control: ControlState,
        tokens: MutableMapping[bytes, dict[str, Any]],
        outputs: Outputs,
        verify_batch: Callable[..., list[CheckResult]],
        partitions: int,
    ) -> None:
        self.control = control
        self.tokens = tokens
        self.outputs = outputs
        self.partitions = partitions
        self._verify_batch = functools.partial(verify_batch, errors=True)
        # One thread, so chunks are checked in the order they are needed.
        self._checker = ThreadPoolExecutor(1, thread_name_prefix="ringtally-verify")
        #: Tag states as batches prepared but not yet applied will leave them.
        self._ahead: dict[bytes, TokenState | None] = {}
        self._unapplied = 0
        #: Votes partition -> closed submissions it has sent a ClosingPassed for (in memory:
        #: after a restart each is sent once more, which the tally stage ignores).
        self._passed: dict[int, set[str]] = {}
        #: Votes partition -> the offset after the last record applied here: every record
        #: below it on that partition was decided and its outcome emitted (in offset order).
        self._decided: dict[int, int] = {}
        #: Closed submission -> when (monotonic) this verifier first saw its closing.
        self._closing_seen: dict[str, float] = {}
        #: Held while a batch is applied, so a ClosingPassed without a vote
        #: (:meth:`pass_idle_closings`) never lands among a batch's outcomes.
        self._applying = asyncio.Lock()

    async def process(self, records: Sequence[SourceRecord]) -> None:
        """Decide a batch: :meth:`prepare` it, then :meth:`apply` it."""
        await self.apply(await self.prepare(records))

    async def prepare(self, records: Sequence[SourceRecord]) -> PreparedBatch:
        """Steps 1 and 2: parse, look up, and start the signature checks.

        Nothing is written. The worker prepares a batch while the one before
        it is still being applied, so that its checks run meanwhile; the tag
        states that batch is about to write are taken into account here
        (:attr:`_ahead`), and a vote whose check was not foreseen is checked
        on its own when applied.
        """
        parsed = [self._parse(r) for r in in_log_order(records)]
        await self._resolve_control(parsed)
        checks = self._check_signatures(parsed)
        self._unapplied += 1
        return PreparedBatch(parsed, checks)

    async def apply(self, batch: PreparedBatch) -> None:
        """Step 3: decide each record in offset order and emit its outcome."""
        try:
            async with self._applying:
                await self._apply(batch)
        finally:
            self._unapplied -= 1
            if not self._unapplied:
                self._ahead.clear()  # the table holds every prepared batch's writes now

    async def _apply(self, batch: PreparedBatch) -> None:
        reached: dict[int, int] = {}  # votes partition -> newest broker time of a vote
        for item in batch.parsed:  # in offset order, whatever step decided them
            partition = item.record.partition
            if item.early is not None:
                reason, detail, message = item.early
                await self._reject(item, reason, detail, message=message)
            elif item.message is not None:
                with event_scope(item.record):
                    await self._apply_vote(item, batch.checks)
                reached[partition] = max(reached.get(partition, 0), _stamp(item.record))
            after = item.record.offset + 1
            self._decided[partition] = max(self._decided.get(partition, 0), after)
        await self._closings_passed(reached)

    async def pass_idle_closings(
        self,
        partitions: Sequence[int],
        *,
        end_offsets: Callable[[list[int]], Awaitable[dict[int, int]]],
        committed: Callable[[int], int | None],
        grace: float,
    ) -> None:
        """Pass closings on votes partitions no vote after the closing has reached (a timer
        calls this for the partitions this worker owns; native/SPEC.md §14.3).

        The closing was read (it is in the control state) before the partition's end
        offset is asked, and at least ``grace`` seconds before (the brokers' clock skew,
        and on replicated topics the time a record may sit above the high watermark): a
        record the broker appends at or past that end is stamped at or after
        ``closed_ms``, so once every record below the end was decided here (or, below
        ``committed(partition)``, the commit, by any worker) and its outcome emitted, the
        ClosingPassed follows them, as a vote past the closing would have sent it.
        ``end_offsets(partitions)``: each partition's end offset, from the broker (a
        partition missing: not known now, tried again next time).
        """
        now = time.monotonic()
        closed = [
            (s, e.closed_ms) for s, e in self.control.submissions.items() if e.closed_ms is not None
        ]
        ripe = []
        for submission_id, closed_ms in closed:
            seen = self._closing_seen.setdefault(submission_id, now)
            if now - seen >= grace:
                ripe.append((submission_id, closed_ms))
        pending = {
            p: [(s, ms) for s, ms in ripe if s not in self._passed.get(p, ())] for p in partitions
        }
        pending = {p: waiting for p, waiting in pending.items() if waiting}
        if not pending:
            return
        ends = await end_offsets(sorted(pending))
        async with self._applying:  # never among a batch's outcomes
            for partition, waiting in pending.items():
                end = ends.get(partition)
                decided = max(self._decided.get(partition, 0), committed(partition) or 0)
                if end is None or decided < end:
                    continue
                for submission_id, closed_ms in waiting:
                    await self._pass(partition, submission_id, closed_ms)

    async def _pass(self, partition: int, submission_id: str, closed_ms: int) -> None:
        """Tell the tally stage, once, that ``partition`` passed the submission's closing."""
        sent = self._passed.setdefault(partition, set())
        if submission_id in sent:
            return
        await self.outputs.closing_passed(
            ClosingPassed(
                submission_id=submission_id, closed_ms=closed_ms, votes_partition=partition
            )
        )
        sent.add(submission_id)

    async def _closings_passed(self, reached: dict[int, int]) -> None:
        """For each closed submission whose closing's broker time a votes partition has now
        reached with a vote (the control topics were read that far for it), tell the tally
        stage, after every outcome of that partition so far: no vote appended before the
        closing remains there (broker times grow along a partition's log), so once every
        partition has passed, the submission's log is final (native/SPEC.md §14.3)."""
        if not reached:
            return
        # a copy: the control reader may add closings while this awaits the producer
        closed = [
            (s, e.closed_ms) for s, e in self.control.submissions.items() if e.closed_ms is not None
        ]
        for submission_id, closed_ms in closed:
            for partition, newest in reached.items():
                if closed_ms <= newest:
                    await self._pass(partition, submission_id, closed_ms)

    # --- step 1: parse and select -------------------------------------------

    def _parse(self, record: SourceRecord) -> _Parsed:
        item = _Parsed(record)
        value = record.value
        if record.key is not None and self.partitions > 1:
            home = partition_for_key(record.key, self.partitions)
            if home != record.partition:
                item.early = (
                    ReasonCode.WRONG_PARTITION,
                    f"record on partition {record.partition}; its key belongs on partition "
                    f"{home} of {self.partitions} ({PARTITIONER_HINT})",
                    None,
                )
                return item
        producer_time = producer_time_problem(record.timestamp_type)
        if producer_time is not None:
            item.early = (ReasonCode.MALFORMED, producer_time, None)
            return item
        if value is None:
            item.early = (ReasonCode.MALFORMED, "empty message (null value)", None)
            return item
        if len(value) > MAX_PAYLOAD_BYTES:
            item.early = (
                ReasonCode.MALFORMED,
                f"message is {len(value)} bytes; the limit is {MAX_PAYLOAD_BYTES}",
                None,
            )
            return item
        try:
            message = parse_votes_message(value)
        except ValidationError as exc:
            item.early = (ReasonCode.MALFORMED, _describe(exc), None)
            return item
        if record.key != message.token_id.encode("utf-8"):
            item.early = (
                ReasonCode.MALFORMED,
                f"message key {record.key!r} is not its token id {message.token_id!r}",
                message,
            )
            return item
        expected = vote_id_for_token(message.token_id)
        if message.vote_id != expected:
            item.early = (
                ReasonCode.MALFORMED,
                f"vote_id must be {expected} (uuid5 of the token id), got {message.vote_id}",
                message,
            )
            return item
        signature = message.signature_bytes()
        carried = signature[_TAG]
        if len(carried) == 32 and carried.hex() != message.token_id:
            # Checked before any state or signature: a vote signed with one key's tag cannot
            # name (and so spend) another tag. A short signature fails the crypto's length check.
            item.early = (
                ReasonCode.MALFORMED,
                f"token_id {message.token_id} is not the slot tag the signature carries "
                f"({carried.hex()})",
                message,
            )
            return item
        item.signing_bytes = message.signing_bytes()
        item.signature = signature
        item.message = message
        return item

    async def _resolve_control(self, parsed: list[_Parsed]) -> None:
        """Look up each vote's ring version and submission at its broker time, once the
        control topics are read that far (so live and replay decide alike)."""
        votes = [p for p in parsed if p.message is not None]
        if not votes:
            return
        await self.control.cover(max(_stamp(p.record) for p in votes))
        for p in votes:
            vote = p.message
            assert vote is not None
            p.lookup = self.control.lookup(
                submission_id=vote.submission_id,
                ring_id=vote.ring_id,
                ring_version=vote.ring_version,
                epoch=vote.epoch,
                slot=vote.slot,
                timestamp_ms=_stamp(p.record),
            )

    # --- step 2: signatures ---------------------------------------------------

    def _check_signatures(self, parsed: list[_Parsed]) -> _Checks:
        items: list[CheckItem] = []
        simulated = self._ahead  # batches before this one may not be applied yet
        for p in parsed:
            if p.message is None or p.lookup is None or p.lookup.reason is not None:
                continue
            key = p.record.key or b""
            with event_scope(p.record):
                stored = self._load(key)
            state = simulated[key] if key in simulated else stored
            # every state step 3 may decide against: checking too many is harmless
            if any(s is None for s in (state, stored, stored and stored.as_of(p.record.offset))):
                p.check = len(items)
                items.append(_signature_item(p))
                # as if it spends: a later vote of this tag in the batch will find it spent
                simulated[key] = TokenState.spend(
                    vote_id=str(p.message.vote_id),
                    digest=vote_digest(p.signing_bytes, p.signature),
                    key_image="",
                    offset=p.record.offset,
                )
        loop = asyncio.get_running_loop()
        return _Checks(
            [
                loop.run_in_executor(self._checker, self._verify_batch, items[i : i + CHECK_CHUNK])
                for i in range(0, len(items), CHECK_CHUNK)
            ]
        )

    # --- step 3: apply in offset order ---------------------------------------------

    async def _apply_vote(self, p: _Parsed, results: _Checks) -> None:
        """Decide one vote against its tag's state as of the vote's offset."""
        vote, record = p.message, p.record
        assert vote is not None
        key = record.key or b""
        current = self._load(key)
        # A record older than the tag's spend is coming again (crash, rebalance):
        # decide it against the state it saw the first time, and never write back.
        again = current is not None and current.newer_than(record.offset)
        state = current.as_of(record.offset) if current is not None and again else current
        digest = vote_digest(p.signing_bytes, p.signature)
        verdict = TokenState.check_spend(state, digest=digest)
        if verdict.replay:
            assert state is not None
            if state.changed_offset != record.offset:
                await self._reject_copy(p, state)
                return
            # This very record spent the tag (a redelivery): forward it again (the tally
            # stage recognises it) and rewrite the state so the changelog has it.
            self._store(key, state)
            await self.outputs.accepted(self._accepted(p, state.key_image, digest))
            return
        if verdict.reason:
            await self._refuse(p, verdict.reason, verdict.detail)
            return
        assert p.lookup is not None
        if p.lookup.reason:
            await self._refuse(p, p.lookup.reason, p.lookup.detail)
            return
        if p.check is None:  # not foreseen when prepared (a batch before it changed the tag)
            result = await self._check_one(p)
        else:
            result = await results.result(p.check)
        if not isinstance(result, tuple):
            # The batch's own verdict: a failed combined check is as final as a single
            # verification (SPEC §8.4), so a forged signature costs one check, not two.
            reason, detail = _failure(result)
            if reason is ReasonCode.BAD_SIGNATURE:
                await self._refuse(p, reason, detail)
            else:  # an undecodable signature: the vote is not well-formed
                await self._reject(p, reason, detail, message=vote)
            return
        key_image, tag = result
        if tag.hex() != vote.token_id:  # checked in _parse already; kept as the last word
            await self._reject(
                p,
                ReasonCode.MALFORMED,
                f"token_id {vote.token_id} is not the signature's slot tag {tag.hex()}",
                message=vote,
            )
            return
        if again:
            assert current is not None
            await self._reject_overtaken(p, current)
            return
        spent = TokenState.spend(
            vote_id=str(vote.vote_id),
            digest=digest,
            key_image=key_image.hex(),
            offset=record.offset,
        )
        self._store(key, spent)
        await self.outputs.accepted(self._accepted(p, key_image.hex(), digest))

    async def _reject_copy(self, p: _Parsed, spent: TokenState) -> None:
        """The very vote that spent the tag, at a later position: a new record (a producer's
        retry, or anyone replaying the vote's bytes), not a redelivery, so it gets an outcome
        of its own (one per votes-topic position, DESIGN). Not a log leaf: it is no new vote,
        and the vote's one leaf is the earlier position's (native/SPEC.md §14.1)."""
        detail = f"the same vote spent this slot tag at offset {spent.changed_offset}"
        await self._reject(p, ReasonCode.DUPLICATE_RECORD, detail, message=p.message)

    async def _reject_overtaken(self, p: _Parsed, later: TokenState) -> None:
        """A valid vote coming again finds its tag spent by a later record.

        Decided in offset order it would have spent the tag, so the later
        record was applied before it at some point: one vote per tag still
        holds (the tag stays as it is), but the order did not. Logged loudly.
        """
        log.error(
            "vote at %s:%s would have spent its tag, which a later record (offset %s) "
            "already spent: records of this tag were applied out of offset order",
            p.record.partition,
            p.record.offset,
            later.changed_offset,
        )
        detail = f"tag spent at offset {later.changed_offset}, after this vote's offset"
        await self._refuse(p, ReasonCode.TOKEN_SPENT, detail)

    async def _check_one(self, p: _Parsed) -> CheckResult:
        """One vote's signature, checked on its own (in the checker thread)."""
        loop = asyncio.get_running_loop()
        (result,) = await loop.run_in_executor(
            self._checker, self._verify_batch, [_signature_item(p)]
        )
        return result

    # --- helpers ----------------------------------------------------------------

    def _accepted(self, p: _Parsed, key_image: str, digest: str) -> AcceptedVote:
        """The vote for the tally stage; ``digest``: its :func:`vote_digest`."""
        vote = p.message
        assert vote is not None
        return AcceptedVote(
            vote_id=vote.vote_id,
            submission_id=vote.submission_id,
            key_image=key_image,
            vote_type=vote.vote_type,
            ring_id=vote.ring_id,
            ring_version=vote.ring_version,
            epoch=vote.epoch,
            token_id=vote.token_id,
            vote_digest=digest,
            source_partition=p.record.partition,
            source_offset=p.record.offset,
            source_timestamp_ms=p.record.timestamp_ms,
        )

    def _load(self, key: bytes) -> TokenState | None:
        raw = self.tokens.get(key)
        return TokenState.from_dict(raw) if raw else None

    def _store(self, key: bytes, state: TokenState) -> None:
        self.tokens[key] = state.to_dict()

    async def _refuse(self, p: _Parsed, reason: ReasonCode, detail: str) -> None:
        """Refuse a well-formed vote. When its submission was open at its broker time the
        refusal is a leaf of that submission's log (native/SPEC.md §14.1), and only the
        tally stage orders the log: the rejection goes there (the accepted topic, keyed
        by submission) to be given its leaf and emitted. Otherwise it is emitted here."""
        vote = p.message
        assert vote is not None
        if p.lookup is None or not p.lookup.in_log:
            await self._reject(p, reason, detail, message=vote)
            return
        refusal = RefusedVote(
            submission_id=vote.submission_id,
            vote_digest=vote_digest(p.signing_bytes, p.signature),
            rejection=self._rejection(p, reason, detail, message=vote),
        )
        await self.outputs.refused(refusal)

    async def _reject(
        self, p: _Parsed, reason: ReasonCode, detail: str, *, message: VoteCast | None = None
    ) -> None:
        rejection = self._rejection(p, reason, detail, message=message)
        await self.outputs.rejection(p.record.key or b"", rejection)

    def _rejection(
        self, p: _Parsed, reason: ReasonCode, detail: str, *, message: VoteCast | None
    ) -> Rejection:
        token_id = getattr(message, "token_id", None)
        vote_id = getattr(message, "vote_id", None)
        if token_id is None and p.record.key is not None:
            token_id = p.record.key[:1024].decode("utf-8", "replace")
        return rejection_for(p.record, reason, detail, vote_id=vote_id, token_id=token_id)


#: Where a vote signature carries its slot tag T (native/SPEC.md): ``sig[33:65]``.
_TAG = slice(33, 65)


def _stamp(record: SourceRecord) -> int:
    """The record's broker timestamp (LogAppendTime), ms; a record without one counts as 0."""
    return record.timestamp_ms if record.timestamp_ms is not None else 0


def _signature_item(p: _Parsed) -> CheckItem:
    """What ringcrypto checks for a vote."""
    vote = p.message
    assert vote is not None and p.lookup is not None and p.lookup.ring is not None
    return (
        p.lookup.ring.crypto,
        vote.context(),
        vote.epoch_bytes(),
        vote.slot,
        p.signing_bytes,
        p.signature,
    )


@dataclass(slots=True)
class PreparedBatch:
    """A batch parsed, looked up and with its signature checks under way."""

    parsed: list[_Parsed]
    checks: _Checks


class _Checks:
    """A batch's signature checks, running in chunks: each result when its chunk is done."""

    def __init__(self, chunks: list[asyncio.Future[list[CheckResult]]]) -> None:
        self._chunks = chunks

    async def result(self, index: int) -> CheckResult:
        """(key image, tag) of the ``index``-th checked signature, or why it failed."""
        chunk = await self._chunks[index // CHECK_CHUNK]
        return chunk[index % CHECK_CHUNK]


def _failure(exc: Exception) -> tuple[ReasonCode, str]:
    """The reason a failed signature check gives: undecodable (malformed) or not valid."""
    import ringcrypto

    if isinstance(exc, ringcrypto.MalformedInput):
        return ReasonCode.MALFORMED, f"signature: {exc}"
    if isinstance(exc, ringcrypto.InvalidSignature):
        return ReasonCode.BAD_SIGNATURE, f"signature does not verify: {exc}"
    raise TypeError(f"not a signature check's failure: {exc!r}")


def _describe(exc: ValidationError) -> str:
    """The first few validation errors, one line (never the offending value in full)."""
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(x) for x in err.get("loc", ())) or "message"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
