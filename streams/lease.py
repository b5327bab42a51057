"""The worker's ownership lease: no write leaves once the group may have given its partitions away.

Issue 16 item 2 (docs/reliability.md, "Zombie workers"). A worker paused past
its session timeout (SIGSTOP, a frozen VM), or cut off from its group
coordinator while it still reaches the partition leaders, keeps writing
outputs and changelog records until a heartbeat tells it it was evicted. The
changelog readers' epoch check (:mod:`streams.fence`) is the *fencing token*
of the lease-and-fencing-token pattern; this is the writer's side, the
*lease*.

The lease: the worker holds its partitions of generation ``g`` until
:func:`lease_expiry`, ``min(t_ok + rebalance_timeout, t_seen + session_timeout)
- margin``, on this process's CLOCK_BOOTTIME (as :mod:`streams.pause` uses):

* ``t_ok``: when it *sent* the last request of ``g`` the coordinator answered
  without error, a Heartbeat or the JoinGroup whose answer made ``g``. The
  coordinator handled it (in state Stable or CompletingRebalance of ``g``)
  after ``t_ok``, so a rebalance that could end ``g`` began later; one waits at
  least ``rebalance_timeout`` for a member to rejoin before it goes on without it.
* ``t_seen``: when it sent the last heartbeat of ``g`` answered without error
  or with RebalanceInProgress. Both answers mean the coordinator received it,
  found the member in ``g`` and reset its session clock (Kafka's classic group
  coordinator: ``rescheduleClassicGroupMemberHeartbeat`` in PreparingRebalance,
  CompletingRebalance and Stable); it evicts no sooner than ``session_timeout``
  after that receipt, which is after ``t_seen``.

So RebalanceInProgress renews the session half only: during a rebalance the
lease runs until the rebalance's earliest end, never past it. SyncGroup
renews nothing: the coordinator does not reset the session clock for it (it
did at the join's completion, after the JoinGroup was sent).

Every write checks the lease before it is handed to the Kafka client
(:meth:`Lease.hold`: ``RingtallyProducer.send_record``, the tables' hand-over)
and again before the client's sender puts a produce request on the wire
(:func:`guard_sender`: records appended before a pause, sent after it). An
expired lease waits for the next successful heartbeat of the same
generation, at most :attr:`Lease.wait_limit`; a changed or reset generation,
or no renewal in time, is :class:`~streams.fence.OwnershipLost` (the worker
drops the write and stops, exit 75).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from aiokafka.errors import NoError, RebalanceInProgressError

from . import metrics
from .fence import OwnershipLost
from .pause import boottime

__all__ = [
    "CLOCK_RATE_BOUND",
    "MIN_MARGIN",
    "WAIT_LIMIT_FLOOR",
    "Lease",
    "group_loaded",
    "guard_sender",
    "heartbeat_generation",
    "lease_expiry",
    "lease_margin",
    "observe_group",
]

log = logging.getLogger(__name__)

#: Seconds always taken off the lease: the path from the last check to the broker's
#: log (the produce request's transit and queue) and a scheduling slip around the
#: check. A floor, not a measurement: docs/reliability.md argues it.
MIN_MARGIN = 1.0
#: The most this host's clock and the coordinator's may differ in rate: NTP slews a
#: clock by at most 500 ppm; both may be off, in opposite directions.
CLOCK_RATE_BOUND = 2 * 500e-6

_NO_ERROR = NoError.errno
_REBALANCE_IN_PROGRESS = RebalanceInProgressError.errno

#: Seconds a write waits at least for its lease to be renewed (:attr:`Lease.wait_limit`).
WAIT_LIMIT_FLOOR = 300.0

#: How often a write waiting on the lease looks again (the renewal and the
#: generation are set by the consumer's own thread).
_POLL = 0.02


def lease_margin(session_timeout: float, rebalance_timeout: float) -> float:
    """What the lease leaves before the earliest eviction: :data:`MIN_MARGIN`, plus the
    clocks' rate difference over the longest span it counts (:data:`CLOCK_RATE_BOUND`)."""
    return MIN_MARGIN + CLOCK_RATE_BOUND * max(session_timeout, rebalance_timeout)


def lease_expiry(
    confirmed: float, seen: float, session_timeout: float, rebalance_timeout: float
) -> float:
    """When the lease expires: ``confirmed`` the send time of the last request of the
    generation answered without error, ``seen`` of the last heartbeat answered without
    error or RebalanceInProgress (same clock; module doc)."""
    end = min(confirmed + rebalance_timeout, seen + session_timeout)
    return end - lease_margin(session_timeout, rebalance_timeout)


