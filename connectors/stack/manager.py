"""``LocalStack``: Kafka, PostgreSQL and Redis as plain processes on 127.0.0.1.

The development and test stack for machines without a container engine. All
state lives under ``settings.data_dir`` (the project's ``.ringtally``, found
the same way from any directory of it: docs/configuration.md); ports and
credentials come from the same :class:`streams.settings.Settings` the workers
read, so ``stack up`` starts exactly what the app will connect to.

The pieces start and stop in parallel (a cold Kafka spends most of its time
in Maven and the JVM, PostgreSQL in initdb); ``up`` and ``down`` hold a file
lock so two of them (say, two test sessions) never race to spawn servers.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .errors import StackError
from .kafka import KafkaService, run_kafka_tool
from .kafka.cluster import KafkaNode, node_name, recorded_brokers
from .kafka.secure import SecureKafkaService
from .paths import ALL_PIECES, PIECES, SECURE, StackPaths
from .postgres import PostgresService
from .process import file_lock
from .redis import RedisService
from .service import PieceStatus, Report, Service, StartResult

__all__ = ["LocalStack"]

_SERVICES: dict[str, type[Service]] = {
    "kafka": KafkaService,
    "postgres": PostgresService,
    "redis": RedisService,
    SECURE: SecureKafkaService,
}


def _quiet(piece: str, message: str) -> None:
    return None


class LocalStack:
    """Start, stop and inspect the local Kafka/PostgreSQL/Redis processes.

    ``settings`` defaults to :func:`streams.settings.get_settings`;
    ``cache_dir`` (default ``<data_dir>/cache``) lets a throw-away stack reuse
    the project's downloaded Kafka jars. ``brokers`` > 1 makes Kafka a KRaft
    cluster of that many nodes (``kafka``, ``kafka-2``, ...: kafka/cluster.py);
    by default, the count the stack was formatted with.
    """

    def __init__(
        self,
        settings: object | None = None,
        *,
        cache_dir: Path | None = None,
        brokers: int | None = None,
    ) -> None:
        if settings is None:
            from streams.settings import get_settings

            settings = get_settings()
        self.settings = settings
        self.paths = StackPaths.for_data_dir(settings.data_dir, cache_dir)
        self._cancel = threading.Event()
        self.services: dict[str, Service] = {
            name: cls(settings, self.paths, self._cancel) for name, cls in _SERVICES.items()
        }
        recorded = recorded_brokers(self.paths)
        if brokers and recorded and brokers != recorded:
            raise StackError(
                "kafka",
                f"the stack's Kafka was formatted with {recorded} broker(s), not {brokers}",
                fix="run 'ringtally stack down --purge' first (its topics are lost), or keep "
                f"--brokers {recorded}",
            )
        self.brokers = brokers or recorded or 1
        self.kafka_nodes: list[str] = ["kafka"]
        if self.brokers > 1:
            self.kafka_nodes = [node_name(n) for n in range(1, self.brokers + 1)]
            for n, name in enumerate(self.kafka_nodes, 1):
                self.services[name] = KafkaNode(
                    settings, self.paths, self._cancel, node=n, brokers=self.brokers
                )

    # --- addresses (what clients use) -----------------------------------------

    @property
    def kafka_bootstrap(self) -> str:
        return self.settings.kafka_bootstrap

    @property
    def postgres_dsn(self) -> str:
        return self.settings.postgres_dsn

    @property
    def redis_url(self) -> str:
        return self.settings.redis_url

    def log_file(self, piece: str) -> Path:
        return self.select([piece])[0].log_file

    # --- commands -------------------------------------------------------------

    def select(self, pieces: Iterable[str] | None = None, *, up: bool = False) -> list[Service]:
        """The services named (when ``pieces`` is empty/None: the plain three, in start
        order, and for anything but ``up`` the secured broker once it has a directory)."""
        names = list(pieces or ())
        if not names and not up and self.services[SECURE].dir.exists():
            names = list(ALL_PIECES)
        unknown = [n for n in names if n not in self.services]
        if unknown:
            raise StackError(
                "stack",
                f"unknown piece {', '.join(unknown)}",
                fix=f"choose from {', '.join(ALL_PIECES)}",
            )
        return self._with_kafka_nodes(
            [self.services[n] for n in ALL_PIECES if n in names or (not names and n in PIECES)]
        )

    def _with_kafka_nodes(self, services: list[Service]) -> list[Service]:
        """A selected ``kafka`` stands for every node of a multi-broker cluster."""
        out: list[Service] = []
        for s in services:
            out += [self.services[n] for n in self.kafka_nodes] if s.name == "kafka" else [s]
        return out

    def up(
        self,
        pieces: Sequence[str] | None = None,
        *,
        timeout: float | None = None,
        report: Report | None = None,
    ) -> dict[str, StartResult]:
        """Make the pieces healthy (starting only what is not running).

        Raises StackError naming every piece that failed; the others are left
        running, so a retry after the fix only restarts what is missing.
        """
        services = self.select(pieces, up=True)
        report = _locked(report or _quiet)
        self.paths.ensure()
        self._cancel.clear()
        with file_lock(self.paths.lock_file):
            results = _parallel(services, lambda s: _up_one(s, report, timeout), self._cancel)
        return results

    def down(
        self,
        pieces: Sequence[str] | None = None,
        *,
        purge: bool = False,
        report: Report | None = None,
    ) -> dict[str, str]:
        """Stop the pieces this stack started; with ``purge`` also delete their data.

        The Kafka jar cache is kept (it is not the stack's state).
        """
        services = self.select(pieces)
        report = _locked(report or _quiet)
        self.paths.check()
        if not self.paths.stack_dir.exists():
            return {s.name: "not running" for s in services}
        with file_lock(self.paths.lock_file):
            results = _parallel(services, lambda s: s.down(report))
            if purge:
                for s in services:
                    s.purge()
                    results[s.name] += "; data deleted"
        return results

    def status(self, pieces: Sequence[str] | None = None) -> list[PieceStatus]:
        """Each piece's port, PID and health (probes run in parallel)."""
        services = self.select(pieces)
        by_name = _parallel(services, lambda s: s.status())
        return [by_name[s.name] for s in services]

    def healthy(self, pieces: Sequence[str] | None = None) -> bool:
        try:
            return all(st.healthy for st in self.status(pieces))
        except StackError:
            return False

    def run_kafka_tool(
        self,
        main_class: str,
        args: Sequence[str],
        input: bytes | None = None,  # noqa: A002
        timeout: float = 120.0,
        *,
        check: bool = False,
    ) -> subprocess.CompletedProcess[bytes]:
        """:func:`connectors.stack.kafka.run_kafka_tool` with this stack's settings and jars."""
        return run_kafka_tool(
            main_class,
            args,
            input,
            timeout,
            settings=self.settings,
            cache_dir=self.paths.cache_dir,
            check=check,
        )


def _fut_wait(fut) -> None:  # noqa: ANN001
    """Wait in short slices: a blocking result() would not see Ctrl-C promptly."""
    try:
        fut.result(timeout=0.2)
    except Exception:  # noqa: BLE001 - outcome read below
        return


def _up_one(service: Service, report: Report, timeout: float | None) -> StartResult:
    result = service.up(report, timeout)
    report(service.name, f"healthy ({result.action}, pid {result.pid})")
    return result


def _locked(report: Report) -> Report:
    lock = threading.Lock()

    def call(piece: str, message: str) -> None:
        with lock:
            report(piece, message)

    return call


def _parallel(services: list[Service], fn, cancel: threading.Event | None = None):  # noqa: ANN001, ANN202
    """Run ``fn`` for each service in threads; StackErrors from all pieces are gathered.

    On Ctrl-C, ``cancel`` tells the threads' wait loops to give up, so the
    interrupt is not held up by a health wait of a minute or more.
    """
    results: dict[str, object] = {}
    errors: list[StackError] = []
    if not services:
        return results
    with ThreadPoolExecutor(max_workers=len(services), thread_name_prefix="stack") as pool:
        futures = {s.name: (s, pool.submit(fn, s)) for s in services}
        try:
            for _, fut in futures.values():
                while not fut.done():
                    _fut_wait(fut)
        except KeyboardInterrupt:
            if cancel is not None:
                cancel.set()
            raise
        for name, (service, fut) in futures.items():
            try:
                results[name] = fut.result()
            except StackError as exc:
                errors.append(exc)
            except Exception as exc:  # noqa: BLE001 - shown as one line, cause kept
                err = StackError(
                    name, f"unexpected {type(exc).__name__}: {exc}", log_file=service.log_file
                )
                err.__cause__ = exc
                errors.append(err)
    if errors:
        raise StackError.group(errors)
    return results
