"""The SDK's errors. All are :class:`streams.errors.RingtallyError`, so the ``ringtally``
CLI prints them as one line (with the fix) and exits with their code."""

from __future__ import annotations

from streams.errors import RingtallyError, UsageProblem

__all__ = ["NoTrustedRegistrar", "NotFound", "OutcomeTimeout", "SlotUsed", "SlotsExhausted"]


class NotFound(UsageProblem):
    """A ring or submission the caller named is not registered (exit code 2)."""


class NoTrustedRegistrar(UsageProblem):
    """No registrar public key is known, so ring versions cannot be checked.

    Signing against a ring nobody checked would let whoever can write the
    rings topic pick the anonymity set (say, the victim's key alone) and learn
    who signs; the SDK and the gateway refuse instead (fail closed).
    """


class SlotUsed(UsageProblem):
    """This key already used the slot in the epoch: its tag is spent (or about to be), so a
    vote on it would be rejected ``token_spent``. Raised before anything is published."""


class SlotsExhausted(UsageProblem):
    """Every slot of the epoch is used: the ring allows no more votes for this key.
    Raised before anything is published."""


class OutcomeTimeout(RingtallyError):
    """No ballot or rejection for a published vote before the deadline.

    The vote *was* published; a worker may be down or behind. Exit code 3 in
    the CLI, so scripts can tell it from a rejection (1) and bad usage (2).
    """

    exit_code = 3
