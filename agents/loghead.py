"""The log key's signing side: a signed tree head per submission change (native/SPEC.md §14.3).

The tally stage hands each submission's new (size, root) here at the end of a
batch; the head goes to the compacted ``<prefix>.heads`` topic. Signing is a
ringcrypto signature over a ring of one member, the log key, under
:data:`~models.log.LOG_HEAD_CONTEXT` (~90 µs), the registrar's pattern with
its own context. The key stays inside Rust; workers load it from
``RINGTALLY_LOG_KEY_FILE`` (default ``<data_dir>/log.key``, created on first
use with ``log.pub`` beside it for verifiers).
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from models.log import LOG_HEAD_CONTEXT, SignedHead, head_signing_bytes
from streams.keyfile import load_service_key
from streams.settings import Settings

__all__ = ["LogSigner", "load_log_signer"]

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

    def sign(self, submission_id: str, tree_size: int, root: bytes) -> SignedHead:
        import ringcrypto

        signed = head_signing_bytes(submission_id=submission_id, tree_size=tree_size, root=root)
        signature = ringcrypto.sign(self._key, self._ring, LOG_HEAD_CONTEXT, signed)
        return SignedHead(
            submission_id=submission_id,
            tree_size=tree_size,
            root_hash=root.hex(),
            log_key=self.public_key.hex(),
            signature=base64.b64encode(signature).decode("ascii"),
        )


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
