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
Run as ``python -m bench.nolog_worker worker ...`` (the ``ringtally`` command).
"""

from __future__ import annotations

from collections.abc import Sequence

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


agents.tally.Frontier = _NoFrontier  # type: ignore[assignment, misc]
agents.tally.log_leaf_hash = lambda kind, digest, reason=None: b""  # type: ignore[assignment]
agents.pipeline.log_signer = lambda: _NoSigner()  # type: ignore[assignment]

if __name__ == "__main__":
    from connectors.cli.root import main

    main()
