"""ringtally's operator commands, mounted into the ``ringtally`` CLI.

One module per command group: ``keys``, ``rings``, ``submissions``, ``tokens``
(with ``revoke``), ``vote``, ``produce``, ``tally``, ``rejections``.
``COMMANDS`` is what ``streams.cli.register_commands`` adds. Modules import
only click and the models at import time; Kafka, Postgres, Redis and the
crypto core are imported inside the commands, so ``--help`` stays fast.
``python -m connectors.cli`` runs the same commands without the Faust app.
See docs/cli.md.
"""

from __future__ import annotations

import click

from .keys import keys
from .produce import produce
from .rejections import rejections
from .rings import rings
from .submissions import submissions
from .tally import tally
from .tokens import revoke, tokens
from .vote import vote

__all__ = ["COMMANDS"]

COMMANDS: tuple[click.Command, ...] = (
    keys,
    rings,
    submissions,
    tokens,
    revoke,
    vote,
    produce,
    tally,
    rejections,
)
