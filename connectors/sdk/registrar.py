"""The registrar's signing side: ring versions and submissions signed with the registrar key.

The workers count a control record (a ring version, a submission) only when a
trusted registrar key signed it (``agents/registrar.py`` checks;
``models/encoding.py`` has the signed bytes): a ringcrypto signature over a
ring of one member, the registrar's key, under ``REGISTRAR_CONTEXT``.
:class:`Registrar` holds the key as a ``ringcrypto.SecretKey``: the secret
stays inside Rust (zeroized when dropped) and never reaches a topic, a log
line or a repr.

Example::

    registrar = Registrar(load_key_file("registrar.key"))
    ring = registrar.sign_ring(Ring(ring_id="r", version=1, ...))
    producer.send(settings.topic("rings"), b"r", ring.to_json())

(:class:`~connectors.sdk.Admin` does this and picks the version.) On a
development machine :func:`load_registrar` creates ``<data_dir>/registrar.key``
(mode 0600, the ``ringtally keys new`` format) on first use, and writes its
public key to ``<data_dir>/registrar.pub``, which workers trust when no
``RINGTALLY_REGISTRAR_PUBLIC_KEYS`` is set.
"""

from __future__ import annotations

import base64
import logging
from typing import Any, TypeVar

from models.control import Ring, Submission, SubmissionClosed
from models.encoding import REGISTRAR_CONTEXT
from streams.keyfile import load_service_key
from streams.settings import Settings

__all__ = ["Registrar", "load_registrar", "pin_registrar"]

log = logging.getLogger(__name__)

_Signable = TypeVar("_Signable", Ring, Submission, SubmissionClosed)


class Registrar:
    """Signs control records (ring versions, submissions) with one registrar key."""

    def __init__(self, key: Any) -> None:
        """``key``: the registrar's ``ringcrypto.SecretKey``."""
        import ringcrypto

        self._key = key
        self.public_key: bytes = key.public_key
        self._ring = ringcrypto.Ring([self.public_key])

    @classmethod
    def generate(cls) -> Registrar:
        """A registrar with a fresh random key (tests, throw-away stacks)."""
        import ringcrypto

        return cls(ringcrypto.SecretKey.generate())

    def __repr__(self) -> str:
        return f"Registrar(public_key={self.public_key.hex()})"

    def signature(self, signing_bytes: bytes) -> str:
        """Base64 of the registrar's compact signature over ``signing_bytes``."""
        import ringcrypto

        raw = ringcrypto.sign(self._key, self._ring, REGISTRAR_CONTEXT, signing_bytes)
        return base64.b64encode(raw).decode("ascii")

    def sign_ring(self, ring: Ring) -> Ring:
        """A copy of the ring version carrying the registrar's signature."""
        return self._signed(ring)

    def sign_submission(self, submission: Submission) -> Submission:
        """A copy of the submission carrying the registrar's signature."""
        return self._signed(submission)

    def sign_closing(self, closing: SubmissionClosed) -> SubmissionClosed:
        """A copy of the submission's closing carrying the registrar's signature."""
        return self._signed(closing)

    def _signed(self, unsigned: _Signable) -> _Signable:
        signature = self.signature(unsigned.signing_bytes())
        return unsigned.model_copy(update={"registrar_signature": signature})


def load_registrar(settings: Settings) -> Registrar:
    """The registrar key of ``settings.registrar_key_path``, created there on first use when
    it is the default path (an explicitly configured file that is missing is an error).

    Also (re)writes ``registrar.pub`` beside it, the public key that workers
    with no ``RINGTALLY_REGISTRAR_PUBLIC_KEYS`` trust. Raises ``KeyFileError``
    (one line) for a missing configured file, a group-readable or corrupt one.
    """
    path = settings.registrar_key_path
    key = load_service_key(
        path, configured=settings.registrar_key_file is not None, what="registrar"
    )
    registrar = Registrar(key)
    del key
    trusted = settings.registrar_public_key_list
    if trusted and registrar.public_key not in trusted:
        log.warning(
            "registrar key %s is not among RINGTALLY_REGISTRAR_PUBLIC_KEYS: workers with these "
            "settings will reject what it signs (unauthorized_control_event)",
            path,
        )
    return registrar


def pin_registrar(settings: Settings, source: Settings | None = None) -> Settings:
    """``settings``, signing with and trusting exactly the registrar key of ``source``.

    For throw-away data dirs (tests, benchmarks, chaos runs): their workers and
    their ``Admin`` then use the development key of ``source`` (default: the
    process's own settings, so ``<project>/.ringtally/registrar.key``) instead
    of each creating a key of its own in its data dir.
    """
    from streams.settings import get_settings

    source = source or get_settings()
    registrar = load_registrar(source)
    return settings.model_copy(
        update={
            "registrar_key_file": source.registrar_key_path,
            "registrar_public_keys": registrar.public_key.hex(),
        }
    )
