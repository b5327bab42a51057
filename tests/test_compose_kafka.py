"""The compose file's Kafka, run without Docker: its own scripts as plain processes.

docker/kafka/tls-init.sh, start.sh and setup.sh are what the compose services
``kafka-tls-init``, ``kafka`` and ``kafka-setup`` run. Here they run on this
machine with the local stack's Kafka jars and JDK, only paths and ports
rewritten (and the host name ``kafka``, which resolves only on the compose
network, replaced by the HOST listener's address), to show that the broker
starts with SASL_SSL and SCRAM-SHA-512, verifies as host ``127.0.0.1`` with
the generated CA, refuses a wrong password, lets the ``ringtally`` user use
only ``ringtally``-prefixed topics and groups, and passes the compose
healthcheck's own command. Skipped where the JDK or the jars are missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.stack.binaries import find_java
from connectors.stack.errors import StackError
from connectors.stack.kafka.jars import libs_dir, libs_ready
from connectors.stack.paths import StackPaths
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "docker" / "kafka"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
PASSWORDS = {
    "KAFKA_KEYSTORE_PASSWORD": "keystore-test-pw",
    "KAFKA_ADMIN_PASSWORD": "admin-test-pw",
    "KAFKA_RINGTALLY_PASSWORD": "ringtally-test-pw",
}


def _java_and_libs() -> tuple[Path, Path] | None:
    cache = StackPaths.for_data_dir(Settings().data_dir).cache_dir
    try:
        java = find_java()
    except StackError:
        return None
    ready = libs_ready(cache) and shutil.which("keytool") is not None
    return (java, libs_dir(cache)) if ready else None


pytestmark = pytest.mark.skipif(
    _java_and_libs() is None,
    reason="no JDK, keytool or Kafka jars (ringtally stack up fetches the jars)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, root: Path) -> None:
        java, libs = _java_and_libs()  # type: ignore[misc]
        self.root, self.host_port = root, _free_port()
        self.run = f"{java} -Xmx256m -XX:+UseSerialGC -cp '{libs}/*'"
        controller, internal = _free_port(), _free_port()
        self.rewrites = {
            "/tls/": f"{root}/tls/",
            "/var/lib/kafka": f"{root}/kafka",
            "localhost:9093": f"localhost:{controller}",
            "INTERNAL://:9094": f"INTERNAL://127.0.0.1:{internal}",
            "HOST://:9095": f"HOST://127.0.0.1:{self.host_port}",
            "kafka:9094": f"127.0.0.1:{self.host_port}",
            "/opt/kafka/bin/kafka-storage.sh": f"{self.run} kafka.tools.StorageTool",
            "/opt/kafka/bin/kafka-acls.sh": f"{self.run} org.apache.kafka.tools.AclCommand",
            "exec /opt/kafka/bin/kafka-server-start.sh": f"exec {self.run} kafka.Kafka",
            "/opt/kafka/bin/kafka-broker-api-versions.sh": (
                f"{self.run} org.apache.kafka.tools.BrokerApiVersionsCommand"
            ),
            "chown -R appuser:appuser": "true",
        }
        for sub in ("tls/ca", "tls/broker", "tls/public", "kafka/data"):
            (root / sub).mkdir(parents=True)
        self.env = {**os.environ, **PASSWORDS, "KAFKA_HOST_PORT": str(self.host_port)}
        self.process: subprocess.Popen | None = None

    def rewrite(self, text: str) -> str:
        for old, new in self.rewrites.items():
            text = text.replace(old, new)
        return text

    def script(self, name: str) -> Path:
        path = self.root / name
        path.write_text(self.rewrite((SCRIPTS / name).read_text()))
        return path

    def client(self, user: str = "ringtally", password: str | None = None) -> dict:
        return {
            "bootstrap.servers": f"127.0.0.1:{self.host_port}",
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": user,
            "sasl.password": password or PASSWORDS[f"KAFKA_{user.upper()}_PASSWORD"],
            "ssl.ca.location": str(self.root / "tls/public/ca.pem"),
            "ssl.endpoint.identification.algorithm": "https",
            "log_level": 0,
        }

    def start(self) -> None:
        subprocess.run(
            ["sh", self.script("tls-init.sh")], env=self.env, check=True, capture_output=True
        )
        log = (self.root / "broker.log").open("w")
        self.process = subprocess.Popen(
            ["bash", self.script("start.sh")],
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        admin = AdminClient(self.client("admin"))
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, (self.root / "broker.log").read_text()[-2000:]
            try:
                admin.list_topics(timeout=5)
                break
            except KafkaException:
                assert time.monotonic() < deadline, "the broker did not answer in 120 s"
                time.sleep(0.5)
        subprocess.run(
            ["bash", self.script("setup.sh")], env=self.env, check=True, capture_output=True
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("compose-kafka"))
    try:
        b.start()
        yield b
    finally:
        b.stop()


def test_the_ringtally_user_uses_its_own_topics_and_groups_only(broker):
    admin = AdminClient(broker.client())
    topic = "ringtally.votes"
    config = {"message.timestamp.type": "LogAppendTime", "retention.ms": "-1"}
    admin.create_topics([NewTopic(topic, 2, 1, config=config)])[topic].result(30)
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        admin.create_topics([NewTopic("elsewhere.topic", 1, 1)])["elsewhere.topic"].result(30)

    producer = Producer({**broker.client(), "enable.idempotence": True})
    producer.produce(topic, key=b"tag", value=b"{}")
    assert producer.flush(30) == 0
    consumer = Consumer(
        {**broker.client(), "group.id": "ringtally-compose-test", "auto.offset.reset": "earliest"}
    )
    try:
        consumer.subscribe([topic])
        deadline, message = time.monotonic() + 60, None
        while message is None and time.monotonic() < deadline:
            polled = consumer.poll(1)
            message = polled if polled is not None and polled.error() is None else None
        assert message is not None and message.value() == b"{}"
        consumer.commit(message=message, asynchronous=False)
    finally:
        consumer.close()


def test_a_wrong_password_is_refused(broker):
    admin = AdminClient(broker.client(password="not-the-password"))
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=10)


def test_the_compose_healthcheck_command_passes(broker):
    check = COMPOSE["services"]["kafka"]["healthcheck"]
    command = broker.rewrite(" ".join(check["test"][1:]))
    # Compose retries a failing check (`retries`); a JVM client on a loaded machine can miss
    # its own request timeout once (CI: "Request METADATA failed"). So does this test.
    for _attempt in range(int(check.get("retries", 3)) + 1):
        result = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
        if result.returncode == 0:
            break
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"127.0.0.1:{broker.host_port} (id: 1" in result.stdout
