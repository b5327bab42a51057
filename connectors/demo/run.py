"""The demo, step by step: a seeded review round through a real worker and sink, checked.

1. a fresh topic prefix and Postgres schema for this run (``demo-<date>-<time>``,
   ``demo_<date>_<time>``); earlier demo runs' topics and schemas are dropped
   first (``--keep-old`` keeps them), so the latest run stays around to
   inspect or to ``ringtally replay``;
2. the round (:func:`connectors.demo.simulation.build_round`), its topics, ``db migrate``;
3. a worker (``ringtally worker``) and the sink (``ringtally sink``) as subprocesses;
4. rings and submissions (registrar-signed), then the votes, paced, with a live
   progress bar; part-way through, a ring rotation that revokes a reviewer
   (ring version 2 without their key), and the rest of the votes after it
   (:class:`~connectors.demo.simulation.Publisher` keeps the round's order);
5. wait until every vote has an outcome on the output topics and the sink
   has stored it all; check every number against the round's ground truth,
   from Postgres and from the output topics; draw the chart;
6. stop the worker and the sink (the stack stays up).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
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
from streams.settings import Settings

from .check import CheckLine, Truth, all_match, check
from .observe import TopicWatch, pg_counts, read_postgres

__all__ = ["DemoConfig", "DemoResult", "render", "run_demo"]

#: Topic prefixes and schemas the demo makes (and may drop on the next run).
DEMO_PREFIX = re.compile(r"^demo-(\d{8}-\d{6})")
DEMO_SCHEMA = re.compile(r"^demo_(\d{8}_\d{6})")
#: Earlier runs younger than this are left alone: another demo may still be running.
MIN_AGE_TO_DROP = 15 * 60.0


def _old_enough(stamp: str) -> bool:
    try:
        started = time.mktime(time.strptime(stamp.replace("_", "-"), "%Y%m%d-%H%M%S"))
    except ValueError:
        return False
    return time.time() - started >= MIN_AGE_TO_DROP


@dataclass
class DemoConfig:
    seed: int = 7
    genres: int = 4
    ring_size: int = 16
    submissions_per_genre: int = 75
    votes_per_reviewer: int = 50
    #: votes per second while publishing (0: as fast as the producer goes)
    rate: float = 200.0
    partitions: int = 6
    table_store: str = "rocksdb"
    prefix: str | None = None
    chart: Path | None = None
    draw_chart: bool = True
    clean_old: bool = True
    #: seconds without any progress before waiting stops (the check then fails)
    stall_timeout: float = 60.0
    live: bool = True
    #: where the services are (kafka, postgres, redis, data dir); None: from RINGTALLY_* / defaults
    base: Settings | None = None


@dataclass
class DemoResult:
    ok: bool
    lines: list[CheckLine]
    settings: Settings
    seconds: float
    votes: int
    chart: Path | None = None
    decisions_by_genre: dict[str, Counter[str]] = field(default_factory=dict)
    rejections: dict[str, tuple[int, int]] = field(
        default_factory=dict
    )  # reason -> (expected, postgres)
    attacks: Counter[str] = field(default_factory=Counter)
    metrics: dict[str, float] = field(default_factory=dict)
    latency_ms: tuple[float, float] | None = None  # p50, p99
    votes_per_s: float = 0.0
    logs: Path | None = None
    notes: list[str] = field(default_factory=list)


def demo_settings(prefix: str, config: DemoConfig) -> Settings:
    from connectors.sdk.registrar import pin_registrar

    base = config.base or Settings()
    return pin_registrar(  # the workers trust the registrar key that signs the round
        Settings(
            kafka_bootstrap=base.kafka_bootstrap,
            postgres_dsn=base.postgres_dsn,
            redis_url=base.redis_url,
            data_dir=base.data_dir,
            topic_prefix=prefix,
            output_prefix=None,
            app_id=f"{prefix}-worker",
            postgres_schema=prefix.replace("-", "_"),
            partitions=config.partitions,
            table_store=config.table_store,
            web_port=free_port(),
            metrics_port=free_port(),
        ),
        base,
    )


def drop_old_runs(settings: Settings, keep_prefix: str) -> tuple[int, int]:
    """Delete topics and schemas of earlier demo runs (only names the demo makes).

    Runs started less than 15 minutes ago are kept: a demo may be running
    beside this one on the same stack.
    """
    from confluent_kafka.admin import AdminClient

    from streams.kafka_client import kafka_config
    from streams.topics import delete_topics

    admin = AdminClient(kafka_config(settings))
    topics = []
    for t in admin.list_topics(timeout=10).topics:
        m = DEMO_PREFIX.match(t)
        if m and not t.startswith(keep_prefix) and _old_enough(m.group(1)):
            topics.append(t)
    delete_topics(settings, topics)

    async def drop() -> int:
        from connectors.postgres.db import connect, quote_ident

        conn = await connect(settings, search_path=False)
        try:
            names = [r["nspname"] for r in await conn.fetch("SELECT nspname FROM pg_namespace")]
            old = [
                n
                for n in names
                if (m := DEMO_SCHEMA.match(n))
                and n != settings.postgres_schema
                and _old_enough(m.group(1))
            ]
            for name in old:
                await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(name)} CASCADE")
            return len(old)
        finally:
            await conn.close()

    demo_dir = settings.data_dir / "demo"
    if demo_dir.is_dir():  # their logs and charts too
        for entry in demo_dir.iterdir():
            m = DEMO_PREFIX.match(entry.name)
            if m and not entry.name.startswith(keep_prefix) and _old_enough(m.group(1)):
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
    return len(topics), asyncio.run(drop())


def _scrape(url: str) -> dict[str, float]:
    """Sum every sample of each metric family (labels folded) from a /metrics page."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def run_demo(config: DemoConfig, console: Console | None = None) -> DemoResult:
    """Run the whole demo; returns the check (``result.ok``) and what to print."""
    console = console or Console()
    return asyncio.run(_run(config, console))


