"""The per-token state machine: unknown -> issued -> spent | revoked.

Every event that touches a token (issue, revoke, a vote spending it) lies in
one ordered log (the token's votes-topic partition), and this module is the
only place that decides what such an event does. It is pure: the verify agent
reads a :class:`TokenState` from its changelog-backed table, calls a
transition, and writes back what it returns.

Idempotence: each transition recognises the event it has already applied
(same issuance, same revocation, the very same vote bytes) and answers
"no change" instead of an error, so a message processed twice after a crash
(at-least-once) neither double-spends nor earns a spurious rejection.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any

from models.reasons import ReasonCode

__all__ = ["TokenPhase", "TokenState", "Verdict", "vote_digest"]


class TokenPhase(StrEnum):
    ISSUED = "issued"
    SPENT = "spent"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an event does to a token: a new state, or a rejection reason, or nothing."""

    state: TokenState | None = None
    reason: ReasonCode | None = None
    detail: str = ""
    #: The event was already applied (a redelivery): re-emit its outputs, change nothing.
    replay: bool = False


@dataclass(frozen=True, slots=True)
class TokenState:
    """A token as the table stores it (``to_dict``/``from_dict`` for the JSON changelog)."""

    phase: TokenPhase
    #: None only for a token revoked before its issuance arrived.
    credential_hash: str | None = None
    epoch: int | None = None
    issued_offset: int | None = None
    spent_by: str | None = None
    spent_digest: str | None = None
    key_image: str | None = None
    changed_offset: int | None = None
    revoked_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies, and every field here is a scalar.
        return {name: value for name in _FIELDS if (value := getattr(self, name)) is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenState:
        return cls(**{**data, "phase": TokenPhase(data["phase"])})

    def as_of(self, offset: int) -> TokenState | None:
        """The state that the token's record at ``offset`` saw when it was first applied.

        A token's life is a line whose steps are recorded with their offsets:
        issued (``issued_offset``), then spent or revoked (``changed_offset``).
        So the state an earlier record saw can be read back from the current
        one, and a record that comes again (a crash before the commit, a
        rebalance) is decided exactly as the first time, however far its
        partition got in between.
        """
        if self.phase is TokenPhase.ISSUED or self.changed_offset is None:
            issued = self.issued_offset
            return None if issued is not None and offset <= issued else self
        if offset > self.changed_offset:
            return self
        if self.issued_offset is None or offset <= self.issued_offset:
            return None  # before its issuance (or revoked before it was issued)
        return TokenState(
            TokenPhase.ISSUED,
            self.credential_hash,
            self.epoch,
            issued_offset=self.issued_offset,
            changed_offset=self.issued_offset,
        )

    def newer_than(self, offset: int) -> bool:
        """Did a record after ``offset`` already change this token? (then it comes again)"""
        last = self.changed_offset if self.changed_offset is not None else self.issued_offset
        return last is not None and offset < last

    # --- transitions ----------------------------------------------------

    @staticmethod
    def issue(
        current: TokenState | None, *, credential_hash: str, epoch: int, offset: int
    ) -> Verdict:
        """TokenIssued: creates the token; repeating the same issuance changes nothing."""
        if current is None:
            return Verdict(
                state=TokenState(
                    TokenPhase.ISSUED,
                    credential_hash,
                    epoch,
                    issued_offset=offset,
                    changed_offset=offset,
                )
            )
        if current.credential_hash == credential_hash and current.epoch == epoch:
            return Verdict(replay=True)
        if current.credential_hash is None and current.phase is TokenPhase.REVOKED:
            # Revoked before its issuance arrived: it stays revoked, now with its owner.
            return Verdict(
                state=replace(
                    current, credential_hash=credential_hash, epoch=epoch, issued_offset=offset
                )
            )
        return Verdict(
            reason=ReasonCode.TOKEN_CONFLICT,
            detail=(
                f"token already issued to credential {current.credential_hash} for epoch "
                f"{current.epoch}; this issuance names {credential_hash} / epoch {epoch}"
            ),
        )

    @staticmethod
    def revoke(current: TokenState | None, *, reason: str, offset: int) -> Verdict:
        """TokenRevoked: an issued token becomes revoked; a spent one stays spent.

        A spent token's vote was valid when it was cast, so a later revocation
        does not take it back (it only stops future spending).
        """
        if current is None:
            return Verdict(
                state=TokenState(
                    TokenPhase.REVOKED, None, None, changed_offset=offset, revoked_reason=reason
                )
            )
        if current.phase is TokenPhase.ISSUED:
            return Verdict(
                state=replace(
                    current, phase=TokenPhase.REVOKED, changed_offset=offset, revoked_reason=reason
                )
            )
        return Verdict(replay=True)

    def check_spend(self, *, vote_epoch: int, digest: str) -> Verdict:
        """May a vote with these signed bytes spend this token? (before the signature check)

        ``replay`` means this exact vote already spent the token: its outputs are
        re-emitted and nothing else happens.
        """
        if self.phase is TokenPhase.REVOKED:
            return Verdict(
                reason=ReasonCode.TOKEN_REVOKED,
                detail=f"token revoked: {self.revoked_reason or 'no reason given'}",
            )
        if self.phase is TokenPhase.SPENT:
            if self.spent_digest == digest:
                return Verdict(replay=True)
            return Verdict(
                reason=ReasonCode.TOKEN_SPENT,
                detail=f"token already spent at offset {self.changed_offset}",
            )
        if self.epoch != vote_epoch:
            return Verdict(
                reason=ReasonCode.EPOCH_MISMATCH,
                detail=f"token is for epoch {self.epoch}, vote says {vote_epoch}",
            )
        return Verdict(state=self)

    def spend(self, *, vote_id: str, digest: str, key_image: str, offset: int) -> TokenState:
        """The token after a vote with a valid signature spent it."""
        if self.phase is not TokenPhase.ISSUED:
            raise ValueError(f"cannot spend a token that is {self.phase}")
        return replace(
            self,
            phase=TokenPhase.SPENT,
            spent_by=vote_id,
            spent_digest=digest,
            key_image=key_image,
            changed_offset=offset,
        )


#: TokenState's field names, in order (what ``to_dict`` writes when set).
_FIELDS = tuple(f.name for f in fields(TokenState))


def vote_digest(signing_bytes: bytes, signature: bytes) -> str:
    """Identity of one exact vote message: a redelivery has the same digest."""
    return hashlib.sha256(
        len(signing_bytes).to_bytes(4, "big") + signing_bytes + signature
    ).hexdigest()
