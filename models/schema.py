"""JSON Schema of every wire message: the contract producers and consumers build on.

Each schema names its dialect (``$schema``, JSON Schema 2020-12) and a stable
``$id``; descriptions say only what a producer or consumer needs (a model's
docstring and field descriptions are its schema's text, so internal notes
belong in comments). The checked-in copies live in ``models/schemas/``.

``python -m models.schema --out DIR`` writes them to DIR; without ``--out`` it
rewrites ``models/schemas/`` of a source checkout, and refuses (exit 2) when
``models`` is an installed package: an install is never written into.
``--check`` exits 1 when a model changed without its exported schema, or a
schema file has no model any more (the test suite runs the check).
"""

from __future__ import annotations

import argparse
import json
import sys
import sysconfig
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from .audit import AuditEvent
from .control import Ring, Submission, SubmissionClosed
from .log import Receipt, SignedHead, WitnessCosignature
from .outputs import Ballot, Rejection, Tally
from .votes import VotesMessage

__all__ = ["SCHEMA_DIALECT", "SCHEMA_DIR", "schema_id", "render_schemas", "schema_documents"]

SCHEMA_DIR = Path(__file__).with_name("schemas")
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: ``$id`` prefix. An id stays as long as the message's changes are additive (new optional
#: fields, which readers ignore); a breaking change would get a new id.
_ID_PREFIX = "urn:ringtally:schema:v2:"
_SUFFIX = ".schema.json"

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


def schema_id(name: str) -> str:
    """The stable ``$id`` of the schema exported as ``name`` (e.g. ``votes``)."""
    return f"{_ID_PREFIX}{name}"


def schema_documents() -> dict[str, dict[str, Any]]:
    """Export name -> JSON Schema document (with ``$schema`` and ``$id``)."""
    return {
        name: {"$schema": SCHEMA_DIALECT, "$id": schema_id(name), **adapter.json_schema()}
        for name, adapter in _EXPORTS.items()
    }


def render_schemas() -> dict[str, str]:
    """File name -> pretty JSON Schema text, for every exported message."""
    return {
        f"{name}{_SUFFIX}": json.dumps(document, indent=2, sort_keys=True) + "\n"
        for name, document in schema_documents().items()
    }


def _installed(path: Path) -> bool:
    """Whether ``path`` lies in an installed package (site-packages, dist-packages)."""
    resolved = path.resolve()
    roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    if any(resolved.is_relative_to(Path(root).resolve()) for root in roots):
        return True
    return any(part in ("site-packages", "dist-packages") for part in resolved.parts)


def _stale(directory: Path, rendered: dict[str, str]) -> list[str]:
    """Files in ``directory`` that differ from ``rendered``, or that no model makes."""
    existing = {p.name for p in directory.glob(f"*{_SUFFIX}")} if directory.is_dir() else set()
    differ = [
        n for n, t in rendered.items() if n not in existing or (directory / n).read_text() != t
    ]
    orphans = [f"{n} (no model)" for n in sorted(existing - rendered.keys())]
    return differ + orphans


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.schema",
        description="Export the JSON Schema of every ringtally message.",
    )
    parser.add_argument("--out", type=Path, help="directory to write into (created if missing)")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the files differ from the models"
    )
    args = parser.parse_args(argv)
    rendered = render_schemas()
    target: Path = args.out if args.out is not None else SCHEMA_DIR
    if args.check:
        stale = _stale(target, rendered)
        if stale:
            again = "python -m models.schema" + (f" --out {args.out}" if args.out else "")
            print(f"schemas out of date in {target}: {', '.join(stale)}; run: {again}")
            return 1
        print(f"{len(rendered)} schemas up to date in {target}")
        return 0
    if args.out is None and _installed(SCHEMA_DIR):
        print(
            f"models is an installed package ({SCHEMA_DIR.parent}); not writing into it: "
            "pass --out DIR",
            file=sys.stderr,
        )
        return 2
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name, text in rendered.items():
            (target / name).write_text(text)
    except OSError as exc:
        print(f"cannot write schemas to {target}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(rendered)} schemas to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
