"""The issuer's signing side: token and credential events signed with the issuer key (F5).

The workers accept a TokenIssued, a TokenRevoked or a CredentialRevoked only
when the issuer signed it (agents/issuer.py checks; models/encoding.py has the
signed bytes). :class:`Issuer` holds the key as a ``ringcrypto.SecretKey``:
the secret stays inside Rust (zeroized when dropped) and never reaches a
topic, a log line or a repr.

Example::

    issuer = Issuer(load_key_file("issuer.key"))
    issued = issuer.token_issued("tok-1", credential_hash=h, epoch=7)
    producer.send(settings.topic("votes"), b"tok-1", issued.to_json())

On a development machine :func:`load_issuer` creates ``<data_dir>/issuer.key``
(mode 0600, the ``ringtally keys new`` format) on first use, and writes its
public key to ``<data_dir>/issuer.pub``, which workers trust when no
``RINGTALLY_ISSUER_PUBLIC_KEYS`` is set.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from models.control import CredentialRevoked
from models.encoding import ISSUER_CONTEXT, token_revoked_signing_bytes
from models.votes import TokenIssued, TokenRevoked
from streams.settings import Settings

from .keyfile import KeyFileError, create_key_file, load_key_file

__all__ = ["Issuer", "load_issuer", "pin_issuer"]

log = logging.getLogger(__name__)

_Signable = TypeVar("_Signable", TokenIssued, CredentialRevoked)


class Issuer:
    """Signs token lifecycle events and credential revocations with one issuer key."""

    def __init__(self, key: Any) -> None:
        """``key``: the issuer's ``ringcrypto.SecretKey``."""
        import ringcrypto

        self._key = key
        self.public_key: bytes = key.public_key
        self._ring = ringcrypto.Ring([self.public_key])

    def __repr__(self) -> str:
        return f"Issuer(public_key={self.public_key.hex()})"

    def signature(self, signing_bytes: bytes) -> str:
        """Base64 of the issuer's compact signature over ``signing_bytes``."""
        import ringcrypto

        raw = ringcrypto.sign(self._key, self._ring, ISSUER_CONTEXT, signing_bytes)
        return base64.b64encode(raw).decode("ascii")

    def token_issued(
        self,
        token_id: str,
        *,
        credential_hash: str,
        epoch: int,
        issued_at: datetime | None = None,
    ) -> TokenIssued:
        """A signed TokenIssued (``issued_at`` defaults to now, UTC)."""
        unsigned = TokenIssued(  # validated before it is signed
            token_id=token_id,
            credential_hash=credential_hash,
            epoch=epoch,
            issued_at=issued_at or datetime.now(UTC),
        )
        return self._signed(unsigned)

    def token_revoked(self, token_id: str, reason: str) -> TokenRevoked:
        """A signed TokenRevoked of one token (the issuer revokes it directly)."""
        signature = self.signature(token_revoked_signing_bytes(token_id=token_id, reason=reason))
        return TokenRevoked(token_id=token_id, reason=reason, issuer_signature=signature)

    def credential_revoked(self, credential_hash: str, reason: str) -> CredentialRevoked:
        """A signed CredentialRevoked (the workers revoke each of its unspent tokens)."""
        return self._signed(CredentialRevoked(credential_hash=credential_hash, reason=reason))

    def _signed(self, unsigned: _Signable) -> _Signable:
        signature = self.signature(unsigned.signing_bytes())
        return unsigned.model_copy(update={"issuer_signature": signature})


def load_issuer(settings: Settings) -> Issuer:
    """The issuer key of ``settings.issuer_key_path``, created there on first use when it is
    the default path (an explicitly configured file that is missing is an error).

    Also (re)writes ``issuer.pub`` beside it, the public key that workers with
    no ``RINGTALLY_ISSUER_PUBLIC_KEYS`` trust. Raises ``KeyFileError`` (one
    line) for a missing configured file, a group-readable or corrupt one.
    """
    path = settings.issuer_key_path
    if settings.issuer_key_file is None and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            create_key_file(path)  # O_EXCL: of two first uses at once, one creates it
            log.info("created the development issuer key %s", path)
        except KeyFileError:
            if not path.exists():
                raise
    key = load_key_file(path)
    issuer = Issuer(key)
    del key
    _write_public_key(settings.issuer_public_key_path, issuer.public_key)
    trusted = settings.issuer_public_key_list
    if trusted and issuer.public_key not in trusted:
        log.warning(
            "issuer key %s is not among RINGTALLY_ISSUER_PUBLIC_KEYS: workers with these "
            "settings will reject what it signs (unauthorized_token_event)",
            path,
        )
    return issuer


def pin_issuer(settings: Settings, source: Settings | None = None) -> Settings:
    """``settings``, signing with and trusting exactly the issuer key of ``source``.

    For throw-away data dirs (tests, benchmarks, chaos runs): their workers and
    their ``Admin`` then use the development key of ``source`` (default: the
    process's own settings, so ``<project>/.ringtally/issuer.key``) instead of
    each creating a key of its own in its data dir.
    """
    from streams.settings import get_settings

    source = source or get_settings()
    issuer = load_issuer(source)
    return settings.model_copy(
        update={
            "issuer_key_file": source.issuer_key_path,
            "issuer_public_keys": issuer.public_key.hex(),
        }
    )


def _write_public_key(path: Path, public_key: bytes) -> None:
    """``path`` := the public key's hex, atomically, unless it already says so."""
    text = public_key.hex() + "\n"
    with contextlib.suppress(OSError):
        if path.read_text(encoding="ascii") == text:
            return
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="ascii")
    os.replace(temporary, path)
