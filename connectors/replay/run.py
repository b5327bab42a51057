"""``ringtally replay``: rebuild state from the input topics into a shadow, compare with live.

1. note the votes topic's end offsets (what "caught up" means for this run);
2. a shadow: app id / consumer group / output prefix ``<prefix>-replay-<ts>``,
   fresh tables (memory store), Postgres schema ``<schema>_replay_<ts>``,
   migrated. The shadow reads the live input topics (votes, rings,
   submissions) and decides each vote by the broker timestamps the live run
   saw, so a ring rotation takes effect for exactly the same votes;
3. a worker with those settings and a sink for the shadow outputs (its own
   group, ``--no-readmodel``: the read model's Redis keys are live ones);
4. wait until the worker's group has committed the votes topic up to the
   noted end offsets, its tally stage has committed its repartition topic to
   that topic's end, and the sink has stored every shadow output;
5. diff live and shadow schemas (:mod:`.compare`); stop both processes; drop
   the shadow topics, groups and schema unless ``--keep``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from connectors.stack.harness import SinkProcess, WorkerProcess, free_port
from streams.errors import UsageProblem
from streams.settings import Settings

from .compare import Comparison, compare_schemas
from .offsets import OffsetProbe, offsets_for_time

__all__ = ["ReplayConfig", "ReplayResult", "drop_shadow", "render", "run_replay", "shadow_settings"]

#: Rows of differences printed (the count is always complete).
SHOWN = 40


@dataclass
class ReplayConfig:
    from_time: datetime | None = None
    keep: bool = False
    table_store: str = "memory"
    #: seconds without progress before the replay gives up
    stall_timeout: float = 120.0
    live: bool = True
    stamp: str | None = None


@dataclass
class ReplayResult:
    comparison: Comparison
    shadow: Settings
    seconds: float
    votes_records: int
    since: dict[int, int] | None
    kept: bool
    notes: list[str] = field(default_factory=list)

    @property
    def failing(self) -> int:
        return len(self.comparison.differences)

    @property
    def ok(self) -> bool:
        return self.failing == 0


def shadow_settings(
    live: Settings, stamp: str, *, table_store: str = "memory", partitions: int | None = None
) -> Settings:
    """The replay's settings: live inputs, shadow outputs, group, tables and schema.

    ``partitions``: the votes topic's real partition count (the replay's internal
    topics must be co-partitioned with it, whatever RINGTALLY_PARTITIONS says).

    The replay signs its heads with a throwaway log key (a fresh key file in a
    temporary directory), never the live one: with the live key it would sign a
    second log of the same submissions, at the same sizes with other roots when the
    replay differs, and anyone holding both could show the live log "forked".
    """
    from streams.keyfile import create_key_file, load_key_file

    throwaway = Path(tempfile.mkdtemp(prefix=f"ringtally-replay-{stamp}-")) / "log.key"
    create_key_file(throwaway)
    prefix = f"{live.topic_prefix}-replay-{stamp}"
    suffix = f"_replay_{stamp}"
    schema = live.postgres_schema[: 63 - len(suffix)] + suffix
    fields = live.model_dump()
    fields.update(
        output_prefix=prefix,
        app_id=prefix,
        postgres_schema=schema,
        table_store=table_store,
        web_port=free_port(),
        metrics_port=0,
        partitions=partitions or live.partitions,
        log_key_file=throwaway,
        log_public_key=load_key_file(throwaway).public_key.hex(),
    )
    return Settings(**fields)


def run_replay(
    live: Settings, config: ReplayConfig, console: Console | None = None
) -> ReplayResult:
    console = console or Console(stderr=True)
    return asyncio.run(_run(live, config, console))


async def _run(live: Settings, config: ReplayConfig, console: Console) -> ReplayResult:
    from connectors.postgres.db import connect
    from connectors.postgres.migrate import check_ready, migrate
    from streams.topics import ensure_topics

    started = time.monotonic()
    stamp = config.stamp or time.strftime("%Y%m%d%H%M%S")
    say = console.print if config.live else (lambda *a, **k: None)
    votes_topic = live.topic("votes")

    conn = await connect(live, search_path=False)
    try:
        await check_ready(conn, live.postgres_schema)
    except Exception:
        await conn.close()
        raise
    probe = OffsetProbe(live)
    votes_end = probe.end(votes_topic)
    if not votes_end:
        await conn.close()
        raise UsageProblem(
            f"topic {votes_topic} does not exist: nothing to replay",
            fix="set RINGTALLY_TOPIC_PREFIX to the live pipeline's prefix",
        )
    total = sum(votes_end.values())
    shadow = shadow_settings(live, stamp, table_store=config.table_store, partitions=len(votes_end))
    since = None
    if config.from_time is not None:
        since = await asyncio.to_thread(offsets_for_time, live, votes_topic, config.from_time)
    say(
        f"replaying {total:,} records of {votes_topic} into [bold]{shadow.output_prefix}.*[/bold], "
        f"schema [bold]{shadow.postgres_schema}[/bold] (group {shadow.group_id}, fan-out off)"
    )

    logs = live.data_dir / "replay" / shadow.group_id
    worker = WorkerProcess(shadow, logs / "worker.log")
    sink = SinkProcess(
        shadow, logs / "sink.log", args=("--no-readmodel", "--group-id", f"{shadow.group_id}-sink")
    )
    comparison: Comparison | None = None
    notes: list[str] = []
    try:
        await asyncio.to_thread(ensure_topics, shadow, internal=True)
        await migrate(shadow)
        sink.start()
        await asyncio.to_thread(worker.start, ready_timeout=120)
        await _wait_caught_up(
            shadow, probe, votes_topic, votes_end, worker, sink, conn, config, console
        )
        comparison = await compare_schemas(
            conn,
            live.postgres_schema,
            shadow.postgres_schema,
            votes_topic=votes_topic,
            since=since,
            until=votes_end,
        )
        notes = await _live_notes(live, probe, conn, votes_end)
    finally:
        probe.close()
        worker.stop()
        sink.stop()
        await conn.close()
        shutil.rmtree(
            shadow.data_dir / "workers" / f"{shadow.group_id}-{shadow.web_port}", ignore_errors=True
        )
        if not config.keep:
            await asyncio.to_thread(drop_shadow, shadow)
    return ReplayResult(
        comparison,
        shadow,
        time.monotonic() - started,
        total,
        since,
        kept=config.keep,
        notes=notes,
    )


async def _live_notes(
    live: Settings, probe: OffsetProbe, conn: Any, votes_end: dict[int, int]
) -> list[str]:
    """Warnings when the live side is not a fair yardstick (it moved on, or lags behind)."""
    from connectors.postgres.db import quote_ident

    notes = []
    votes_topic = live.topic("votes")
    now_end = await asyncio.to_thread(probe.end, votes_topic)
    grown = sum(now_end.values()) - sum(votes_end.values())
    if grown > 0:
        notes.append(
            f"the votes topic grew by {grown:,} records during the replay: ballots and rejections "
            "are compared up to the end offsets noted at start, but tallies are whole-history "
            "numbers and may differ for submissions voted on since"
        )
    committed = await asyncio.to_thread(probe.committed, live.group_id, votes_topic)
    behind = sum(max(0, end - committed.get(p, 0)) for p, end in votes_end.items())
    if behind:
        notes.append(
            f"the live worker group {live.group_id} has not committed {behind:,} of the replayed "
            "records: differences may be live lag, not divergence"
        )
    stored = {
        (r["topic"], r["partition"]): r["next_offset"]
        for r in await conn.fetch(
            f"SELECT topic, partition, next_offset FROM {quote_ident(live.postgres_schema)}"
            ".sink_offsets"
        )
    }
    lag = 0
    for short in ("ballots", "tallies", "rejections"):
        topic = live.topic(short)
        for p, end in (await asyncio.to_thread(probe.end, topic)).items():
            lag += max(0, end - stored.get((topic, p), 0))
    if lag:
        notes.append(
            f"the live sink is {lag:,} records behind its topics: differences may be sink lag"
        )
    return notes


async def _wait_caught_up(
    shadow: Settings,
    probe: OffsetProbe,
    votes_topic: str,
    votes_end: dict[int, int],
    worker: WorkerProcess,
    sink: SinkProcess,
    conn: object,
    config: ReplayConfig,
    console: Console,
) -> None:
    """Until the worker committed ``votes_end``, the tally stage its topic, the sink all outputs."""
    from connectors.postgres.db import quote_ident

    group = shadow.group_id
    accepted = f"{group}-accepted"
    outputs = [shadow.topic(t) for t in ("ballots", "tallies", "rejections", "audit")]
    total = sum(votes_end.values())
    accepted_end: dict[int, int] | None = None
    outputs_end: dict[tuple[str, int], int] | None = None
    sq = quote_ident(shadow.postgres_schema)
    last_change, last_state = time.monotonic(), None
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<26}"),
        BarColumn(bar_width=40),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not config.live,
    )
    with progress:
        t_votes = progress.add_task("verify (votes topic)", total=total or 1)
        t_tally = progress.add_task("tally (repartition topic)", total=None)
        t_sink = progress.add_task("sink (shadow schema)", total=None)
        while True:
            committed = await asyncio.to_thread(probe.committed, group, votes_topic)
            done = sum(min(committed.get(p, 0), end) for p, end in votes_end.items())
            progress.update(t_votes, completed=done)
            tally_done = sink_done = 0
            if done >= total:
                if accepted_end is None:
                    accepted_end = await asyncio.to_thread(probe.end, accepted)
                    progress.update(t_tally, total=sum(accepted_end.values()) or 1)
                acc = await asyncio.to_thread(probe.committed, group, accepted)
                tally_done = sum(min(acc.get(p, 0), end) for p, end in accepted_end.items())
                progress.update(t_tally, completed=tally_done)
                if tally_done >= sum(accepted_end.values()):
                    if outputs_end is None:
                        outputs_end = {}
                        for topic in outputs:
                            for p, end in (await asyncio.to_thread(probe.end, topic)).items():
                                outputs_end[(topic, p)] = end
                        progress.update(t_sink, total=sum(outputs_end.values()) or 1)
                    stored = {
                        (r["topic"], r["partition"]): r["next_offset"]
                        for r in await conn.fetch(  # type: ignore[attr-defined]
                            f"SELECT topic, partition, next_offset FROM {sq}.sink_offsets"
                        )
                    }
                    sink_done = sum(min(stored.get(k, 0), end) for k, end in outputs_end.items())
                    progress.update(t_sink, completed=sink_done)
                    if sink_done >= sum(outputs_end.values()):
                        return
            state = (done, tally_done, sink_done)
            now = time.monotonic()
            if state != last_state:
                last_state, last_change = state, now
            elif now - last_change > config.stall_timeout:
                raise TimeoutError(
                    f"replay made no progress for {config.stall_timeout:.0f}s "
                    f"(votes {done}/{total}); logs: {worker.log_path}, {sink.log_path}"
                )
            if not worker.alive():
                raise RuntimeError(f"the replay worker exited:\n{worker.tail()}")
            if not sink.alive():
                raise RuntimeError(f"the replay sink exited:\n{sink.tail()}")
            await asyncio.sleep(0.5)


def drop_shadow(shadow: Settings) -> None:
    """Delete the shadow's topics, consumer groups and schema (best effort, names checked)."""
    from confluent_kafka.admin import AdminClient

    from streams.kafka_client import kafka_config
    from streams.topics import delete_topics, topics_with_prefix

    prefix = shadow.output_prefix
    if not prefix or "-replay-" not in prefix:
        raise UsageProblem(f"refusing to drop {prefix!r}: not a replay's shadow prefix")
    delete_topics(shadow, topics_with_prefix(shadow, [prefix]))
    admin = AdminClient(kafka_config(shadow))
    with contextlib.suppress(Exception):
        futures = admin.delete_consumer_groups(
            [shadow.group_id, f"{shadow.group_id}-sink"], request_timeout=10
        )
        for future in futures.values():
            with contextlib.suppress(Exception):
                future.result(timeout=10)

    async def drop_schema() -> None:
        from connectors.postgres.db import connect, quote_ident

        conn = await connect(shadow, search_path=False)
        try:
            await conn.execute(
                f"DROP SCHEMA IF EXISTS {quote_ident(shadow.postgres_schema)} CASCADE"
            )
        finally:
            await conn.close()

    asyncio.run(drop_schema())


