"""``python -m streams`` is the ``ringtally`` command (used when the script is not on PATH)."""

from .cli import main

main()
