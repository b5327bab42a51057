"""A KRaft cluster of N brokers on one host (``ringtally stack up --brokers 3``).

Each node is a :class:`KafkaService` of its own (directory, PID file, log,
ports) running broker and controller in one JVM; the N controllers form the
quorum (static voters), so the cluster keeps working with one node down.
Every topic defaults to replication factor N (at most 3) with
``min.insync.replicas`` = RF - 1, so an ``acks=all`` write survives the loss of
one broker and is refused rather than kept on a single copy.

Ports: node 1 uses the settings' broker and controller ports; node ``i`` the
``i``-th address of ``kafka_bootstrap`` when it lists that many, else the
broker port + 2(i-1), and the controller port + 2(i-1) (defaults: 19092/19093,
19094/19095, 19096/19097). All nodes share one cluster id, kept in node 1's
``cluster.id``. The number of brokers a stack was formatted with is recorded
(``<stack>/kafka/brokers``); changing it needs ``stack down --purge``.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ..errors import StackError
from ..paths import StackPaths
from ..service import LOOPBACK, Report
from .broker import KafkaService, new_cluster_id, parse_bootstrap, read_properties

__all__ = ["KafkaNode", "node_name", "recorded_brokers"]

#: Largest cluster ``stack up --brokers`` makes (a 2-core development box).
MAX_BROKERS = 5
_cluster_id_lock = threading.Lock()


def node_name(node: int) -> str:
    """The stack piece of node ``node``: ``kafka`` for node 1, ``kafka-2``, ``kafka-3``..."""
    return "kafka" if node == 1 else f"kafka-{node}"


def brokers_file(paths: StackPaths) -> Path:
    return paths.piece_dir("kafka") / "brokers"


def recorded_brokers(paths: StackPaths) -> int | None:
    """The broker count the stack was formatted with (None: never recorded, one broker)."""
    try:
        return int(brokers_file(paths).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


class KafkaNode(KafkaService):
    """Node ``node`` of a ``brokers``-node KRaft cluster (broker and controller)."""

    def __init__(
        self,
        settings: object,
        paths: StackPaths,
        cancel: threading.Event | None = None,
        *,
        node: int,
        brokers: int,
    ) -> None:
        if not 2 <= brokers <= MAX_BROKERS or not 1 <= node <= brokers:
            raise StackError(
                "kafka",
                f"a cluster of {brokers} brokers (node {node}) is not supported",
                fix=f"choose --brokers between 1 and {MAX_BROKERS}",
            )
        self.node, self.brokers = node, brokers
        self.name = node_name(node)  # type: ignore[misc] - one piece per node
        super().__init__(settings, paths, cancel)

    # --- ports ------------------------------------------------------------

    def _broker_port_of(self, node: int) -> int:
        listed = [a for a in self.settings.kafka_bootstrap.split(",") if a.strip()]
        if len(listed) >= node:
            host, port = parse_bootstrap(listed[node - 1])
            self._require_local(host, "kafka_bootstrap")
            return port
        return parse_bootstrap(listed[0])[1] + 2 * (node - 1)

    def _controller_port_of(self, node: int) -> int:
        return int(self.settings.kafka_controller_port) + 2 * (node - 1)

    @property
    def broker_port(self) -> int:
        return self._broker_port_of(self.node)

    @property
    def controller_port(self) -> int:
        return self._controller_port_of(self.node)

    # --- configuration ----------------------------------------------------

    def server_properties(self, log_dir: Path) -> str:
        """The single node's configuration, made a cluster member: node id, voters, RF."""
        text = super().server_properties(log_dir)
        head = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
        props: dict[str, object] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                props[key] = value
        rf = min(self.brokers, 3)
        isr = max(1, rf - 1)
        voters = ",".join(
            f"{n}@{LOOPBACK}:{self._controller_port_of(n)}" for n in range(1, self.brokers + 1)
        )
        props.update(
            {
                "node.id": self.node,
                "controller.quorum.voters": voters,
                "offsets.topic.replication.factor": rf,
                "transaction.state.log.replication.factor": rf,
                "transaction.state.log.min.isr": isr,
                "share.coordinator.state.topic.replication.factor": rf,
                "share.coordinator.state.topic.min.isr": isr,
                "default.replication.factor": rf,
                "min.insync.replicas": isr,
                # a replica that fell behind during a broker's absence rejoins the ISR fast
                "replica.lag.time.max.ms": 10000,
            }
        )
        return head + "".join(f"{k}={v}\n" for k, v in props.items())

    # --- storage ----------------------------------------------------------

    def prepare(self, report: Report) -> None:
        recorded = recorded_brokers(self.paths)
        if recorded is None and self.node == 1 and (self.dir / "data").exists():
            raise StackError(
                "kafka",
                "the stack's Kafka holds a single-broker cluster",
                fix="run 'ringtally stack down --purge' first (its topics are lost)",
            )
        super().prepare(report)
        brokers_file(self.paths).parent.mkdir(parents=True, exist_ok=True)
        brokers_file(self.paths).write_text(f"{self.brokers}\n")

    def new_cluster_id(self) -> str:
        """The cluster's one id (every node formats with it), kept in node 1's dir."""
        shared = self.paths.piece_dir("kafka") / "cluster.id"
        with _cluster_id_lock:
            if not shared.exists():
                shared.parent.mkdir(parents=True, exist_ok=True)
                shared.write_text(new_cluster_id() + "\n")
            return shared.read_text().strip()

    def validate_data_dir(self) -> None:
        """The node's own data dir: whole, this node's id, the cluster's id."""
        meta = self.data_dir / "meta.properties"
        fix = "run 'ringtally stack down --purge', then 'stack up --brokers N' formats afresh"
        try:
            props = read_properties(meta)
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            raise StackError("kafka", f"corrupt data dir {self.data_dir}: {exc}", fix=fix) from None
        shared = (self.paths.piece_dir("kafka") / "cluster.id").read_text().strip()
        if props.get("node.id") != str(self.node) or props.get("cluster.id") != shared:
            raise StackError(
                "kafka",
                f"data dir {self.data_dir} is node {props.get('node.id')} of cluster "
                f"{props.get('cluster.id')}, not node {self.node} of {shared}",
                fix=fix,
            )
