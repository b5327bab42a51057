"""JSON Schema of every wire message, exported into ``models/schemas/``.

``python -m models.schema`` rewrites the files; ``--check`` exits 1 when a
model changed without its exported schema (the test suite runs the check).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import TypeAdapter

from .audit import AuditEvent
from .control import Ring, Submission, SubmissionClosed
from .log import Receipt, SignedHead, WitnessCosignature
from .outputs import Ballot, Rejection, Tally
from .votes import VotesMessage

__all__ = ["SCHEMA_DIR", "render_schemas"]

SCHEMA_DIR = Path(__file__).with_name("schemas")

_EXPORTS = {
    "votes": TypeAdapter(VotesMessage),
    "ring": TypeAdapter(Ring),
    "submission": TypeAdapter(Submission),
    "submission_closed": TypeAdapter(SubmissionClosed),
    "ballot": TypeAdapter(Ballot),
    "rejection": TypeAdapter(Rejection),
    "tally": TypeAdapter(Tally),
    "audit_event": TypeAdapter(AuditEvent),
    "log_head": TypeAdapter(SignedHead),
    "receipt": TypeAdapter(Receipt),
    "witness_cosignature": TypeAdapter(WitnessCosignature),
}


def render_schemas() -> dict[str, str]:
    """File name -> pretty JSON Schema text, for every exported message."""
    return {
        f"{name}.schema.json": json.dumps(adapter.json_schema(), indent=2, sort_keys=True) + "\n"
        for name, adapter in _EXPORTS.items()
    }


def main(argv: list[str]) -> int:
    rendered = render_schemas()
    if "--check" in argv:
        stale = [
            name
            for name, text in rendered.items()
            if not (SCHEMA_DIR / name).exists() or (SCHEMA_DIR / name).read_text() != text
        ]
        if stale:
            print(f"schemas out of date: {', '.join(stale)}; run: python -m models.schema")
            return 1
        print(f"{len(rendered)} schemas up to date")
        return 0
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, text in rendered.items():
        (SCHEMA_DIR / name).write_text(text)
    print(f"wrote {len(rendered)} schemas to {SCHEMA_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
