"""``ringtally stack up --brokers 3``: a KRaft cluster of three nodes on one host.

Pure tests of the nodes' configuration and of the stack's bookkeeping, then a
real three-broker cluster in a throw-away data dir on free ports (shared jar
cache only): replication factor 3 with ``min.insync.replicas=2``, writes with
``acks=all`` going on while one broker is SIGKILLed, and ``status``/``down``
finding every node without being told how many there are.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors.cli.stack import stack as stack_cli
from connectors.stack import LocalStack, StackError
from connectors.stack.kafka.cluster import KafkaNode, recorded_brokers
from connectors.stack.process import port_free
from streams.settings import Settings
from tests.test_stack import PROJECT_CACHE, free_ports, processes_mentioning


def _settings(data_dir: Path, bootstrap: str = "127.0.0.1:29092", controller: int = 29093):
    return Settings(data_dir=data_dir, kafka_bootstrap=bootstrap, kafka_controller_port=controller)


def _props(node: KafkaNode) -> dict[str, str]:
    text = node.server_properties(node.data_dir)
    return dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))


def test_three_nodes_form_one_quorum_with_rf3_and_min_isr_2(tmp_path: Path) -> None:
    local = LocalStack(_settings(tmp_path), brokers=3)
    assert local.kafka_nodes == ["kafka", "kafka-2", "kafka-3"]
    nodes = [local.services[n] for n in local.kafka_nodes]
    assert [n.ports for n in nodes] == [[29092, 29093], [29094, 29095], [29096, 29097]]
    assert len({n.dir for n in nodes}) == len({n.pid_file for n in nodes}) == 3
    voters = "1@127.0.0.1:29093,2@127.0.0.1:29095,3@127.0.0.1:29097"
    for i, node in enumerate(nodes, 1):
        props = _props(node)  # type: ignore[arg-type]
        assert props["node.id"] == str(i)
        assert props["controller.quorum.voters"] == voters
        assert props["listeners"] == (
            f"PLAINTEXT://127.0.0.1:{node.ports[0]},CONTROLLER://127.0.0.1:{node.ports[1]}"
        )
        for key in (
            "default.replication.factor",
            "offsets.topic.replication.factor",
            "transaction.state.log.replication.factor",
        ):
            assert props[key] == "3", key
        assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"


def test_listed_bootstrap_addresses_are_the_nodes_ports(tmp_path: Path) -> None:
    s = _settings(tmp_path, "127.0.0.1:31001,127.0.0.1:31555,127.0.0.1:31999", 32001)
    local = LocalStack(s, brokers=3)
    assert [local.services[n].ports for n in local.kafka_nodes] == [
        [31001, 32001],
        [31555, 32003],
        [31999, 32005],
    ]


def test_selecting_kafka_means_every_node_and_the_count_is_remembered(tmp_path: Path) -> None:
    local = LocalStack(_settings(tmp_path), brokers=3)
    assert [s.name for s in local.select(["kafka"])] == ["kafka", "kafka-2", "kafka-3"]
    assert [s.name for s in local.select()][-2:] == ["postgres", "redis"]
    # what `up` records; `status` and `down` (no --brokers) then see all three nodes
    (local.paths.piece_dir("kafka")).mkdir(parents=True)
    (local.paths.piece_dir("kafka") / "brokers").write_text("3\n")
    assert recorded_brokers(local.paths) == 3
    assert LocalStack(_settings(tmp_path)).kafka_nodes == ["kafka", "kafka-2", "kafka-3"]


def test_another_broker_count_on_formatted_data_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    single = tmp_path / "stack" / "kafka" / "data"
    single.mkdir(parents=True)
    node1 = LocalStack(settings, brokers=3).services["kafka"]
    with pytest.raises(StackError, match="single-broker cluster") as err:
        node1.prepare(lambda piece, message: None)
    assert "down --purge" in str(err.value)
    (tmp_path / "stack" / "kafka" / "brokers").write_text("3\n")
    for other in (1, 5):
        with pytest.raises(StackError, match="formatted with 3 broker"):
            LocalStack(settings, brokers=other)


def test_a_bad_broker_count_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(stack_cli, ["up", "--brokers", "9"])
    assert result.exit_code == 2
    assert "--brokers" in result.output and "Traceback" not in result.output


# --- a real cluster ----------------------------------------------------------------


@pytest.fixture
def cluster_stack() -> Iterator[LocalStack]:
    """Three Kafka nodes in a throw-away dir on free ports, always torn down."""
    if not (PROJECT_CACHE / "kafka-4.3.1" / "libs").is_dir() and not list(
        PROJECT_CACHE.glob("kafka-*/libs")
    ):
        pytest.skip("needs the local stack's Kafka jars (make deps)")
    data_dir = Path(tempfile.mkdtemp(prefix="rt-brokers-"))
    ports = free_ports(3)
    while True:
        base = free_ports(1)[0]
        if all(
            port_free("127.0.0.1", base + 2 * i) and base + 2 * i not in ports for i in range(3)
        ):
            break
    settings = Settings(
        data_dir=data_dir,
        kafka_bootstrap=",".join(f"127.0.0.1:{p}" for p in ports),
        kafka_controller_port=base,
        partitions=3,
    )
    local = LocalStack(settings, cache_dir=PROJECT_CACHE, brokers=3)
    try:
        yield local
    finally:
        try:
            local.down(["kafka"])
        finally:
            for pid in processes_mentioning(str(local.paths.stack_dir)):
                os.kill(pid, 9)  # only processes carrying this test's own temp path
            shutil.rmtree(data_dir, ignore_errors=True)


def _produce(bootstrap: str, topic: str, n: int) -> None:
    from confluent_kafka import Producer

    errors: list[str] = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(n):
        p.produce(
            topic, key=str(i), value=b"x", on_delivery=lambda e, m: e and errors.append(str(e))
        )
    assert p.flush(60) == 0, "records not acknowledged"
    assert not errors, errors[:3]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_three_brokers_replicate_and_survive_one_sigkill(cluster_stack: LocalStack) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic

    from streams.topics import ensure_topics

    local = cluster_stack
    results = local.up(["kafka"], timeout=180)
    assert sorted(results) == ["kafka", "kafka-2", "kafka-3"]
    bootstrap = local.settings.kafka_bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = f"brokers-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, num_partitions=3)])[topic].result(60)  # broker defaults
    deadline = time.monotonic() + 60  # the new topic's metadata reaches every broker
    while True:
        meta = admin.list_topics(topic, timeout=30).topics[topic]
        if len(meta.partitions) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(len(p.replicas) for p in meta.partitions.values()) == [3, 3, 3]
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    config = admin.describe_configs([resource])[resource].result(30)
    assert config["min.insync.replicas"].value == "2"
    _produce(bootstrap, topic, 100)
    # ensure_topics sets min.insync.replicas on each topic itself (a production broker's
    # default is 1): fails on the code before, where the value came from the broker.
    replicated = local.settings.model_copy(
        update={"replication_factor": 3, "topic_prefix": f"rf3-{uuid.uuid4().hex[:6]}"}
    )
    ensure_topics(replicated, ["votes", "ballots"], internal=True)
    for name in (
        replicated.topic("votes"),
        replicated.topic("ballots"),
        replicated.group_id + "-tokens-changelog",
    ):
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        entry = admin.describe_configs([resource])[resource].result(30)["min.insync.replicas"]
        assert (entry.value, entry.source) == ("2", ConfigSource.DYNAMIC_TOPIC_CONFIG.value), name

    victim = local.services["kafka-2"]
    record = victim.running_record()
    assert record is not None
    os.kill(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while victim.status().state != "stopped" and time.monotonic() < deadline:
        time.sleep(0.5)
    _produce(bootstrap, topic, 100)  # two of three in sync: acks=all still succeeds
    victim.up(timeout=120)

    # A stack object that is not told the count (as `status` and `down` are) sees all three.
    fresh = LocalStack(local.settings, cache_dir=PROJECT_CACHE)
    rows = fresh.status()
    assert [r.piece for r in rows if r.piece.startswith("kafka")] == ["kafka", "kafka-2", "kafka-3"]
    assert all(r.healthy for r in rows if r.piece.startswith("kafka"))
    stopped = fresh.down(["kafka"])
    assert sorted(stopped) == ["kafka", "kafka-2", "kafka-3"]
    assert processes_mentioning(str(local.paths.stack_dir)) == []
