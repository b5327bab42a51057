"""``python -m connectors.cli``: the ``ringtally`` command (when the script is not on PATH)."""

from .root import main

main()
