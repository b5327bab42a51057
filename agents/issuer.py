"""The issuer's word: which token and credential events the workers accept (finding F5).

Token lifecycle events share the votes topic with votes, so Kafka ACLs cannot
tell the issuer from a voter. Instead the issuer signs them: a ringtally-v1
ring signature over a ring of ONE member, the issuer's public key, under the
context :data:`~models.encoding.ISSUER_CONTEXT` (native/SPEC.md allows ring
size 1; no new primitive is needed). Workers hold only public keys, several
at once during a key rotation (``RINGTALLY_ISSUER_PUBLIC_KEYS``), never the
issuer's secret key.

Cost: one ``ringcrypto.verify`` of a ring of one takes about 71 µs here
(docs/security.md). With one TokenIssued per vote that would be an eighth of
the event loop's time at the verify stage's rate, so the verify stage checks
issuer signatures with the votes' batch (:meth:`IssuerKeys.batch_item`, in
the checker thread, the GIL released) and only falls back to
:meth:`IssuerKeys.check` when that guess failed or was not made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from models.base import IssuerSigned
from models.encoding import ISSUER_CONTEXT
from streams.errors import UsageProblem
from streams.settings import HEX_PUBLIC_KEY, Settings

__all__ = ["IssuerKeys", "IssuerKeysMissing", "trusted_issuer_keys"]

log = logging.getLogger(__name__)


class IssuerKeysMissing(UsageProblem):
    """A worker knows no issuer public key: it could accept no token, so it does not start."""


def trusted_issuer_keys(settings: Settings) -> list[bytes]:
    """The issuer public keys a worker trusts.

    ``settings.issuer_public_keys`` when set; otherwise the development
    default, the public key the issuing side left in ``<data_dir>/issuer.pub``
    (``ringtally stack up`` creates it). Raises :class:`IssuerKeysMissing`
    (one line, with the fix) when there is neither.
    """
    if settings.issuer_public_keys:
        return settings.issuer_public_key_list
    path = settings.issuer_public_key_path
    fix = (
        "set RINGTALLY_ISSUER_PUBLIC_KEYS to the issuer's public key(s), or on a development "
        "machine run 'ringtally stack up' (it creates the issuer key)"
    )
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise IssuerKeysMissing(f"no issuer public key configured and no {path}", fix=fix) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IssuerKeysMissing(f"cannot read {path}: {exc}", fix=fix) from None
    if not HEX_PUBLIC_KEY.match(text):
        raise IssuerKeysMissing(f"{path} does not hold a 64-hex public key", fix=fix)
    return [bytes.fromhex(text)]


class IssuerKeys:
    """Checks issuer signatures against the trusted public keys.

    With several keys (a rotation) the key that signed is not named in the
    message; the signature's key image (SPEC §6: bytes 1..33, fixed for one
    key and context) is remembered once it verified under a key, so a genuine
    signature costs one check and only a forged one costs one per key.
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
            raise ValueError("at least one issuer public key is needed")
        self._verify = verify or ringcrypto.verify
        self._errors = (ringcrypto.InvalidSignature, ringcrypto.MalformedInput)
        #: key image -> the ring (issuer key) it verified under
        self._known: dict[bytes, Any] = {}

    @property
    def public_keys(self) -> list[bytes]:
        return [ring.public_keys[0] for ring in self._rings]

    def batch_item(self, message: IssuerSigned) -> tuple[Any, bytes, bytes, bytes] | None:
        """``(ring, context, message, signature)`` for ``ringcrypto.verify_batch``, under the
        likeliest key (the one this signature's key image verified under before, else the
        first); None when the message carries no signature."""
        signature = message.issuer_signature_bytes()
        if signature is None:
            return None
        ring = self._known.get(signature[1:33], self._rings[0])
        return (ring, ISSUER_CONTEXT, message.signing_bytes(), signature)

    def verified(self, item: tuple[Any, bytes, bytes, bytes]) -> None:
        """Record that a :meth:`batch_item` verified (so its key is tried first next time)."""
        ring, _, _, signature = item
        self._known.setdefault(signature[1:33], ring)

    def check(self, message: IssuerSigned) -> str | None:
        """None when the issuer signed ``message``; otherwise why not (one line)."""
        signature = message.issuer_signature_bytes()
        if signature is None:
            return f"{_kind(message)} carries no issuer signature"
        signed = message.signing_bytes()
        image = signature[1:33]
        known = self._known.get(image)
        candidates = [known] if known is not None else []
        candidates += [ring for ring in self._rings if ring is not known]
        problem = ""
        for ring in candidates:
            try:
                self._verify(ring, ISSUER_CONTEXT, signed, signature)
            except self._errors as exc:
                problem = str(exc)
                continue
            if known is None:
                self._known[image] = ring
            return None
        return (
            f"{_kind(message)}: issuer signature does not verify under any of the "
            f"{len(self._rings)} trusted issuer key(s) ({problem})"
        )


def _kind(message: object) -> str:
    return getattr(message, "type", type(message).__name__)
