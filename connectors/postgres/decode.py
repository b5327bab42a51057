"""Kafka record -> output model, or the reason it cannot be one.

The sink trusts nothing on its input topics: a value that is not JSON, or is
JSON but not a valid model (strict pydantic, the same models the agents
produce with), becomes a :class:`DeadLetter` instead of an exception, so one
bad record never stops a partition. Whether it was bad JSON or a bad shape is
read from pydantic's structured error type, not its message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from models import AuditEvent, Ballot, Rejection, Tally
from models.log import SignedHead

__all__ = ["KINDS", "DeadLetter", "Decoded", "Record", "decode"]

#: Short topic name -> the model its values hold.
KINDS: dict[str, type[BaseModel]] = {
    "ballots": Ballot,
    "tallies": Tally,
    "rejections": Rejection,
    "audit": AuditEvent,
    "heads": SignedHead,
}


@dataclass(frozen=True, slots=True)
class Record:
    """The parts of a consumed Kafka record the sink keeps."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record the sink will not store as a row, with a machine-readable reason."""

    record: Record
    #: ``empty_value``, ``bad_json``, ``invalid_message``, ``audit_fork``, ``ballot_conflict``,
    #: ``log_conflict``
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Decoded:
    record: Record
    model: Any


def decode(kind: str, record: Record) -> Union[Decoded, DeadLetter]:  # noqa: UP007
    """Parse ``record`` as the model of topic ``kind``."""
    model = KINDS[kind]
    if record.value is None:
        return DeadLetter(record, "empty_value", "the record has no value (a tombstone?)")
    try:
        return Decoded(record, model.model_validate_json(record.value))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        reason = "bad_json" if errors and errors[0]["type"] == "json_invalid" else "invalid_message"
        first = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errors[:3]
        )
        return DeadLetter(record, reason, f"not a valid {model.__name__}: {first}"[:2000])
