"""The base of every wire model: strict, closed, immutable, JSON on the wire."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from .fields import UnknownCode, decode_signature

__all__ = ["OutputModel", "RegistrarSigned", "WireModel"]


class WireModel(BaseModel):
    """Strict types (no "1" for 1), unknown fields refused, instances frozen.

    Strictness is what turns a producer's type slip into a ``malformed``
    rejection instead of a silently coerced vote.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    def to_json(self) -> bytes:
        """Compact JSON bytes, the form every ringtally topic carries."""
        return self.model_dump_json().encode("utf-8")


class OutputModel(WireModel):
    """A message ringtally emits for consumers (ballots, tallies, rejections, audit events).

    Readers ignore fields they do not know, so a consumer on an older SDK (or
    an older sink) keeps reading records once a later release adds a field;
    only additive changes are made to these messages. Inputs (votes, control
    records) stay closed: workers decide on them, and an unknown field there is
    a producer's mistake, rejected as ``malformed``.
    """

    model_config = ConfigDict(extra="ignore")

    def to_json(self) -> bytes:
        """As :meth:`WireModel.to_json`; refuses a code this release does not know (a reader
        keeps one, :class:`~models.fields.OpenEnum`, but ringtally emits only its own)."""
        for name in type(self).model_fields:
            if isinstance(getattr(self, name), UnknownCode):
                raise ValueError(
                    f"{type(self).__name__}.{name} = {getattr(self, name)!r} is no code of "
                    "this release: ringtally emits only the codes it knows"
                )
        return super().to_json()


class RegistrarSigned:
    """Mixin of the control records the registrar signs (rings, submissions): each
    declares a ``registrar_signature`` field (``RegistrarSignature | None``; not
    annotated here, so pydantic keeps each model's own field order) and
    ``signing_bytes()``. An unsigned record parses (so that it becomes an
    ``unauthorized_control_event`` rejection, not a ``malformed`` one) and
    changes nothing."""

    def signing_bytes(self) -> bytes:
        raise NotImplementedError

    def registrar_signature_bytes(self) -> bytes | None:
        """The decoded registrar signature (already checked to be canonical base64), if any."""
        signature: str | None = getattr(self, "registrar_signature", None)
        return None if signature is None else decode_signature(signature)
