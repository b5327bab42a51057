"""The verify stage: votes topic in, accepted votes (keyed by submission) and rejections out.

A batch of records is handled in three steps, so that checking signatures in
bulk never changes an outcome:

1. parse every record (malformed -> rejection) and, replaying the batch's
   token issues and revocations in order, pick the votes whose token could
   still be spendable and whose ring and submission fit: only those need a
   signature check;
2. check those signatures together (``ringcrypto.verify_batch``, in a thread,
   the GIL released), in chunks of :data:`CHECK_CHUNK`;
3. walk the batch again in offset order, applying each record to the token
   table exactly as if records came one by one: the first vote with a valid
   signature spends its token, any later one finds it spent. A record waits
   only for its own chunk's check, so applying the first chunk overlaps
   checking the next ones (the event loop and the check use one core each).

Only a valid signature spends a token (DESIGN invariant 4).

Token events must come from the issuer (finding F5, :mod:`agents.issuer`): a
TokenIssued applies only with a valid issuer signature; a TokenRevoked only
with its own issuer signature, or with the issuer-signed CredentialRevoked
that caused it when the token was issued to that credential. Anything else
changes nothing and becomes an ``unauthorized_token_event`` rejection.
Issuer signatures (a ring of one: ~71 µs each, docs/security.md) are checked
in step 2 with the votes' signatures, off the event loop. Step 1 assumes
token events are authorised when it picks the votes to check: a forged one
at worst makes a vote checked needlessly, or singly in step 3.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from models.base import IssuerSigned
from models.fields import MAX_PAYLOAD_BYTES
from models.internal import AcceptedVote, CredentialToken, vote_id_for_token
from models.reasons import ReasonCode
from models.votes import TokenIssued, TokenRevoked, VoteCast, parse_votes_message

from .control import ControlState, Lookup
from .issuer import IssuerKeys
from .records import Outputs, SourceRecord, event_scope, in_log_order, rejection_for
from .tokens import TokenPhase, TokenState, vote_digest

__all__ = ["PreparedBatch", "VoteVerifier"]

log = logging.getLogger(__name__)

Message = VoteCast | TokenIssued | TokenRevoked

#: Signatures per ``verify_batch`` call. Small enough that applying a batch's
#: first records starts soon, large enough to keep the combined check's saving
#: (bench/bench_crypto.py: batches of 64 already verify at the batch rate).
CHECK_CHUNK = 64


@dataclass(slots=True)
class _Parsed:
    record: SourceRecord
    message: Message | None = None
    signing_bytes: bytes = b""
    signature: bytes = b""
    lookup: Lookup | None = None
    #: Index into the batch's signature results, when the signature was checked.
    check: int | None = None
    #: A token event's issuer signature check, and its index in the batch's results.
    issuer_item: tuple[Any, bytes, bytes, bytes] | None = None
    issuer_check: int | None = None
    #: Set when parsing already decided the record: (reason, detail, message).
    early: tuple[ReasonCode, str, Message | None] | None = None


class VoteVerifier:
    """Decides each votes-topic record; state lives in ``tokens`` (token_id bytes -> dict)."""

    def __init__(
        self,
        *,
        control: ControlState,
        tokens: MutableMapping[bytes, dict[str, Any]],
        outputs: Outputs,
        verify_batch: Callable[[list[tuple[Any, bytes, bytes, bytes]]], list[bytes | None]],
        verify_one: Callable[[Any, bytes, bytes, bytes], bytes],
        issuer: IssuerKeys,
    ) -> None:
        self.control = control
        self.issuer = issuer
        self.tokens = tokens
        self.outputs = outputs
        self._verify_batch = verify_batch
        self._verify_one = verify_one
        # One thread, so chunks are checked in the order they are needed.
        self._checker = ThreadPoolExecutor(1, thread_name_prefix="ringtally-verify")
        #: Token states as batches prepared but not yet applied will leave them.
        self._ahead: dict[bytes, TokenState | None] = {}
        self._unapplied = 0

    async def process(self, records: Sequence[SourceRecord]) -> None:
        """Decide a batch: :meth:`prepare` it, then :meth:`apply` it."""
        await self.apply(await self.prepare(records))

    async def prepare(self, records: Sequence[SourceRecord]) -> PreparedBatch:
        """Steps 1 and 2: parse, look up, and start the signature checks.

        Nothing is written. The worker prepares a batch while the one before
        it is still being applied, so that its checks run meanwhile; the token
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
            for item in batch.parsed:  # in offset order, whatever step decided them
                if item.early is not None:
                    reason, detail, message = item.early
                    await self._reject(item, reason, detail, message=message)
                elif item.message is not None:
                    with event_scope(item.record):
                        await self._apply(item, batch.checks)
        finally:
            self._unapplied -= 1
            if not self._unapplied:
                self._ahead.clear()  # the table holds every prepared batch's writes now

    # --- step 1: parse and select -------------------------------------------

    def _parse(self, record: SourceRecord) -> _Parsed:
        item = _Parsed(record)
        value = record.value
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
        if isinstance(message, VoteCast):
            expected = vote_id_for_token(message.token_id)
            if message.vote_id != expected:
                item.early = (
                    ReasonCode.MALFORMED,
                    f"vote_id must be {expected} (uuid5 of the token id), got {message.vote_id}",
                    message,
                )
                return item
            item.signing_bytes = message.signing_bytes()
            item.signature = message.signature_bytes()
        item.message = message
        return item

    async def _resolve_control(self, parsed: list[_Parsed]) -> None:
        """Look up each vote's ring and submission; catch up once if any is unknown."""
        votes = [p for p in parsed if isinstance(p.message, VoteCast)]
        for p in votes:
            p.lookup = self._lookup(p.message)
        unknown = (ReasonCode.UNKNOWN_RING, ReasonCode.UNKNOWN_SUBMISSION)
        if any(p.lookup and p.lookup.reason in unknown for p in votes):
            # Maybe this worker has not yet read a ring or submission registered
            # just before the vote: read up to the current end, then look again.
            await self.control.sync(timeout=5.0)
            for p in votes:
                if p.lookup and p.lookup.reason in unknown:
                    p.lookup = self._lookup(p.message)

    def _lookup(self, vote: Any) -> Lookup:
        return self.control.lookup(
            submission_id=vote.submission_id, ring_id=vote.ring_id, epoch=vote.epoch
        )

    # --- step 2: signatures ---------------------------------------------------

    def _check_signatures(self, parsed: list[_Parsed]) -> _Checks:
        items: list[tuple[Any, bytes, bytes, bytes]] = []
        simulated = self._ahead  # batches before this one may not be applied yet
        for p in parsed:
            message = p.message
            if message is None:
                continue
            key = p.record.key or b""
            with event_scope(p.record):
                stored = self._load(key)
            state = simulated[key] if key in simulated else stored
            if not isinstance(message, VoteCast):
                p.issuer_item = self.issuer.batch_item(_issuer_signed(message))
                if p.issuer_item is not None:
                    p.issuer_check = len(items)
                    items.append(p.issuer_item)
            if isinstance(message, TokenIssued):
                verdict = TokenState.issue(
                    state,
                    credential_hash=message.credential_hash,
                    epoch=message.epoch,
                    offset=p.record.offset,
                )
                simulated[key] = verdict.state or state
            elif isinstance(message, TokenRevoked):
                verdict = TokenState.revoke(state, reason=message.reason, offset=p.record.offset)
                simulated[key] = verdict.state or state
            elif (
                p.lookup is not None
                and p.lookup.reason is None
                and any(
                    s is not None and s.phase is TokenPhase.ISSUED and s.epoch == message.epoch
                    # every state step 3 may decide against: checking too many is harmless
                    for s in (state, stored, stored and stored.as_of(p.record.offset))
                )
            ):
                p.check = len(items)
                items.append(_signature_item(p))
        loop = asyncio.get_running_loop()
        return _Checks(
            [
                loop.run_in_executor(self._checker, self._verify_batch, items[i : i + CHECK_CHUNK])
                for i in range(0, len(items), CHECK_CHUNK)
            ]
        )

    # --- step 3: apply in offset order ---------------------------------------------

    async def _apply(self, p: _Parsed, results: _Checks) -> None:
        message, record = p.message, p.record
        key = record.key or b""
        current = self._load(key)
        # A record older than the token's last change is coming again (crash,
        # rebalance): decide it against the state it saw the first time, and
        # never write that older state back.
        again = current is not None and current.newer_than(record.offset)
        state = current.as_of(record.offset) if current is not None and again else current
        if isinstance(message, TokenIssued):
            problem = await self._issuer_problem(p, message, results)
            if problem is not None:
                await self._reject(p, ReasonCode.UNAUTHORIZED_TOKEN_EVENT, problem, message=message)
                return
            verdict = TokenState.issue(
                state,
                credential_hash=message.credential_hash,
                epoch=message.epoch,
                offset=record.offset,
            )
            if verdict.reason:
                await self._reject(p, verdict.reason, verdict.detail, message=message)
                return
            if not again:
                self._store(key, verdict.state or state)
            # Re-sent on a redelivery too: the index write may be what a crash lost.
            await self.outputs.credential_token(
                CredentialToken(
                    credential_hash=message.credential_hash,
                    token_id=message.token_id,
                    epoch=message.epoch,
                )
            )
            return
        if isinstance(message, TokenRevoked):
            problem, reason = await self._authorise_revocation(p, message, state, results)
            if problem is not None:
                await self._reject(p, ReasonCode.UNAUTHORIZED_TOKEN_EVENT, problem, message=message)
                return
            verdict = TokenState.revoke(state, reason=reason, offset=record.offset)
            if verdict.state is not None and not again:
                self._store(key, verdict.state)
            return
        await self._apply_vote(p, state, results, later=current if again else None)

    async def _issuer_problem(
        self, p: _Parsed, message: IssuerSigned, results: _Checks
    ) -> str | None:
        """None when the issuer signed ``message`` (a token event or its embedded revocation)."""
        if p.issuer_item is not None and p.issuer_check is not None:
            if await results.key_image(p.issuer_check) is not None:
                self.issuer.verified(p.issuer_item)
                return None
        # Not checked in step 2, or failed under the key guessed there: every trusted key.
        return self.issuer.check(message)

    async def _authorise_revocation(
        self, p: _Parsed, message: TokenRevoked, state: TokenState | None, results: _Checks
    ) -> tuple[str | None, str]:
        """(why not, None when authorised; the revocation reason to record).

        Embedded credential revocations revoke only tokens issued to that
        credential, and the reason recorded is the signed one, not the
        TokenRevoked's own (unsigned) text.
        """
        revocation = message.credential_revocation
        if revocation is None:
            return await self._issuer_problem(p, message, results), message.reason
        problem = await self._issuer_problem(p, revocation, results)
        if problem is not None:
            return f"embedded {problem}", ""
        owner = state.credential_hash if state is not None else None
        if owner != revocation.credential_hash:
            held = f"credential {owner}" if owner else "no known credential (never issued)"
            return (
                f"the embedded revocation is for credential {revocation.credential_hash}; "
                f"token {message.token_id!r} belongs to {held}",
                "",
            )
        return None, revocation.token_reason()

    async def _apply_vote(
        self,
        p: _Parsed,
        state: TokenState | None,
        results: _Checks,
        *,
        later: TokenState | None = None,
    ) -> None:
        """Decide one vote against ``state``; ``later``: the token's current state
        when the vote is coming again after later records changed it."""
        vote, record = p.message, p.record
        assert isinstance(vote, VoteCast)
        key = record.key or b""
        if state is None:
            await self._reject(
                p,
                ReasonCode.UNKNOWN_TOKEN,
                f"token {vote.token_id!r} was never issued",
                message=vote,
            )
            return
        digest = vote_digest(p.signing_bytes, p.signature)
        verdict = state.check_spend(vote_epoch=vote.epoch, digest=digest)
        if verdict.replay:
            # This exact vote already spent the token: forward it again (the tally
            # stage recognises it) and rewrite the state so the changelog has it.
            self._store(key, state)
            original = state.changed_offset if state.changed_offset is not None else p.record.offset
            await self.outputs.accepted(self._accepted(p, state.key_image or "", offset=original))
            return
        if verdict.reason:
            await self._reject(p, verdict.reason, verdict.detail, message=vote)
            return
        assert p.lookup is not None
        if p.lookup.reason:
            await self._reject(p, p.lookup.reason, p.lookup.detail, message=vote)
            return
        if p.check is None:  # not foreseen when prepared (a batch before it changed the token)
            key_image = await self._check_one(p)
        else:
            key_image = await results.key_image(p.check)
        if key_image is None:
            reason, detail = self._explain_failure(p)
            await self._reject(p, reason, detail, message=vote)
            return
        if later is not None:
            await self._reject_overtaken(p, later)
            return
        spent = state.spend(
            vote_id=str(vote.vote_id),
            digest=digest,
            key_image=key_image.hex(),
            offset=record.offset,
        )
        self._store(key, spent)
        await self.outputs.accepted(self._accepted(p, key_image.hex()))

    async def _reject_overtaken(self, p: _Parsed, later: TokenState) -> None:
        """A valid vote coming again finds its token spent or revoked by a later record.

        Decided in offset order it would have spent the token, so the later
        record was applied before it at some point: one vote per token still
        holds (the token stays as it is), but the order did not. Logged loudly.
        """
        vote = p.message
        assert isinstance(vote, VoteCast)
        log.error(
            "vote at %s:%s would have spent token %r, which a later record (offset %s) "
            "already %s: records of this token were applied out of offset order",
            p.record.partition,
            p.record.offset,
            vote.token_id,
            later.changed_offset,
            later.phase,
        )
        reason = (
            ReasonCode.TOKEN_REVOKED
            if later.phase is TokenPhase.REVOKED
            else ReasonCode.TOKEN_SPENT
        )
        detail = f"token {later.phase} at offset {later.changed_offset}, after this vote's offset"
        await self._reject(p, reason, detail, message=vote)

    async def _check_one(self, p: _Parsed) -> bytes | None:
        """One vote's signature, checked on its own: its key image, or None."""
        loop = asyncio.get_running_loop()
        (key_image,) = await loop.run_in_executor(
            self._checker, self._verify_batch, [_signature_item(p)]
        )
        return key_image

    def _explain_failure(self, p: _Parsed) -> tuple[ReasonCode, str]:
        """Why a signature failed: undecodable (malformed) or not valid (bad_signature)."""
        import ringcrypto

        try:
            self._verify_one(*_signature_item(p))
        except ringcrypto.MalformedInput as exc:
            return ReasonCode.MALFORMED, f"signature: {exc}"
        except ringcrypto.InvalidSignature as exc:
            return ReasonCode.BAD_SIGNATURE, f"signature does not verify: {exc}"
        # The batch said no, the single check says yes: never count such a vote.
        log.error(
            "batch and single verification disagree at %s:%s", p.record.partition, p.record.offset
        )
        return ReasonCode.BAD_SIGNATURE, "signature rejected by the batch check"

    # --- helpers ----------------------------------------------------------------

    def _accepted(self, p: _Parsed, key_image: str, *, offset: int | None = None) -> AcceptedVote:
        """The vote for the tally stage; ``offset``: the spend's position, for a redelivery."""
        vote = p.message
        assert isinstance(vote, VoteCast)
        source_offset = p.record.offset if offset is None else offset
        return AcceptedVote(
            vote_id=vote.vote_id,
            submission_id=vote.submission_id,
            key_image=key_image,
            vote_type=vote.vote_type,
            ring_id=vote.ring_id,
            epoch=vote.epoch,
            token_id=vote.token_id,
            source_partition=p.record.partition,
            source_offset=source_offset,
            # A copy of the spending vote (another offset) has another timestamp: none is sent.
            source_timestamp_ms=p.record.timestamp_ms if source_offset == p.record.offset else None,
        )

    def _load(self, key: bytes) -> TokenState | None:
        raw = self.tokens.get(key)
        return TokenState.from_dict(raw) if raw else None

    def _store(self, key: bytes, state: TokenState) -> None:
        self.tokens[key] = state.to_dict()

    async def _reject(
        self, p: _Parsed, reason: ReasonCode, detail: str, *, message: Message | None = None
    ) -> None:
        token_id = getattr(message, "token_id", None)
        vote_id = getattr(message, "vote_id", None)
        if token_id is None and p.record.key is not None:
            token_id = p.record.key[:1024].decode("utf-8", "replace")
        rejection = rejection_for(p.record, reason, detail, vote_id=vote_id, token_id=token_id)
        await self.outputs.rejection(p.record.key or b"", rejection)