async def _run(config: DemoConfig, console: Console) -> DemoResult:
    from connectors.demo.simulation import Publisher, build_round
    from connectors.postgres.db import connect
    from connectors.postgres.migrate import migrate
    from connectors.sdk.registrar import load_registrar
    from streams.topics import ensure_topics

    started = time.monotonic()
    prefix = config.prefix or time.strftime("demo-%Y%m%d-%H%M%S")
    settings = demo_settings(prefix, config)
    logs = settings.data_dir / "demo" / prefix
    say = console.print if config.live else (lambda *a, **k: None)

    if config.clean_old:
        topics, schemas = await asyncio.to_thread(drop_old_runs, settings, prefix)
        if topics or schemas:
            say(f"[dim]dropped {topics} topics and {schemas} schemas of earlier demo runs[/dim]")

    with (
        console.status("signing the review round…", spinner="dots")
        if config.live
        else contextlib.nullcontext()
    ):
        round_ = await asyncio.to_thread(
            build_round,
            seed=config.seed,
            genres=config.genres,
            ring_size=config.ring_size,
            submissions_per_genre=config.submissions_per_genre,
            votes_per_reviewer=config.votes_per_reviewer,
            registrar=load_registrar(settings),
        )
    round_.min_votes, round_.flag_threshold = settings.min_votes, settings.flag_threshold
    truth = Truth.from_round(round_)
    attacks = round_.attack_counts()
    say(
        f"round: seed {config.seed}, {len(round_.genres)} genres, rings of {config.ring_size}, "
        f"{len(round_.submissions)} submissions, {round_.outcome_count():,} records "
        f"({attacks['honest']:,} honest votes, {round_.outcome_count() - attacks['honest']} "
        f"hostile), {round_.votes_per_epoch} votes per reviewer and epoch"
    )
    say(f"topics [bold]{prefix}.*[/bold], Postgres schema [bold]{settings.postgres_schema}[/bold]")

    await asyncio.to_thread(ensure_topics, settings, internal=True)
    await migrate(settings)
    worker = WorkerProcess(settings, logs / "worker.log")
    sink = SinkProcess(settings, logs / "sink.log")
    watch = TopicWatch(settings)
    conn = None
    try:
        with (
            console.status("starting a worker and the sink…", spinner="dots")
            if config.live
            else contextlib.nullcontext()
        ):
            sink.start()
            await asyncio.to_thread(worker.start, ready_timeout=120)
            if not sink.alive():
                raise RuntimeError(f"the sink exited early:\n{sink.tail()}")
        say(
            f"worker up (http://127.0.0.1:{settings.web_port}/health, /metrics); "
            f"sink up (metrics on :{settings.metrics_port})"
        )
        watch.start()
        conn = await connect(settings)
        publisher = Publisher(settings)

        # --- control records: rings and submissions (and an unsigned ring) -----------
        await asyncio.to_thread(_publish_phase, publisher, round_.control)
        say(
            f"control: {len(round_.rings)} rings, {len(round_.submissions)} submissions, "
            f"signed by the registrar {publisher_key(settings)}"
        )

        # --- the votes, paced, with the live progress bar ------------------------------
        sent_ms: dict[str, int] = {}
        published_ms: list[int] = []
        # The votes, then the rotation once they are appended, then the late votes once
        # the rotation is: (record, wait for everything before it first).
        sequence = [(p, False) for p in round_.votes]
        for phase in (round_.rotation, round_.late_votes):
            sequence += [(p, n == 0) for n, p in enumerate(phase)]
        to_send = len(sequence)
        total = round_.outcome_count()
        pg_outcomes = 0
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<28}"),
            BarColumn(bar_width=40),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not config.live,
            transient=False,
        )
        with progress:
            t_pub = progress.add_task("publishing votes", total=to_send, rate="")
            t_out = progress.add_task("verified + tallied (topics)", total=total, rate="")
            t_pg = progress.add_task("stored (Postgres)", total=total, rate="")
            start = time.monotonic()
            start_ms = int(time.time() * 1000)
            sent = 0
            last_pg = 0.0
            last_change, last_seen = time.monotonic(), (-1, -1)
            while True:
                now = time.monotonic()
                due = (
                    to_send
                    if not config.rate
                    else min(to_send, int((now - start) * config.rate) + 1)
                )
                while sent < due:
                    planned, barrier = sequence[sent]
                    if barrier:
                        await asyncio.to_thread(_appended, publisher)
                    ms = int(time.time() * 1000)
                    publisher.send(planned)
                    if planned.has_outcome:
                        published_ms.append(ms)
                    if planned.vote_id:  # a slot reuse repeats its original's vote id
                        sent_ms.setdefault(planned.vote_id, ms)
                    sent += 1
                outcomes = watch.outcomes
                if now - last_pg >= 0.5:
                    last_pg = now
                    with contextlib.suppress(Exception):
                        pg_outcomes = (await pg_counts(conn)).outcomes
                elapsed = max(now - start, 1e-6)
                progress.update(t_pub, completed=sent, rate=f"{sent / elapsed:6.0f}/s")
                progress.update(
                    t_out, completed=min(outcomes, total), rate=f"{outcomes / elapsed:6.0f}/s"
                )
                progress.update(t_pg, completed=min(pg_outcomes, total), rate="")
                if (outcomes, pg_outcomes) != last_seen:
                    last_seen, last_change = (outcomes, pg_outcomes), now
                if sent >= to_send and outcomes >= total and pg_outcomes >= outcomes:
                    break
                if sent >= to_send and now - last_change > config.stall_timeout:
                    break  # nothing moves any more: check what is there (and fail)
                if not worker.alive() or not sink.alive():
                    break
                await asyncio.sleep(0.05)
            await asyncio.to_thread(publisher.flush, 60)
            process_seconds = time.monotonic() - start

        # --- the sink must hold the final tallies too ----------------------------------
        topic_view = watch.observed()
        want_versions = sum(t.version for t in topic_view.tallies.values())  # type: ignore[union-attr]
        deadline = time.monotonic() + config.stall_timeout
        while time.monotonic() < deadline:
            counts = await pg_counts(conn)
            if (
                counts.tallies >= len(topic_view.tallies or ())
                and counts.tally_versions >= want_versions
            ):  # type: ignore[arg-type]
                break
            await asyncio.sleep(0.2)
        # The last outputs may still be on their way to the watcher or the sink (a
        # retraction's ballot and tally go to other topics than its rejection): compare
        # until both agree with the ground truth, for at most 15 s more.
        settle_by = time.monotonic() + 15.0
        while True:
            topic_view = watch.observed()
            pg_view = await read_postgres(conn)
            lines = check(truth, pg_view) + check(truth, topic_view)
            if all_match(lines) or time.monotonic() > settle_by:
                break
            if not worker.alive() or not sink.alive():
                break
            await asyncio.sleep(0.5)

        metrics: dict[str, float] = {}
        with contextlib.suppress(Exception):
            w = _scrape(f"http://127.0.0.1:{settings.web_port}/metrics")
            metrics.update({f"worker:{k}": v for k, v in w.items() if k.startswith("ringtally_")})
        with contextlib.suppress(Exception):
            s = _scrape(f"http://127.0.0.1:{settings.metrics_port}/metrics")
            metrics.update({f"sink:{k}": v for k, v in s.items() if k.startswith("ringtally_")})

        genre_of = {sid: sub.genre for sid, sub in round_.submissions.items()}
        decisions: dict[str, Counter[str]] = {g: Counter() for g in round_.genres}
        for sid, genre in genre_of.items():
            view = (pg_view.tallies or {}).get(sid)
            decisions[genre][view.decision if view else "PENDING"] += 1
        with watch.lock:
            latency = [
                (sent_ms[v], ts - sent_ms[v])
                for v, (ts, _) in watch.ballots.items()
                if v in sent_ms
            ]
            outcome_ms = [ts for ts, _ in watch.ballots.values()] + [
                ts for ts, _ in watch.rejections.values()
            ]
        lat_sorted = sorted(lat for _, lat in latency)
        result = DemoResult(
            ok=all_match(lines),
            lines=lines,
            settings=settings,
            seconds=0.0,
            votes=len(round_.all_votes()),
            decisions_by_genre=decisions,
            attacks=attacks,
            metrics=metrics,
            rejections={
                r: (truth.rejections.get(r, 0), (pg_view.rejections or Counter()).get(r, 0))
                for r in sorted(set(truth.rejections) | set(pg_view.rejections or ()))
            },
            latency_ms=(
                lat_sorted[len(lat_sorted) // 2],
                lat_sorted[min(len(lat_sorted) - 1, int(len(lat_sorted) * 0.99))],
            )
            if lat_sorted
            else None,
            votes_per_s=total / process_seconds if process_seconds else 0.0,
            logs=logs,
        )
        if not worker.alive():
            result.ok = False
            result.notes.append(f"the worker died; see {worker.log_path}")
        if not sink.alive():
            result.ok = False
            result.notes.append(f"the sink died; see {sink.log_path}")
        if config.draw_chart:
            from .chart import ChartData, write_chart

            path = config.chart or settings.data_dir / "demo" / f"{prefix}.png"
            verdict = "MATCH" if result.ok else "MISMATCH"
            title = (
                f"ringtally demo {prefix}: {total:,} votes, "
                f"{len(pg_view.ballots or ()):,} ballots, "
                f"{sum((pg_view.rejections or Counter()).values()):,} rejections "
                f"— ground truth {verdict}"
            )
            result.chart = await asyncio.to_thread(
                write_chart,
                ChartData(
                    start_ms=start_ms,
                    published_ms=published_ms,
                    outcome_ms=outcome_ms,
                    latency=latency,
                    decisions_by_genre=decisions,
                    title=title,
                ),
                path,
            )
            latest = path.parent / "latest.png"
            with contextlib.suppress(OSError):
                shutil.copyfile(path, latest)
    finally:
        watch.stop()
        if conn is not None:
            await conn.close()
        worker.stop()
        sink.stop()
        if (
            settings.table_store == "rocksdb"
        ):  # the worker's local state; the changelogs stay in Kafka
            shutil.rmtree(
                settings.data_dir / "workers" / f"{settings.group_id}-{settings.web_port}",
                ignore_errors=True,
            )
    result.seconds = time.monotonic() - started
    return result


def _appended(publisher: Any) -> None:
    """Everything sent so far is appended, and the clock is past its broker time: what
    is sent next is appended after it (the rotation after the votes before it)."""
    publisher.flush(60)
    publisher.wait_clock_past(publisher.last_appended_ms())


def _publish_phase(publisher: Any, records: list[Any]) -> None:
    publisher.send_all(records)
    _appended(publisher)


def publisher_key(settings: Settings) -> str:
    """The trusted registrar key, shortened for the screen."""
    return settings.registrar_public_keys[:16] + "…"


# --- printing ---------------------------------------------------------------------------


def render(result: DemoResult, console: Console) -> None:
    """The tally table, rejections by reason, the ground-truth check and the verdict."""
    decisions = ("APPROVED", "REJECTED", "ESCALATED", "PENDING")
    table = Table(title="Decisions by genre (Postgres)", title_justify="left")
    table.add_column("genre")
    for d in decisions:
        table.add_column(d.lower(), justify="right")
    table.add_column("submissions", justify="right")
    totals: Counter[str] = Counter()
    for genre, counts in sorted(result.decisions_by_genre.items()):
        totals.update(counts)
        table.add_row(genre, *(str(counts.get(d, 0)) for d in decisions), str(sum(counts.values())))
    table.add_section()
    table.add_row(
        "[bold]all",
        *(f"[bold]{totals.get(d, 0)}" for d in decisions),
        f"[bold]{sum(totals.values())}",
    )
    console.print(table)

    table = Table(title="Rejections by reason", title_justify="left")
    for col, just in (
        ("reason", "left"),
        ("expected", "right"),
        ("Postgres", "right"),
        ("", "left"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for reason, (want, got) in result.rejections.items():
        table.add_row(
            reason, str(want), str(got), "[green]MATCH" if want == got else "[red]MISMATCH"
        )
    console.print(table)

    table = Table(title="Every number against the simulation's ground truth", title_justify="left")
    for col, just in (
        ("source", "left"),
        ("check", "left"),
        ("expected", "right"),
        ("observed", "right"),
        ("", "left"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    source = None
    for line in result.lines:
        if source is not None and line.source != source:
            table.add_section()
        source = line.source
        verdict = "[green]MATCH" if line.ok else "[bold red]MISMATCH"
        table.add_row(line.source, line.what, line.expected, line.observed, verdict)
        for detail in line.details:
            table.add_row("", f"[red]  {detail}", "", "", "")
    console.print(table)

    m = result.metrics
    if m:
        rej = sum(v for k, v in m.items() if k.startswith("worker:ringtally_rejections_total"))
        console.print(
            "metrics: worker votes_in {:,.0f}, ballots {:,.0f}, rejections {:,.0f}; "
            "sink rows {:,.0f}, sink lag {:,.0f}".format(
                m.get("worker:ringtally_votes_in_total", 0),
                m.get("worker:ringtally_ballots_total", 0),
                rej,
                m.get("sink:ringtally_sink_rows_total", 0),
                m.get("sink:ringtally_sink_lag_overall", 0),
            )
        )
    lat = (
        f", produce→ballot p50 {result.latency_ms[0]:.0f} ms / p99 {result.latency_ms[1]:.0f} ms"
        if result.latency_ms
        else ""
    )
    console.print(f"throughput {result.votes_per_s:,.0f} votes/s (paced publishing){lat}")
    for note in result.notes:
        console.print(f"[red]{note}")
    if result.chart:
        console.print(f"chart: [bold]{result.chart}[/bold]")
    s = result.settings
    console.print(
        f"kept for inspection: topics {s.topic_prefix}.*, schema {s.postgres_schema} "
        f"(replay it: RINGTALLY_TOPIC_PREFIX={s.topic_prefix} "
        f"RINGTALLY_POSTGRES_SCHEMA={s.postgres_schema} "
        f".venv/bin/ringtally replay); logs in {result.logs}"
    )
    if result.ok:
        console.print(
            f"[bold green]MATCH[/bold green]: every number agrees with the ground truth "
            f"({len(result.lines)} checks, {result.seconds:.0f} s)"
        )
    else:
        bad = sum(not line.ok for line in result.lines)
        console.print(
            f"[bold red]MISMATCH[/bold red]: {bad} of {len(result.lines)} checks disagree "
            f"with the ground truth ({result.seconds:.0f} s)"
        )
