"""Apache Kafka in KRaft combined mode (each node a broker and a controller), from Maven Central jars.

``KAFKA_BROKERS`` nodes run on loopback: node 1 is the service ``kafka`` (``EP_HOME/kafka/``),
node n ``kafka-n``, on node 1's ports + ``PORT_STRIDE``·(n-1). With three nodes the three
controllers form a static voter quorum, so any one node may be lost. Combined nodes are fine
on one machine; Kafka advises dedicated controllers in production (docs/deploying.md).

Each log dir is formatted once (``kafka-storage format``, one cluster id shared by every node)
and reused, so topics, their data and committed consumer offsets survive `stack down`/`up` and
a ``kill -9`` (the broker recovers its logs on start). Topics are never auto-created: the code
that owns a topic creates it with its partitions, retention and replication
(``streaming/topics.py``); the broker's own topics take ``KAFKA_REPLICATION_FACTOR`` too.
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
from engagement_platform.settings import Settings

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


def node_name(node: int) -> str:
    """The service name of Kafka node ``node`` (1-based): ``kafka``, ``kafka-2``, ..."""
    return "kafka" if node == 1 else f"kafka-{node}"


def shared_cluster_id(settings: Settings) -> str:
    """The cluster id every node's log dir is formatted with: node 1's when it is formatted
    already (a one-node home grown into a cluster), else one drawn once and kept in EP_HOME."""
    meta = settings.ep_home / "kafka" / "data" / "meta.properties"
    if meta.exists():
        for line in meta.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "cluster.id":
                return value.strip()
    path = settings.ep_home / "kafka-cluster-id"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(new_cluster_id())
    return path.read_text().strip()


class KafkaService(Service):
    start_timeout = 90.0  # a JVM; log recovery after a kill -9 adds a little

    def __init__(self, settings: Settings, node: int = 1) -> None:
        super().__init__(settings)
        self.node = node
        self.name = node_name(node)
        self.port = settings.kafka_ports[node - 1]
        self.controller_port = settings.kafka_controller_ports[node - 1]

    @property
    def endpoint(self) -> str:
        return (
            f"127.0.0.1:{self.port}"
            if self.settings.kafka_brokers > 1
            else self.settings.kafka_bootstrap_servers
        )

    def server_properties(self, data_dir: Path) -> dict[str, object]:
        s = self.settings
        controller = f"127.0.0.1:{self.controller_port}"
        voters = ",".join(f"{n + 1}@127.0.0.1:{p}" for n, p in enumerate(s.kafka_controller_ports))
        factor, min_isr = s.kafka_replication_factor, s.kafka_min_insync_replicas
        return {
            "process.roles": "broker,controller",
            "node.id": self.node,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": data_dir,
            "auto.create.topics.enable": "false",
            "num.partitions": s.topic_partitions,
            # every topic, the broker's own included, as replicated as the settings say
            "default.replication.factor": factor,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": factor,
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": factor,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": factor,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": 0,
            # a node killed with -9 is fenced, and its partitions led elsewhere, within ~4 s
            # instead of 9 s: writes with acks=all wait on it no longer than that
            "broker.session.timeout.ms": 4000,
            "broker.heartbeat.interval.ms": 1000,
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
            # every node runs the same classes: one cache serves them all
            aot=jvm.prepared_aot(self.settings, "kafka", self.settings.kafka_heap_opts),
        )

    def prepare(self, data_dir: Path) -> None:
        super().prepare(data_dir)
        service_dir = data_dir.parent
        config = service_dir / "server.properties"
        jvm.write_properties(config, self.server_properties(data_dir))
        jvm.write_log4j2(service_dir / "log4j2.properties", LOGGERS)
        if (data_dir / "meta.properties").exists():
            return
        cluster_id = shared_cluster_id(self.settings)
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
        """The node answers on its own port and the cluster counts it as a live broker (so a
        cluster's node is healthy once the quorum has it back, not just when it listens)."""
        admin = AdminClient(
            client_config(
                f"127.0.0.1:{self.port}",
                extra={
                    "socket.connection.setup.timeout.ms": 2000,
                    "log_level": 0,  # a down broker is an answer here, not an error to print
                },
            )
        )
        try:
            metadata = admin.list_topics(timeout=2)
        except Exception:  # noqa: BLE001 - KafkaException or timeout: not healthy
            return False
        return self.node in metadata.brokers