class Lease:
    """This worker's lease on its group generation's partitions.

    :meth:`renew` is called from the consumer's thread (Faust runs the Kafka consumer on
    its own event loop), :meth:`holds` and :meth:`hold` from the writers' loop: the
    state is one tuple, replaced whole. Not armed (no group consumer yet: a tool, a
    test of one table) it holds always.
    """

    def __init__(
        self,
        session_timeout: float,
        rebalance_timeout: float,
        *,
        clock: Callable[[], float] = boottime,
    ) -> None:
        self.session_timeout = session_timeout
        self.rebalance_timeout = rebalance_timeout
        #: The longest a write waits for a renewal in an unchanged generation. Not the
        #: session timeout: with its coordinator down (a broker restart, a whole
        #: cluster's: 30-100 s here) a member hears nothing, yet keeps its generation,
        #: because a coordinator that loads a group gives every member a new session;
        #: its next answer renews the lease, or resets the generation (evicted: lost at
        #: once). Waiting is safe, nothing leaves meanwhile; this bound only stops a
        #: worker whose consumer thread no longer talks to its group at all.
        self.wait_limit = max(WAIT_LIMIT_FLOOR, rebalance_timeout, 5 * session_timeout)
        self.clock = clock
        self._generation_of: Callable[[], int | None] | None = None
        #: (generation, t_ok, t_seen, expiry), times on ``clock``; replaced whole.
        self._state: tuple[int, float, float, float] = (-1, -math.inf, -math.inf, -math.inf)
        self._lock = threading.Lock()

    def arm(self, generation_of: Callable[[], int | None]) -> None:
        """From now on writes need the lease; ``generation_of`` is the group generation as
        the consumer knows it (-1 once told it was evicted, or before its first join)."""
        self._generation_of = generation_of

    @property
    def armed(self) -> bool:
        return self._generation_of is not None

    def renew(
        self, generation: int, sent: float, *, rebalancing: bool = False, joined: bool = False
    ) -> None:
        """The coordinator answered a request of ``generation`` sent at ``sent``: without
        error, or (``rebalancing``) a heartbeat with RebalanceInProgress, which renews
        only the session half of the lease (module doc). ``joined``: a JoinGroup's answer,
        which makes the generation even if it is lower than the last (a group deleted, or
        expired while empty, starts again at 1; a lower one is otherwise a late answer)."""
        with self._lock:
            held, confirmed, seen, _ = self._state
            if joined and generation < held:
                held, confirmed, seen = generation, -math.inf, -math.inf
            if generation < held or (generation > held and rebalancing):
                return  # a late answer, or a rebalance in a generation never confirmed
            if generation > held:
                confirmed = seen = -math.inf
            if not rebalancing:
                confirmed = max(confirmed, sent)
            seen = max(seen, sent)
            expiry = lease_expiry(confirmed, seen, self.session_timeout, self.rebalance_timeout)
            self._state = (generation, confirmed, seen, expiry)

    def generation(self) -> int | None:
        """The consumer's generation now; None when not armed."""
        return None if self._generation_of is None else self._generation_of()

    def expires(self, generation: int) -> float | None:
        """When the lease of ``generation`` expires; None if it was never renewed in it."""
        held, _, _, until = self._state
        return until if held == generation else None

    def holds(self, generation: int | None = None) -> bool:
        """Whether this worker holds the lease now, in ``generation`` (default: the one
        the consumer is in). Always true when not armed."""
        if self._generation_of is None:
            return True
        now = self._generation_of()
        wanted = now if generation is None else generation
        held, _, _, until = self._state
        return now == wanted == held and self.clock() < until

    async def hold(self, generation: int | None = None, what: str = "write") -> None:
        """Return once this worker holds the lease in ``generation`` (default: the one the
        consumer is in now); raise :class:`OwnershipLost` if that generation is over
        (changed, reset, or not renewed within :attr:`wait_limit`)."""
        if self.holds(generation):
            return
        now = self.generation()
        wanted = now if generation is None else generation
        if wanted is None or now is None:  # not armed, or the client stopped
            return
        if now != wanted or wanted < 1:  # evicted (-1), or a batch of an older generation
            raise self._lost(what, wanted, f"the worker's generation is now {now}")
        metrics.LEASE_WAITS.inc()
        start = self.clock()
        log.warning(
            "ownership lease of group generation %d expired (no heartbeat answered for "
            "it in time): holding a %s until one is, at most %.1f s",
            wanted,
            what,
            self.wait_limit,
        )
        while True:
            now = self.generation()
            if now != wanted or wanted < 1:
                raise self._lost(what, wanted, f"the worker's generation is now {now}")
            if self.holds(wanted):
                log.info("ownership lease renewed after %.2f s", self.clock() - start)
                return
            if self.clock() - start >= self.wait_limit:
                raise self._lost(what, wanted, f"not renewed within {self.wait_limit:.1f} s")
            await asyncio.sleep(_POLL)

    def _lost(self, what: str, generation: int, why: str) -> OwnershipLost:
        metrics.LEASE_LOST.inc()
        return OwnershipLost(
            f"ownership lease of group generation {generation} lost ({why}): this worker "
            f"may no longer own its partitions; a {what} was dropped"
        )


