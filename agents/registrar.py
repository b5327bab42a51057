"""The registrar's word: which control records (ring versions, submissions) count.

Control records change what the workers accept, so the registrar signs them
(DESIGN invariant 10): a ringcrypto ring signature over a ring of ONE member,
the registrar's public key, under the context
:data:`~models.encoding.REGISTRAR_CONTEXT` (native/SPEC.md allows ring size 1;
no new primitive is needed). Workers hold only public keys, several at once
during a key rotation (``RINGTALLY_REGISTRAR_PUBLIC_KEYS``), never the
registrar's secret key. Control records are rare; the control reader checks
a batch's signatures in a thread (:meth:`RegistrarKeys.verify_items`), so a
flood of forged ones never runs a signature check on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from models.base import RegistrarSigned
from models.encoding import REGISTRAR_CONTEXT
from streams.errors import UsageProblem
from streams.settings import HEX_PUBLIC_KEY, Settings

__all__ = ["RegistrarKeys", "RegistrarKeysMissing", "trusted_registrar_keys"]

log = logging.getLogger(__name__)


class RegistrarKeysMissing(UsageProblem):
    """A worker knows no registrar public key: it could accept no ring, so it does not start."""


def trusted_registrar_keys(settings: Settings) -> list[bytes]:
    """The registrar public keys a worker trusts.

    ``settings.registrar_public_keys`` when set; otherwise the development
    default, the public key the registrar side left in
    ``<data_dir>/registrar.pub`` (``ringtally stack up`` creates it). Raises
    :class:`RegistrarKeysMissing` (one line, with the fix) when there is neither.
    """
    if settings.registrar_public_keys:
        return settings.registrar_public_key_list
    path = settings.registrar_public_key_path
    fix = (
        "set RINGTALLY_REGISTRAR_PUBLIC_KEYS to the registrar's public key(s) ('ringtally "
        "keys show REGISTRAR_KEY_FILE' prints it; 'ringtally keys new registrar.key' creates "
        "a registrar key, used through RINGTALLY_REGISTRAR_KEY_FILE), or on a development "
        "machine run 'ringtally stack up' (it creates the registrar key)"
    )
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise RegistrarKeysMissing(
            f"no registrar public key configured and no {path}", fix=fix
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistrarKeysMissing(f"cannot read {path}: {exc}", fix=fix) from None
    if not HEX_PUBLIC_KEY.match(text):
        raise RegistrarKeysMissing(f"{path} does not hold a 64-hex public key", fix=fix)
    return [bytes.fromhex(text)]


class RegistrarKeys:
    """Checks registrar signatures against the trusted public keys.

    With several keys (a rotation) the key that signed is not named in the
    record, so a signature is tried under each trusted key in turn; records
    are rare, so that costs nothing that matters.
    """

    def __init__(
        self,
        public_keys: Iterable[bytes],
        *,
        verify: Callable[[Any, bytes, bytes, bytes], bytes] | None = None,
    ) -> None:
        import ringcrypto

        self._rings = [ringcrypto.Ring([pk]) for pk in public_keys]
        if not self._rings:
            raise ValueError("at least one registrar public key is needed")
        self._verify = verify or ringcrypto.verify
        self._errors = (ringcrypto.InvalidSignature, ringcrypto.MalformedInput)

    @property
    def public_keys(self) -> list[bytes]:
        return [ring.public_keys[0] for ring in self._rings]

    def batch_item(self, record: RegistrarSigned) -> tuple[bytes, bytes] | None:
        """``(signed bytes, signature)`` for :meth:`verify_items`; None when unsigned."""
        signature = record.registrar_signature_bytes()
        if signature is None:
            return None
        return (record.signing_bytes(), signature)

    def verify_items(self, items: Sequence[tuple[bytes, bytes]]) -> list[bool]:
        """Whether each ``(signed bytes, signature)`` verifies under some trusted key
        (blocking: call it in a thread)."""
        return [self._verifies(signed, signature) is None for signed, signature in items]

    def check(self, record: RegistrarSigned) -> str | None:
        """None when the registrar signed ``record``; otherwise why not (one line)."""
        signature = record.registrar_signature_bytes()
        if signature is None:
            return f"{_kind(record)} carries no registrar signature"
        problem = self._verifies(record.signing_bytes(), signature)
        if problem is None:
            return None
        return (
            f"{_kind(record)}: registrar signature does not verify under any of the "
            f"{len(self._rings)} trusted registrar key(s) ({problem})"
        )

    def _verifies(self, signed: bytes, signature: bytes) -> str | None:
        problem = "no key"
        for ring in self._rings:
            try:
                self._verify(ring, REGISTRAR_CONTEXT, signed, signature)
            except self._errors as exc:
                problem = str(exc)
                continue
            return None
        return problem


def _kind(record: object) -> str:
    return getattr(record, "type", type(record).__name__)
