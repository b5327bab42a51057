"""The base of every wire model: strict, closed, immutable, JSON on the wire."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["WireModel"]


class WireModel(BaseModel):
    """Strict types (no "1" for 1), unknown fields refused, instances frozen.

    Strictness is what turns a producer's type slip into a ``malformed``
    rejection instead of a silently coerced vote.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    def to_json(self) -> bytes:
        """Compact JSON bytes, the form every ringtally topic carries."""
        return self.model_dump_json().encode("utf-8")