def _issuer_signed(message: TokenIssued | TokenRevoked) -> IssuerSigned:
    """What the issuer signed for a token event: itself, or its embedded credential revocation."""
    if isinstance(message, TokenRevoked) and message.credential_revocation is not None:
        return message.credential_revocation
    return message


def _signature_item(p: _Parsed) -> tuple[Any, bytes, bytes, bytes]:
    """What ringcrypto checks for a vote: (ring, context, signed message, signature)."""
    vote = p.message
    assert isinstance(vote, VoteCast) and p.lookup is not None and p.lookup.ring is not None
    return (p.lookup.ring.crypto, vote.context(), p.signing_bytes, p.signature)


@dataclass(slots=True)
class PreparedBatch:
    """A batch parsed, looked up and with its signature checks under way."""

    parsed: list[_Parsed]
    checks: _Checks


class _Checks:
    """A batch's signature checks, running in chunks: each result when its chunk is done."""

    def __init__(self, chunks: list[asyncio.Future[list[bytes | None]]]) -> None:
        self._chunks = chunks

    async def key_image(self, index: int) -> bytes | None:
        """The key image of the ``index``-th checked signature, None if it failed."""
        chunk = await self._chunks[index // CHECK_CHUNK]
        return chunk[index % CHECK_CHUNK]


def _describe(exc: ValidationError) -> str:
    """The first few validation errors, one line (never the offending value in full)."""
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(x) for x in err.get("loc", ())) or "message"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
