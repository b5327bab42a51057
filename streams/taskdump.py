"""``kill -USR2 <worker pid>``: log where every asyncio task is waiting, coroutine by coroutine.

mode's ``SIGUSR1`` dump shows each task's outermost frame only; an agent shows
as ``Agent._execute_actor`` whatever it waits on. Following ``cr_await`` (and
``ag_await`` through async generators such as ``Stream.take_events``) down to
the innermost frame names the line a stuck task is parked on. An agent's task
awaits its actor through a coroutine wrapper that hides the coroutine, so each
agent's actors are walked on their own, from the agent function down.
"""

# ruff: noqa: SLF001 - consumer_state reads Faust's and aiokafka's bookkeeping: a diagnostic

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


def _agent_actors(app: Any) -> list[tuple[str, Any]]:
    """(agent name, coroutine or async generator of its function) for each running actor."""
    found = []
    for name, agent in dict(getattr(app, "agents", {}) or {}).items():
        for actor in list(getattr(agent, "_actors", ())):
            it = getattr(actor, "it", None)
            if it is not None:
                found.append((name, it))
    return found


def task_chains(app: Any = None) -> str:
    """One block per task (and per agent actor of ``app``): its name, then each
    coroutine frame from outer to inner."""
    roots = [(f"task {task.get_name()}", task.get_coro()) for task in asyncio.all_tasks()]
    roots += [(f"agent {name}", it) for name, it in _agent_actors(app)]
    lines = []
    for label, awaitable in roots:
        lines.append(f"{label}:")
        for frame in _frames(awaitable):
            code = frame.f_code
            lines.append(f"    {code.co_filename}:{frame.f_lineno} in {code.co_name}")
    return "\n".join(lines)


def consumer_state(app: Any) -> str:
    """Where the worker's consumer stands on each assigned partition: what Faust fetches
    (active, paused, buffered), its read and committed offsets, the end it knows, and
    aiokafka's own pause and position. A partition nobody fetches looks idle to the
    stall watchdogs when its end is unknown; this is how to see it."""
    consumer = getattr(app, "consumer", None)
    if consumer is None:
        return "no consumer"
    try:
        assignment = sorted(consumer.assignment())
    except Exception as exc:  # noqa: BLE001 - a diagnostic: say why instead
        return f"no assignment ({exc!r})"
    active = consumer._active_partitions or set()
    paused = consumer._paused_partitions
    buffered = consumer._buffered_partitions
    client = getattr(getattr(consumer, "_thread", None), "_consumer", None)
    client_paused = set(client.paused()) if client is not None else set()
    lines = [
        f"flow_active={consumer.flow_active} rebalancing={app.rebalancing} "
        f"in_recovery={app.in_recovery} unacked={len(consumer._unacked_messages)}"
    ]
    for tp in assignment:
        position = None
        if client is not None:
            try:
                state = client._subscription.subscription.assignment.state_value(tp)
                position = state.position if state.has_valid_position else None
            except Exception:  # noqa: BLE001, S110 - a diagnostic
                position = "?"
        flags = "".join(
            flag
            for flag, on in (
                ("A", tp in active),
                ("P", tp in paused),
                ("B", tp in buffered),
                ("p", tp in client_paused),
            )
            if on
        )
        lines.append(
            f"  {tp.topic}[{tp.partition}] {flags or '-'} read={consumer._read_offset.get(tp)} "
            f"committed={consumer._committed_offset.get(tp)} "
            f"end={consumer.highwater(tp)} position={position}"
        )
    return "\n".join(lines)


def install(loop: asyncio.AbstractEventLoop, app: Any = None) -> None:
    """Log :func:`task_chains` and :func:`consumer_state` on SIGUSR2."""

    def dump() -> None:
        log.warning("asyncio tasks:\n%s", task_chains(app))
        try:
            state = consumer_state(app)
        except Exception as exc:  # noqa: BLE001 - a diagnostic never stops the worker
            state = f"unavailable ({exc!r})"
        log.warning("consumer (A active, P paused, B buffered, p paused in the client):\n%s", state)

    loop.add_signal_handler(signal.SIGUSR2, dump)
