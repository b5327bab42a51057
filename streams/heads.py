"""Checking a signed tree head (native/SPEC.md §14.3) against the trusted log key.

One home for the check every reader of heads makes: a voter's receipt check
(connectors/sdk/receipt.py), a recount, and the sink, which stores only heads
the log key signed (a forged head with a huge size would freeze ``log_heads``).
"""

from __future__ import annotations

import base64

from models.log import LOG_HEAD_CONTEXT, SignedHead, heads_signing_bytes

from .errors import UsageProblem
from .settings import Settings

__all__ = ["head_problem", "trusted_log_key"]


def trusted_log_key(settings: Settings) -> bytes:
    """``RINGTALLY_LOG_PUBLIC_KEY``, else the ``log.pub`` the workers left in the data dir."""
    if settings.log_public_key:
        return bytes.fromhex(settings.log_public_key)
    path = settings.log_public_key_path
    try:
        text = path.read_text(encoding="ascii").strip()
        if len(text) == 64:
            return bytes.fromhex(text)
    except (OSError, ValueError):
        pass
    raise UsageProblem(
        f"no log public key: RINGTALLY_LOG_PUBLIC_KEY is not set and {path} is not readable",
        fix="set RINGTALLY_LOG_PUBLIC_KEY to the log key the workers sign with (64 hex)",
    )


def head_problem(head: SignedHead, trusted: bytes) -> str | None:
    """Why ``head`` is not signed by the ``trusted`` log key (its batch, through its path to
    the batch root, under the log-head context); None: it is."""
    import ringcrypto

    if head.log_key != trusted.hex():
        return (
            f"head of {head.submission_id} is signed by log key {head.log_key}, "
            f"not the trusted {trusted.hex()}"
        )
    batch_root = head.batch_root()
    if batch_root is None:
        return (
            f"head of {head.submission_id} at size {head.tree_size}: its batch path does not "
            f"fit a batch of {head.batch_size}"
        )
    try:
        ringcrypto.verify(
            ringcrypto.Ring([trusted]),
            LOG_HEAD_CONTEXT,
            heads_signing_bytes(count=head.batch_size, root=batch_root),
            base64.b64decode(head.signature),
        )
    except (ringcrypto.InvalidSignature, ringcrypto.MalformedInput) as exc:
        return f"head of {head.submission_id} at size {head.tree_size}: signature invalid ({exc})"
    return None
