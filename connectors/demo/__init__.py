"""``make demo`` (``python -m connectors.demo``): a review round, end to end, against ground truth.

See ``docs/demo.md``. :func:`run_demo` runs it and returns a :class:`DemoResult`;
:func:`check` is the ground-truth comparison on its own (pure, unit-tested);
:mod:`.simulation` builds the seeded review round and its ground truth (also
the workload of the pipeline and chaos benchmarks).
"""

from .check import CheckLine, Observed, TallyView, Truth, all_match, check
from .run import DemoConfig, DemoResult, render, run_demo

__all__ = [
    "CheckLine",
    "DemoConfig",
    "DemoResult",
    "Observed",
    "TallyView",
    "Truth",
    "all_match",
    "check",
    "render",
    "run_demo",
]
