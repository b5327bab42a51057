"""The gateway's HTTP API (``/api/v1``), ``/health`` and ``/metrics``.

Reads: a single tally comes from the Redis read model when it is ready and
holds the submission, else from Postgres (``source`` says which); lists,
rejections, escalations and statistics come from the sink's Postgres tables;
rings and submissions from the control topics (registrar-signed records only,
as the workers count them). Nothing returned names a reviewer: ballots are
only ever counted, never listed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from connectors.sdk.errors import OutcomeTimeout
from models import Ballot
from models.reasons import ReasonCode
from models.votes import VoteCast
from streams.errors import RingtallyError
from streams.metrics import exposition

from .backends import Backends
from .metrics import GatewayMetrics
from .sse import Broadcaster, format_event

__all__ = ["router"]

router = APIRouter()

#: models.fields.Identifier: 1-128 printable ASCII characters, no space.
IDENTIFIER_PATTERN = r"^[\x21-\x7e]{1,128}$"
IDENTIFIER_PATTERN_RE = re.compile(IDENTIFIER_PATTERN)


def _backends(request: Request) -> Backends:
    return request.app.state.backends


def _metrics(request: Request) -> GatewayMetrics:
    return request.app.state.metrics


def _unavailable(exc: Exception) -> HTTPException:
    return HTTPException(503, f"a service is unavailable: {str(exc).splitlines()[0][:200]}")


async def _bounded(request: Request, coro: Any) -> Any:
    """Run a read within the read timeout; a service outage or a slow one is a 503."""
    try:
        return await asyncio.wait_for(coro, _backends(request).gateway.read_timeout)
    except TimeoutError:
        raise HTTPException(503, "a service did not answer in time") from None
    except (RingtallyError, OSError, ConnectionError) as exc:
        raise _unavailable(exc) from None


# --- votes ------------------------------------------------------------------------------

_VOTE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": VoteCast.model_json_schema()}},
    }
}


def _outcome_body(outcome: Any) -> dict[str, Any]:
    if isinstance(outcome, Ballot):
        return {
            "vote_id": str(outcome.vote_id),
            "status": "counted",
            "submission_id": outcome.submission_id,
            "vote_type": outcome.vote_type.value,
            "supersedes": None if outcome.supersedes is None else str(outcome.supersedes),
        }
    return {
        "vote_id": None if outcome.vote_id is None else str(outcome.vote_id),
        "status": "rejected",
        "reason": outcome.reason.value,
        "detail": outcome.detail,
    }


@router.post(
    "/api/v1/votes",
    status_code=202,
    openapi_extra=_VOTE_BODY,
    summary="Publish a signed vote (and optionally wait for its outcome)",
    responses={
        200: {"description": "?wait: the outcome (counted, or rejected with a reason code)"},
        202: {"description": "published (acknowledged by Kafka); or ?wait timed out: pending"},
        408: {"description": "the body took longer than RINGTALLY_GATEWAY_BODY_TIMEOUT"},
        413: {"description": "body too large"},
        422: {"description": "not a valid VoteCast: the field errors; nothing published"},
        503: {"description": "Kafka unavailable: nothing published"},
    },
)
async def post_vote(
    request: Request,
    wait: Annotated[
        float | None, Query(ge=0, description="seconds to wait for the outcome")
    ] = None,
) -> JSONResponse:
    """Validate the body against ``VoteCast`` and publish it keyed by its token id.

    The gateway checks the vote's shape only; whether it counts (signature,
    ring version, slot tag, double vote) is decided by the workers. The same
    vote posted twice is one vote: the workers count a byte-identical copy
    once, and ``?wait`` returns the original ballot.
    """
    backends, metrics = _backends(request), _metrics(request)
    if wait is not None and wait > backends.gateway.max_wait:
        raise HTTPException(422, f"wait must be at most {backends.gateway.max_wait:g} seconds")
    try:  # a client trickling its body out holds a connection: not for long
        body = await asyncio.wait_for(request.body(), backends.gateway.body_timeout)
    except TimeoutError:
        raise HTTPException(408, "request body not received in time") from None
    try:
        vote = VoteCast.model_validate_json(body)
    except ValidationError as exc:
        metrics.votes_invalid.labels("422").inc()
        errors = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        return JSONResponse({"detail": errors}, status_code=422)
    try:
        if wait is None or wait == 0:
            await backends.publish(vote)
            metrics.votes_accepted.inc()
            return JSONResponse({"vote_id": str(vote.vote_id), "status": "accepted"}, 202)
        try:
            outcome = await backends.publish_and_wait(vote, wait)
        except (OutcomeTimeout, TimeoutError):
            metrics.votes_accepted.inc()
            metrics.outcomes.labels("pending", "").inc()
            return JSONResponse({"vote_id": str(vote.vote_id), "status": "pending"}, 202)
    except RingtallyError as exc:
        raise _unavailable(exc) from None
    metrics.votes_accepted.inc()
    body_out = _outcome_body(outcome)
    metrics.outcomes.labels(body_out["status"], body_out.get("reason", "")).inc()
    return JSONResponse(body_out, 200)


# --- tallies ----------------------------------------------------------------------------

_TALLY_COLUMNS = (
    "submission_id, approve, reject, flag, escalate, total, decision, rules_version, version, "
    "updated_at"
)


def _tally_from_row(row: Any) -> dict[str, Any]:
    return {
        "submission_id": row["submission_id"],
        "counts": {k: row[k] for k in ("approve", "reject", "flag", "escalate")},
        "total": row["total"],
        "decision": row["decision"],
        "rules_version": row["rules_version"],
        "version": row["version"],
        "updated_at": row["updated_at"].isoformat(),
    }


def _label(backends: Backends, tally: dict[str, Any]) -> dict[str, Any]:
    sub = backends.control.cached().submissions.get(tally["submission_id"])
    tally["genre"] = sub.genre if sub else None
    tally["epoch"] = sub.epoch if sub else None
    return tally


async def _tally(backends: Backends, submission_id: str) -> dict[str, Any] | None:
    try:
        if await backends.store.ready():
            stored = await backends.store.get(submission_id)
            if stored is not None:
                return {
                    "submission_id": submission_id,
                    "counts": stored["counts"],
                    "total": stored["total"],
                    "decision": stored["decision"],
                    "rules_version": stored["rules_version"],
                    "version": stored["version"],
                    "source": "redis",
                }
    except (OSError, ConnectionError, TimeoutError, RingtallyError):
        pass  # Redis down: Postgres answers
    except Exception as exc:  # noqa: BLE001 - redis-py's own errors: fall back too
        if not type(exc).__module__.startswith("redis"):
            raise
    rows = await backends.fetch(
        f"SELECT {_TALLY_COLUMNS} FROM tallies WHERE submission_id = $1", submission_id
    )
    if not rows:
        return None
    return {**_tally_from_row(rows[0]), "source": "postgres"}


@router.get("/api/v1/tallies", summary="Tallies, most recently updated first (paged)")
async def list_tallies(
    request: Request,
    genre: Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN, max_length=200)] = None,
    decision: Annotated[
        str | None, Query(pattern="^(PENDING|APPROVED|REJECTED|ESCALATED)$")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    backends = _backends(request)

    async def go() -> dict[str, Any]:
        where, args = [], []
        if genre is not None:
            control = await backends.control.get()
            ids = [s for s, sub in control.submissions.items() if sub.genre == genre]
            args.append(ids)
            where.append(f"submission_id = ANY(${len(args)}::text[])")
        if decision is not None:
            args.append(decision)
            where.append(f"decision = ${len(args)}")
        else:
            await backends.control.get()
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        args += [limit + 1, offset]
        rows = await backends.fetch(
            f"SELECT {_TALLY_COLUMNS} FROM tallies {clause} "
            f"ORDER BY updated_at DESC, submission_id LIMIT ${len(args) - 1} OFFSET ${len(args)}",
            *args,
        )
        items = [_label(backends, _tally_from_row(r)) for r in rows[:limit]]
        return {"items": items, "next_offset": offset + limit if len(rows) > limit else None}

    return await _bounded(request, go())


@router.get("/api/v1/tallies/stream", summary="Tally changes as Server-Sent Events")
async def stream_tallies(
    request: Request,
    submission_id: Annotated[
        list[str] | None, Query(max_length=100, description="only these submissions")
    ] = None,
) -> StreamingResponse:
    backends, metrics = _backends(request), _metrics(request)
    broadcaster: Broadcaster = request.app.state.broadcaster
    wanted = set(submission_id or ())
    for s in wanted:
        if not IDENTIFIER_PATTERN_RE.match(s):
            raise HTTPException(422, "submission_id: not an identifier")
    last_id = request.headers.get("last-event-id")
    single = next(iter(wanted)) if len(wanted) == 1 else None
    metrics.sse_clients.inc()
    heartbeat = backends.gateway.sse_heartbeat

    def event_id(data: dict) -> str:
        return str(data["version"]) if single else f"{data['submission_id']}:{data['version']}"

    async def catch_up() -> list[dict]:
        if single is not None:
            tally = await _tally(backends, single)
            known = int(last_id) if last_id and last_id.isdigit() else -1
            return [tally] if tally is not None and tally["version"] > known else []
        if wanted:
            found = [await _tally(backends, s) for s in sorted(wanted)]
            return [t for t in found if t is not None]
        rows = await backends.fetch(
            f"SELECT {_TALLY_COLUMNS} FROM tallies ORDER BY updated_at DESC LIMIT 500"
        )
        return [_tally_from_row(r) for r in reversed(rows)]

    async def events():  # noqa: ANN202
        async with broadcaster.listen() as queue:
            yield b": connected\nretry: 1000\n\n"
            for s in sorted(wanted)[:10]:  # know their genres before their first event
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(backends.control.submission(s), 5.0)
            if last_id is not None or single is not None:
                try:
                    for tally in await asyncio.wait_for(catch_up(), backends.gateway.read_timeout):
                        tally.pop("source", None)
                        tally.pop("updated_at", None)
                        yield format_event(
                            _label(backends, {"type": "tally", **tally}), event_id(tally)
                        )
                except Exception:  # noqa: BLE001 - catch-up is best effort; live events follow
                    yield b": catch-up unavailable\n\n"
            while True:
                try:
                    data = await asyncio.wait_for(queue.get(), heartbeat)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if data is None:
                    return
                if wanted and data.get("submission_id") not in wanted:
                    continue
                if data.get("submission_id") not in backends.control.cached().submissions:
                    with contextlib.suppress(Exception):  # a new submission: label it if we can
                        await asyncio.wait_for(backends.control.get(fresh=True), 5.0)
                yield format_event(_label(backends, dict(data)), event_id(data))

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/api/v1/tallies/{submission_id}", summary="One submission's tally")
async def get_tally(request: Request, submission_id: str) -> dict[str, Any]:
    _check_id(submission_id)
    backends = _backends(request)

    async def go() -> dict[str, Any]:
        tally = await _tally(backends, submission_id)
        if tally is None:
            raise HTTPException(404, f"no tally for submission {submission_id!r} yet")
        await backends.control.submission(submission_id)
        return _label(backends, tally)

    return await _bounded(request, go())


# --- submissions and rings ---------------------------------------------------------------


def _check_id(value: str) -> None:
    if not IDENTIFIER_PATTERN_RE.match(value):
        raise HTTPException(422, "not an identifier")


@router.get("/api/v1/submissions/{submission_id}", summary="A registered submission and its tally")
async def get_submission(request: Request, submission_id: str) -> dict[str, Any]:
    _check_id(submission_id)
    backends = _backends(request)

    async def go() -> dict[str, Any]:
        sub = await backends.control.submission(submission_id)
        if sub is None:
            raise HTTPException(404, f"no registered submission {submission_id!r}")
        tally = await _tally(backends, submission_id)
        escal = await backends.fetch(
            "SELECT first_escalated_at, latest_escalated_at FROM escalations "
            "WHERE submission_id = $1",
            submission_id,
        )
        return {
            **json.loads(sub.model_dump_json()),
            "tally": None if tally is None else _label(backends, tally),
            "escalated_at": escal[0]["first_escalated_at"].isoformat() if escal else None,
        }

    return await _bounded(request, go())


@router.get("/api/v1/rings/{ring_id}", summary="A ring: its signed versions, the latest last")
async def get_ring(request: Request, ring_id: str) -> dict[str, Any]:
    _check_id(ring_id)
    backends = _backends(request)

    async def go() -> dict[str, Any]:
        versions = await backends.control.ring(ring_id)
        if not versions:
            raise HTTPException(404, f"no registered ring {ring_id!r}")
        now = int(time.time() * 1000)
        in_force = [v for v in versions if v.effective_ms <= now]
        return {
            "ring_id": ring_id,
            "genre": versions[-1].ring.genre,
            "epoch": versions[-1].ring.epoch,
            "latest_version": versions[-1].ring.version,
            "version_in_force": in_force[-1].ring.version if in_force else None,
            "versions": [
                {**json.loads(v.ring.model_dump_json()), "effective_ms": v.effective_ms}
                for v in versions
            ],
        }

    return await _bounded(request, go())


# --- rejections, escalations, statistics -----------------------------------------------------


@router.get("/api/v1/rejections", summary="Rejections, newest first (paged by id)")
async def list_rejections(
    request: Request,
    reason: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    if reason is not None and reason not in {r.value for r in ReasonCode}:
        raise HTTPException(422, f"unknown reason {reason[:50]!r}")
    backends = _backends(request)

    async def go() -> dict[str, Any]:
        args: list[Any] = [reason, before_id, limit + 1]
        rows = await backends.fetch(
            "SELECT id, vote_id, token_id, reason, detail, source_topic, source_partition, "
            "source_offset, recorded_at FROM rejections "
            "WHERE ($1::text IS NULL OR reason = $1) AND ($2::bigint IS NULL OR id < $2) "
            "ORDER BY id DESC LIMIT $3",
            *args,
        )
        items = [
            {
                "id": r["id"],
                "vote_id": None if r["vote_id"] is None else str(r["vote_id"]),
                "token_id": r["token_id"],
                "reason": r["reason"],
                "detail": r["detail"],
                "source_topic": r["source_topic"],
                "source_partition": r["source_partition"],
                "source_offset": r["source_offset"],
                "recorded_at": r["recorded_at"].isoformat(),
            }
            for r in rows[:limit]
        ]
        more = len(rows) > limit
        return {"items": items, "next_before_id": items[-1]["id"] if more and items else None}

    return await _bounded(request, go())


@router.get("/api/v1/escalations", summary="The latest escalated submissions")
async def list_escalations(
    request: Request, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> dict[str, Any]:
    backends = _backends(request)

    async def go() -> dict[str, Any]:
        rows = await backends.fetch(
            "SELECT e.submission_id, e.first_escalated_at, e.latest_escalated_at, e.latest_total, "
            "t.decision FROM escalations e LEFT JOIN tallies t USING (submission_id) "
            "ORDER BY e.latest_escalated_at DESC LIMIT $1",
            limit,
        )
        await backends.control.get()
        return {
            "items": [
                _label(
                    backends,
                    {
                        "submission_id": r["submission_id"],
                        "first_escalated_at": r["first_escalated_at"].isoformat(),
                        "latest_escalated_at": r["latest_escalated_at"].isoformat(),
                        "total": r["latest_total"],
                        "decision": r["decision"],
                    },
                )
                for r in rows
            ]
        }

    return await _bounded(request, go())


#: Statistics scan the sink's tables: every dashboard polls them, so one answer serves all
#: requests for this long.
_STATS_TTL = 2.0


@router.get("/api/v1/statistics", summary="Counts per epoch and genre (nothing per reviewer)")
async def statistics(
    request: Request,
    minutes: Annotated[int, Query(ge=1, le=60, description="window of `recent`")] = 10,
) -> dict[str, Any]:
    from .stats import statistics as compute

    backends = _backends(request)
    cache: dict = request.app.state.stats_cache
    cached = cache.get(minutes)
    if cached is not None and time.monotonic() - cached[0] < _STATS_TTL:
        return cached[1]
    result = await _bounded(request, compute(backends, minutes))
    cache[minutes] = (time.monotonic(), result)
    return result


# --- health and metrics --------------------------------------------------------------------


@router.get("/health", summary="Readiness: Kafka, Redis and Postgres reachable")
async def health(request: Request) -> JSONResponse:
    services = await _backends(request).health()
    ok = all(v == "ok" for v in services.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", **services}, 200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    body, content_type = exposition(_metrics(request).registry)
    return Response(body, headers={"Content-Type": content_type})
