"""The log key's signing side: a signed tree head per submission change (native/SPEC.md §14.3).

The tally stage hands every submission's new (size, root) of a batch here at
once; the heads go to the compacted ``<prefix>.heads`` topic. One ringcrypto
signature (a ring of one member, the log key, under
:data:`~models.log.LOG_HEAD_CONTEXT`: the registrar's pattern with its own
context; ~90 µs) covers the batch's heads through the RFC 9162 root of their
messages, and each head carries its path to that root. The key stays inside
Rust; workers load it from ``RINGTALLY_LOG_KEY_FILE`` (default
``<data_dir>/log.key``, created on first use with ``log.pub`` beside it for
verifiers).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import Any

from models.log import LOG_HEAD_CONTEXT, SignedHead, head_message, heads_signing_bytes
from models.merkle import inclusion_proofs, leaf_hash
from streams.keyfile import load_service_key
from streams.settings import Settings

__all__ = ["HeadItem", "LogSigner", "load_log_signer"]

#: What a head is signed from: (submission_id, tree_size, root), and a final head's
#: closing time last (None, or absent: not final).
HeadItem = tuple[str, int, bytes] | tuple[str, int, bytes, int | None]

log = logging.getLogger(__name__)


class LogSigner:
    """Signs tree heads with one log key."""

    def __init__(self, key: Any) -> None:
        """``key``: the log's ``ringcrypto.SecretKey``."""
        import ringcrypto

        self._key = key
        self.public_key: bytes = key.public_key
        self._ring = ringcrypto.Ring([self.public_key])

    def __repr__(self) -> str:
        return f"LogSigner(public_key={self.public_key.hex()})"

    def sign(self, heads: Sequence[HeadItem]) -> list[SignedHead]:
        """Signed heads for ``(submission_id, tree_size, root[, closed_ms])``, with ONE
        signature over the RFC 9162 root of their messages (native/SPEC.md §14.3); a
        ``closed_ms`` that is not None makes that head the submission's final one."""
        import ringcrypto

        if not heads:
            return []
        items = [(s, n, r, *rest, None)[:4] for s, n, r, *rest in heads]
        leaves = [
            leaf_hash(head_message(submission_id=s, tree_size=n, root=r, closed_ms=c))
            for s, n, r, c in items
        ]
        batch_root, paths = inclusion_proofs(leaves)
        signed = heads_signing_bytes(count=len(heads), root=batch_root)
        signature = base64.b64encode(
            ringcrypto.sign(self._key, self._ring, LOG_HEAD_CONTEXT, signed)
        ).decode("ascii")
        log_key = self.public_key.hex()
        # model_construct: every value is made right here (a batch's heads share one
        # signature, validating it per head would cost as much as the rest together)
        return [
            SignedHead.model_construct(
                submission_id=submission_id,
                tree_size=tree_size,
                root_hash=root.hex(),
                log_key=log_key,
                batch_size=len(heads),
                batch_index=index,
                batch_path=[p.hex() for p in path],
                signature=signature,
                closed_ms=closed_ms,
            )
            for index, ((submission_id, tree_size, root, closed_ms), path) in enumerate(
                zip(items, paths, strict=True)
            )
        ]


def load_log_signer(settings: Settings) -> LogSigner:
    """The log key of ``settings.log_key_path`` (created there on first use when it is the
    default path); raises ``KeyFileError`` (one line) when it cannot be used."""
    key = load_service_key(
        settings.log_key_path, configured=settings.log_key_file is not None, what="log"
    )
    signer = LogSigner(key)
    del key
    log.info("signing log heads with key %s", signer.public_key.hex())
    return signer
