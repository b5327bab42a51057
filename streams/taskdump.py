"""``kill -USR2 <worker pid>``: log where every asyncio task is waiting, coroutine by coroutine.

mode's ``SIGUSR1`` dump shows each task's outermost frame only; an agent shows
as ``Agent._execute_actor`` whatever it waits on. Following ``cr_await`` (and
``ag_await`` through async generators such as ``Stream.take_events``) down to
the innermost frame names the line a stuck agent is parked on.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType
from typing import Any

__all__ = ["install", "task_chains"]

log = logging.getLogger(__name__)


def _frames(awaitable: Any) -> list[FrameType]:
    frames = []
    seen = 0
    while awaitable is not None and seen < 64:
        seen += 1
        frame = next(
            (
                getattr(awaitable, a)
                for a in ("cr_frame", "ag_frame", "gi_frame")
                if hasattr(awaitable, a)
            ),
            None,
        )
        if frame is not None:
            frames.append(frame)
        awaitable = next(
            (
                getattr(awaitable, a)
                for a in ("cr_await", "ag_await", "gi_yieldfrom")
                if getattr(awaitable, a, None) is not None
            ),
            None,
        )
    return frames


def task_chains() -> str:
    """One block per task: its name, then each coroutine frame from outer to inner."""
    lines = []
    for task in asyncio.all_tasks():
        lines.append(f"task {task.get_name()}:")
        for frame in _frames(task.get_coro()):
            code = frame.f_code
            lines.append(f"    {code.co_filename}:{frame.f_lineno} in {code.co_name}")
    return "\n".join(lines)


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Log :func:`task_chains` on SIGUSR2."""
    loop.add_signal_handler(
        signal.SIGUSR2, lambda: log.warning("asyncio tasks:\n%s", task_chains())
    )