def observe_group(client: Any, lease: Lease) -> None:
    """Renew ``lease`` from the group requests a consumer's Kafka client (aiokafka's
    ``AIOKafkaClient``, this one instance) sends: Heartbeat and JoinGroup answered
    without error. Every group request goes through ``client.send``; the time is
    taken before it, so it is never later than the request left.

    A coordinator answers a Heartbeat with no error *blindly* while it loads the
    group (after a coordinator move: Kafka's GroupCoordinator.scala ``handleHeartbeat``
    and GroupCoordinatorService ``heartbeat``, "the group is still loading, so
    respond just blindly"): it checks neither member nor generation, so an evicted
    worker would be told it still is one. Heartbeats to a coordinator renew the lease
    only once it is known to have the group loaded: it answered this member's
    JoinGroup, or a DescribeGroups (never answered blindly) sent before the heartbeat.
    """
    from aiokafka.protocol.group import HeartbeatRequest, JoinGroupRequest

    send = client.send
    #: The coordinator node known to have the group loaded (its answers are real).
    loaded: list[Any] = [None]

    async def send_observed(node_id: Any, request: Any, **kwargs: Any) -> Any:
        if not isinstance(request, HeartbeatRequest | JoinGroupRequest):
            return await send(node_id, request, **kwargs)
        heartbeat = isinstance(request, HeartbeatRequest)
        if heartbeat and loaded[0] != node_id:
            group_id = getattr(request, "_group", None)  # aiokafka keeps it unbuilt
            if await group_loaded(send, node_id, group_id, **kwargs):
                loaded[0] = node_id
        sent = lease.clock()
        try:
            response = await send(node_id, request, **kwargs)
        except Exception:
            loaded[0] = None  # the coordinator may move: ask the next one
            raise
        if response.error_code not in (_NO_ERROR, _REBALANCE_IN_PROGRESS):
            loaded[0] = None
        elif not heartbeat:
            if response.error_code == _NO_ERROR:  # a join: the group is loaded there
                loaded[0] = node_id
                lease.renew(response.generation_id, sent, joined=True)
        elif loaded[0] == node_id:
            generation = heartbeat_generation(request)
            if generation is not None:
                rebalancing = response.error_code == _REBALANCE_IN_PROGRESS
                lease.renew(generation, sent, rebalancing=rebalancing)
        return response

    client.send = send_observed


async def group_loaded(send: Any, node_id: Any, group_id: str, **kwargs: Any) -> bool:
    """Whether coordinator ``node_id`` has group ``group_id`` loaded, asked with
    ``send`` (a client's): DescribeGroups, which a loading coordinator answers
    COORDINATOR_LOAD_IN_PROGRESS, never blindly. False if it cannot be asked."""
    from aiokafka.protocol.admin import DescribeGroupsRequest

    try:
        response = await send(node_id, DescribeGroupsRequest([group_id]), **kwargs)
    except Exception as exc:  # noqa: BLE001 - asked again before the next heartbeat
        log.debug("DescribeGroups to coordinator %s failed: %r", node_id, exc)
        return False
    return bool(response.groups) and all(group[0] == _NO_ERROR for group in response.groups)


def heartbeat_generation(request: Any) -> int | None:
    """The generation a heartbeat request names (aiokafka keeps it unbuilt until sent)."""
    generation = getattr(request, "_generation_id", None)
    return generation if isinstance(generation, int) else None


def guard_sender(sender: Any, lease: Lease, on_lost: Callable[[OwnershipLost], None]) -> None:
    """Check ``lease`` before aiokafka's producer ``sender`` (this instance) puts each
    produce request on the wire: records appended before a pause leave only under a
    held (or renewed) lease. When it is lost the request's batches fail with
    :class:`OwnershipLost` (their delivery futures raise; nothing is sent) and
    ``on_lost`` is called."""
    send_produce_req = sender._send_produce_req  # noqa: SLF001 - the one hook point

    async def guarded(node_id: Any, batches: dict) -> None:
        # Connected first: a connection to the leader may take as long as the request
        # timeout to open (SYN retries), and the request left after it, however long
        # after the check. Connected, the write follows the check with no await between.
        with contextlib.suppress(Exception):  # not connected: the send below says why
            await sender.client.ready(node_id)
        if not lease.holds():
            try:
                await lease.hold(what="produce request")
            except OwnershipLost as exc:
                for batch in batches.values():
                    batch.failure(exception=exc)
                sender._in_flight.discard(node_id)  # noqa: SLF001 - what it would do
                sender._muted_partitions.difference_update(batches)  # noqa: SLF001
                on_lost(exc)
                return
        await send_produce_req(node_id, batches)

    sender._send_produce_req = guarded  # noqa: SLF001
