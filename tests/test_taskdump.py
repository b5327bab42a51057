"""kill -USR2's task dump (streams.taskdump) reaches inside tasks and agent actors."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from streams.taskdump import task_chains


async def _parked_deep(event: asyncio.Event) -> None:
    await event.wait()


async def _agent_function(event: asyncio.Event) -> None:
    await _parked_deep(event)


def test_the_dump_names_the_innermost_frame_of_tasks_and_of_agent_actors():
    async def scenario() -> str:
        event = asyncio.Event()
        task = asyncio.create_task(_agent_function(event), name="parked-task")
        # An agent's actor: Faust keeps the agent function's coroutine as ``it``.
        actor_coro = _agent_function(event)
        actor_task = asyncio.ensure_future(actor_coro)
        await asyncio.sleep(0)
        app = SimpleNamespace(
            agents={
                "agents.pipeline.verify": SimpleNamespace(_actors=[SimpleNamespace(it=actor_coro)])
            }
        )
        dump = task_chains(app)
        event.set()
        await asyncio.gather(task, actor_task)
        return dump

    dump = asyncio.run(scenario())
    parked = dump.split("task parked-task:\n", 1)[1].split("\n", 3)[:3]
    assert "in _agent_function" in parked[0] and "in _parked_deep" in parked[1]
    agent = dump.split("agent agents.pipeline.verify:\n", 1)[1].splitlines()
    assert "in _agent_function" in agent[0] and "in _parked_deep" in agent[1]