# --- printing ---------------------------------------------------------------------------


def render(result: ReplayResult, console: Console) -> None:
    c = result.comparison
    scope = "all outputs"
    if result.since is not None:
        scope = (
            "outputs of votes-topic records at/after --from-time (offsets "
            + ", ".join(f"{p}:{o}" for p, o in sorted(result.since.items()))
            + ")"
        )
    console.print(
        f"replay schema {c.shadow_schema} vs live schema {c.live_schema}; compared: {scope}"
    )
    table = Table()
    for col in ("table", "live rows", "replay rows", "differences"):
        table.add_column(col, justify="left" if col == "table" else "right")
    kinds = {"ballots": "ballot", "rejections": "rejection", "tallies": "tally"}
    for name, (a, b) in c.counts.items():
        n = sum(d.kind == kinds[name] for d in c.differences)
        table.add_row(name, f"{a:,}", f"{b:,}", f"[red]{n}" if n else "[green]0")
    console.print(table)
    if c.differences:
        diff = Table(title=f"Differences ({len(c.differences)})", title_justify="left")
        for col in ("kind", "key", "live → replay"):
            diff.add_column(col)
        for d in c.differences[:SHOWN]:
            diff.add_row(d.kind, d.key, d.describe())
        if len(c.differences) > SHOWN:
            diff.add_row("…", f"{len(c.differences) - SHOWN} more", "")
        console.print(diff)
    kept = (
        f"kept: topics {result.shadow.output_prefix}.*, schema {result.shadow.postgres_schema}"
        if result.kept
        else "shadow topics, groups and schema dropped"
    )
    console.print(
        f"replayed {result.votes_records:,} votes-topic records in {result.seconds:.0f} s; {kept}"
    )
    for note in result.notes:
        console.print(f"[yellow]note: {note}")
    if result.ok:
        console.print("[bold green]no differences[/bold green]")
    else:
        console.print(f"[bold red]{result.failing} differences[/bold red]")


def parse_time(text: str) -> datetime:
    """ISO 8601 (no zone: local time) or epoch milliseconds."""
    text = text.strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000).astimezone()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageProblem(
            f"--from-time {text!r}: use ISO 8601 (2026-01-31T12:00:00+00:00) or epoch milliseconds"
        ) from None
    return when if when.tzinfo else when.astimezone()
