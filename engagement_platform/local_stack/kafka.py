"""Apache Kafka, one node in KRaft combined mode (broker + controller), from Maven Central jars.

The log dir ``EP_HOME/kafka/data`` is formatted once (``kafka-storage format``) and reused,
so topics, their data and committed consumer offsets survive `stack down`/`up` and a
``kill -9`` (the broker recovers its logs on start). Topics are never auto-created: the
code that owns a topic creates it with its partitions and retention (``streaming/topics.py``).
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient

from engagement_platform.kafka_config import client_config
from engagement_platform.local_stack import jvm
from engagement_platform.local_stack.service import Service

# INFO only where a line says something a user needs: start, stop, topics, log recovery.
LOGGERS = {
    "kafka.server.KafkaRaftServer": "INFO",
    "kafka.Kafka$": "INFO",
}


def new_cluster_id() -> str:
    """A random Kafka UUID in its base64 form, never starting with '-': StorageTool would read
    ``--cluster-id -x…`` as an option and refuse to format (one stack start in 64 failed so),
    which is why Kafka's own ``Uuid.randomUuid()`` draws again in that case too."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaService(Service):
    name = "kafka"
    start_timeout = 90.0  # a JVM; log recovery after a kill -9 adds a little

    @property
    def endpoint(self) -> str:
        return self.settings.kafka_bootstrap_servers

    def server_properties(self, data_dir: Path) -> dict[str, object]:
        s = self.settings
        controller = f"127.0.0.1:{s.kafka_controller_port}"
        return {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@{controller}",
            "listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": data_dir,
            "auto.create.topics.enable": "false",
            "num.partitions": s.topic_partitions,
            "default.replication.factor": 1,
            # one node: every internal topic has one replica
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            # bounded disk for anything created without explicit retention
            "log.retention.ms": s.topic_retention_ms,
            "log.retention.bytes": s.topic_retention_bytes,
            "log.segment.bytes": 64 * 1024 * 1024,
            "log.retention.check.interval.ms": 60_000,
            "num.network.threads": 2,
            "num.io.threads": 4,
        }

    def argv(self, data_dir: Path) -> list[str]:
        service_dir = data_dir.parent
        return jvm.java_argv(
            self.settings,
            "kafka.Kafka",
            [str(service_dir / "server.properties")],
            heap_opts=self.settings.kafka_heap_opts,
            log4j_config=service_dir / "log4j2.properties",
            aot=jvm.prepared_aot(self.settings, self.name, self.settings.kafka_heap_opts),
        )

    def prepare(self, data_dir: Path) -> None:
        super().prepare(data_dir)
        service_dir = data_dir.parent
        config = service_dir / "server.properties"
        jvm.write_properties(config, self.server_properties(data_dir))
        jvm.write_log4j2(service_dir / "log4j2.properties", LOGGERS)
        if (data_dir / "meta.properties").exists():
            return
        cluster_id = new_cluster_id()
        result = subprocess.run(
            jvm.java_argv(
                self.settings,
                "kafka.tools.StorageTool",
                ["format", "--cluster-id", cluster_id, "--config", str(config)],
                heap_opts="-Xmx256m",
                log4j_config=service_dir / "log4j2.properties",
            ),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"formatting the Kafka log dir failed: {(result.stderr or result.stdout).strip()}"
            )

    def healthy(self) -> bool:
        admin = AdminClient(
            client_config(
                f"127.0.0.1:{self.settings.kafka_port}",
                extra={
                    "socket.connection.setup.timeout.ms": 2000,
                    "log_level": 0,  # a down broker is an answer here, not an error to print
                },
            )
        )
        try:
            admin.list_topics(timeout=2)
        except Exception:  # noqa: BLE001 - KafkaException or timeout: not healthy
            return False
        return True
