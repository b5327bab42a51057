"""Server-Sent Events of tally changes, from the read model's Redis pub/sub channel.

One subscriber per gateway process reads ``<prefix>:tallies`` and fans each
announcement out to every connected client's bounded queue (a client that
falls ``sse_queue`` events behind is disconnected; its browser reconnects and
resumes). Each event is ``event: tally``, ``data:`` the tally as JSON (with the
submission's genre and epoch when known), and ``id:`` its version as
``<submission_id>:<version>`` — or the bare version on a stream filtered to
one submission.

Resuming (``Last-Event-ID``). A tally is a state whose version only grows, so
a client that missed events needs the *latest* state of what changed, not
every step. On a reconnect the gateway subscribes first, then sends the
current tally of every filtered submission (only if newer than the bare
version in ``Last-Event-ID``), or, unfiltered, of the 500 most recently
updated tallies in Postgres; then live events follow. Clients keep the highest
version per submission, so a repeated or older state changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

from redis.asyncio import Redis

__all__ = ["Broadcaster", "format_event"]

log = logging.getLogger("ringtally.gateway.sse")


def format_event(data: dict, event_id: str | None, event: str = "tally") -> bytes:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode()


class Broadcaster:
    """One Redis subscription, many SSE clients."""

    def __init__(self, redis: Redis, channel: str, queue_size: int) -> None:
        self.redis = redis
        self.channel = channel
        self.queue_size = queue_size
        self._queues: set[asyncio.Queue[dict | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="gateway-sse")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        for q in list(self._queues):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)

    async def _run(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed.set()
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        data = json.loads(message["data"])
                    except (ValueError, TypeError):
                        continue
                    self._fan_out(data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis went away: retry, clients stay
                self._subscribed.clear()
                log.warning("tally subscription lost (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _fan_out(self, data: dict) -> None:
        for q in list(self._queues):
            try:
                q.put_nowait(data)
            except asyncio.QueueFull:  # too slow: end its stream, it reconnects and resumes
                self._queues.discard(q)
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
                q.put_nowait(None)

    async def wait_subscribed(self, timeout: float = 5.0) -> bool:
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout)
            return True
        except TimeoutError:
            return False

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue[dict | None]]:
        q: asyncio.Queue[dict | None] = asyncio.Queue(self.queue_size)
        self._queues.add(q)
        try:
            yield q
        finally:
            self._queues.discard(q)

    @property
    def clients(self) -> int:
        return len(self._queues)
