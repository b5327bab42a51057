"""Replays: rebuild state from the input topics into a shadow and compare it with live.

``ringtally replay`` (:mod:`.cli`) runs :func:`run_replay`; ``ringtally
reset-offsets`` wraps Kafka's own ``kafka-consumer-groups`` tool
(:func:`reset_group_offsets`). See ``docs/replay.md``.
"""

from .compare import Comparison, Difference, compare_schemas
from .offsets import committed_offsets, end_offsets, offsets_for_time, reset_group_offsets
from .run import ReplayConfig, ReplayResult, drop_shadow, render, run_replay, shadow_settings

__all__ = [
    "Comparison",
    "Difference",
    "ReplayConfig",
    "ReplayResult",
    "committed_offsets",
    "compare_schemas",
    "drop_shadow",
    "end_offsets",
    "offsets_for_time",
    "render",
    "reset_group_offsets",
    "run_replay",
    "shadow_settings",
]
