"""Revocation fan-out: a revoked credential's tokens each get a TokenRevoked on the votes topic.

Tokens are keyed by token id, credentials by credential hash, so this agent
keeps its own index, ``credential hash -> token ids``, fed by the verify
stage whenever it sees a TokenIssued (the ``credential-index`` topic is
co-partitioned with ``revocations``). The revocation itself then becomes a
TokenRevoked in each token's own ordered log, where the verify stage applies
it: a token already spent stays spent (its vote was valid when cast), so in
effect only the not-yet-spent tokens are revoked. A token issued *after* its
credential was revoked is revoked as soon as the index hears of it.

Only the issuer may revoke (finding F5): a CredentialRevoked whose issuer
signature does not verify becomes an ``unauthorized_token_event`` rejection
and fans out nothing. The workers cannot sign, so each TokenRevoked carries
the signed CredentialRevoked itself (``credential_revocation``), and the
verify stage checks that signature and that the token was issued to that
credential. The table keeps the signed revocation for tokens issued later.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping, Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from models.control import CredentialRevoked
from models.internal import CredentialToken
from models.reasons import ReasonCode

from .issuer import IssuerKeys
from .records import SourceRecord, event_scope, rejection_for

__all__ = ["RevocationFanout"]

log = logging.getLogger(__name__)


class FanoutOutputs(Protocol):
    async def token_revoked(self, token_id: str, revocation: CredentialRevoked) -> None: ...
    async def rejection(self, key: bytes, rejection: Any) -> None: ...


class RevocationFanout:
    def __init__(
        self,
        *,
        revocations_topic: str,
        state: MutableMapping[bytes, dict[str, Any]],
        outputs: FanoutOutputs,
        issuer: IssuerKeys,
    ) -> None:
        self.revocations_topic = revocations_topic
        self.issuer = issuer
        self.state = state
        self.outputs = outputs

    async def process(self, records: Sequence[SourceRecord]) -> None:
        for record in records:
            with event_scope(record):
                if record.topic == self.revocations_topic:
                    await self._revoke(record)
                else:
                    await self._index(record)

    async def _revoke(self, record: SourceRecord) -> None:
        try:
            revoked = CredentialRevoked.model_validate_json(record.value or b"")
        except ValidationError as exc:
            await self.outputs.rejection(
                record.key or b"",
                rejection_for(
                    record,
                    ReasonCode.MALFORMED,
                    f"credential revocation unreadable: {exc.errors()[0]['msg']}",
                ),
            )
            return
        problem = self.issuer.check(revoked)
        if problem is not None:
            await self.outputs.rejection(
                record.key or b"",
                rejection_for(record, ReasonCode.UNAUTHORIZED_TOKEN_EVENT, problem),
            )
            return
        key = revoked.credential_hash.encode()
        entry = dict(self.state.get(key) or {"tokens": []})
        entry["revoked"] = revoked.reason
        entry["revocation"] = revoked.model_dump(mode="json")
        self.state[key] = entry
        for token_id in entry["tokens"]:
            await self.outputs.token_revoked(token_id, revoked)
        log.info(
            "credential %s revoked: %d token(s) fanned out",
            revoked.credential_hash[:12],
            len(entry["tokens"]),
        )

    async def _index(self, record: SourceRecord) -> None:
        try:
            issued = CredentialToken.model_validate_json(record.value or b"")
        except ValidationError as exc:
            log.error(
                "unreadable credential index record at %s:%s: %s",
                record.partition,
                record.offset,
                exc,
            )
            return
        key = issued.credential_hash.encode()
        entry = dict(self.state.get(key) or {"tokens": []})
        if issued.token_id not in entry["tokens"]:
            entry["tokens"] = [*entry["tokens"], issued.token_id]
            self.state[key] = entry
        if entry.get("revocation") is not None:
            revoked = CredentialRevoked.model_validate(entry["revocation"])
            await self.outputs.token_revoked(issued.token_id, revoked)
        elif entry.get("revoked") is not None:  # written before revocations were signed
            log.warning(
                "credential %s was revoked by an unsigned revocation (before F5): token %r is "
                "not revoked; have the issuer publish the revocation again, signed",
                issued.credential_hash[:12],
                issued.token_id,
            )
