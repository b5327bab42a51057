"""bench_pipeline's log-off worker: the real worker with the submission log switched off.

The issue's budget (the log costs at most 10% of pipeline throughput) needs
the same pipeline without the log, in the same run. Not a product setting: a
worker without the log would give voters no receipts and the witness nothing
to check. This module patches, before the worker starts, the three things
the log adds to the tally stage (native/SPEC.md §14): the leaf hashes, the
RFC 9162 frontier kept in each tally entry, and the signed heads (one
signature per batch, one ``<prefix>.heads`` record per submission per batch).
Everything else (verify, tally, ballots, audit chain, tables) is the
worker's own code. Tallies then carry ``log_size`` 0 and a zero root.
Run as ``python -m bench.nolog_worker worker ...`` (the ``ringtally`` command);
``bench/bench_log.py`` uses :func:`log_off` in process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import agents.pipeline
import agents.tally


class _NoFrontier:
    """Keeps no log: every append is leaf 0, the root is zeros, nothing is stored."""

    __slots__ = ()
    size = 0

    def append(self, leaf_hash: bytes) -> int:
        return 0

    def root(self) -> bytes:
        return bytes(32)

    def to_json(self) -> list:
        return []

    @classmethod
    def from_json(cls, raw: Sequence) -> _NoFrontier:
        return cls()


class _NoSigner:
    """No heads: the tally stage signs and sends none when ``sign`` is None."""

    sign = None


def _no_leaf_hash(kind: object, digest: bytes, reason: str | None = None) -> bytes:
    return b""


#: (module, name, what replaces it while the log is off)
_PATCHES = (
    (agents.tally, "Frontier", _NoFrontier),
    (agents.tally, "log_leaf_hash", _no_leaf_hash),
    (agents.pipeline, "log_signer", _NoSigner),
)


@contextlib.contextmanager
def log_off() -> Iterator[None]:
    """The tally stage without the log inside the block (heads: pass ``sign_heads=None``
    to a TallyKeeper made here; the worker's agent asks ``log_signer``)."""
    saved = [(module, name, getattr(module, name)) for module, name, _ in _PATCHES]
    for module, name, replacement in _PATCHES:
        setattr(module, name, replacement)
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


if __name__ == "__main__":
    from connectors.cli.root import main

    with log_off():
        main()
