"""``python -m connectors.stack up|down|status|logs|fetch`` without the Faust CLI."""

from __future__ import annotations

from .cli import stack

if __name__ == "__main__":
    stack(prog_name="python -m connectors.stack")
