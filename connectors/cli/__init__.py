"""``ringtally``: every command, one entry point (:func:`main`, in :mod:`.root`).

One module per command group, named after it: ``keys``, ``rings``,
``submissions``, ``vote``, ``produce``,
``tally``, ``rejections``, ``stack``, ``sink`` (with ``db``, ``audit``,
``readmodel``), ``replay`` (with ``reset-offsets``); ``root`` is the group,
its one error handler and Faust's ``worker``. Modules import only click and
the models at import time; Kafka, Postgres, Redis, the crypto core and Faust
are imported inside the commands, so ``--help`` stays fast.
``python -m connectors.cli`` is the same command. See docs/cli.md.
"""

from .root import COMMANDS, cli, main

__all__ = ["COMMANDS", "cli", "main"]
