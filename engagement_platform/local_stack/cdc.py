"""CDC: Kafka Connect workers in distributed mode with Debezium's Postgres connector as a plugin.

The workers keep connector configs, source offsets and statuses in their topics on the broker
(as in compose mode), so a restart of a worker -- clean or ``kill -9`` -- resumes from the
stored offsets. ``connector.json`` is registered through the first worker's REST API by the
``cdc/connector`` asset. ``CONNECT_WORKERS=2`` runs a second worker (the service ``cdc-2``, its
REST API on ``CONNECT_URL``'s port + ``PORT_STRIDE``) in the same group: when one dies, the
group gives its connector and task to the other, which resumes from the stored offsets.
"""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg2

from engagement_platform.cdc.connect_client import ConnectError
from engagement_platform.local_stack import jvm
from engagement_platform.local_stack.kafka import node_name
from engagement_platform.local_stack.service import Service, http_ok
from engagement_platform.monitoring.cdc_readiness import wait_streaming
from engagement_platform.settings import Settings

log = logging.getLogger(__name__)

GROUP_ID = "engagement-connect"
# the same names as the compose Connect worker
CONFIG_TOPIC = "connect_configs"
OFFSET_TOPIC = "connect_offsets"
STATUS_TOPIC = "connect_statuses"

LOGGERS = {
    "org.apache.kafka.connect.runtime.Connect": "INFO",
    "org.apache.kafka.connect.runtime.Worker": "INFO",
    "org.apache.kafka.connect.runtime.distributed.DistributedHerder": "INFO",
    "io.debezium": "INFO",
    # a line per offset flush and per poll batch is noise
    "io.debezium.connector.common.BaseSourceTask": "WARN",
    "io.debezium.connector.postgresql.connection.WalPositionLocator": "WARN",
}


# compose mode's worker: the Dockerfile's `connect` stage copies this file into the image
COMPOSE_PROPERTIES = Path(__file__).with_name("jvm") / "connect-worker.compose.properties"
COMPOSE_HEADER = """Kafka Connect worker of compose mode (docker-compose.yml, Dockerfile stage `connect`).
Generated from engagement_platform/local_stack/cdc.py:worker_properties, as local mode's is;
a test keeps the two in step."""


def worker_properties(
    bootstrap_servers: str,
    rest_host: str,
    rest_port: int,
    plugin_path: Path | str,
    advertised_host: str = "",
    replication_factor: int | str = 1,
) -> dict[str, object]:
    """The worker configuration, the same in both modes but for where things are and how many
    replicas its topics have (their min.insync.replicas is the broker's default). Environment
    variables may appear as ``${env:NAME}``: Kafka's EnvVarConfigProvider resolves them."""
    return {
        "config.providers": "env",
        "config.providers.env.class": "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
        "bootstrap.servers": bootstrap_servers,
        "group.id": GROUP_ID,
        "config.storage.topic": CONFIG_TOPIC,
        "offset.storage.topic": OFFSET_TOPIC,
        "status.storage.topic": STATUS_TOPIC,
        "config.storage.replication.factor": replication_factor,
        "offset.storage.replication.factor": replication_factor,
        "status.storage.replication.factor": replication_factor,
        "offset.storage.partitions": 3,
        "status.storage.partitions": 1,
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "listeners": f"http://{rest_host}:{rest_port}",
        "rest.advertised.host.name": advertised_host or rest_host,
        "rest.advertised.port": rest_port,
        "plugin.path": plugin_path,
        # every plugin on the path carries ServiceLoader manifests: no classpath scan
        "plugin.discovery": "service_load",
        # source offsets reach Kafka (and Debezium confirms the LSN to Postgres) every second,
        # so a kill -9 replays about a second of changes, not a minute
        "offset.flush.interval.ms": 1000,
        # when a worker is lost (or comes back after a crash), hand its tasks out at once
        # instead of waiting up to 5 minutes for the "lost" worker to return
        "scheduled.rebalance.max.delay.ms": 0,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 2000,
    }


# compose's worker reads its topics' replication from its container's environment (compose
# sets it from the host's, default 1; docker-compose.cluster.yml sets 3), as the apps do
COMPOSE_REPLICATION_FACTOR = "${env:KAFKA_REPLICATION_FACTOR}"


def compose_worker_properties() -> dict[str, object]:
    """Compose mode's worker configuration (the Docker image's worker.properties)."""
    return worker_properties(
        "kafka:29092",
        "0.0.0.0",
        8083,
        "/opt/connect-plugins",
        advertised_host="connect",
        replication_factor=COMPOSE_REPLICATION_FACTOR,
    )


def worker_name(worker: int) -> str:
    """The service name of Connect worker ``worker`` (1-based): ``cdc``, ``cdc-2``, ..."""
    return "cdc" if worker == 1 else f"cdc-{worker}"


class CdcService(Service):
    start_timeout = 120.0

    def __init__(self, settings: Settings, worker: int = 1) -> None:
        super().__init__(settings)
        self.worker = worker
        self.name = worker_name(worker)
        self.port = settings.connect_ports[worker - 1]
        # its topics need as many brokers as their replicas
        self.needs = tuple(node_name(n + 1) for n in range(settings.kafka_brokers))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self, data_dir: Path) -> list[str]:
        service_dir = data_dir.parent
        return jvm.java_argv(
            self.settings,
            "org.apache.kafka.connect.cli.ConnectDistributed",
            [str(service_dir / "connect.properties")],
            heap_opts=self.settings.connect_heap_opts,
            log4j_config=service_dir / "log4j2.properties",
            aot=jvm.prepared_aot(self.settings, "cdc", self.settings.connect_heap_opts),
        )

    def prepare(self, data_dir: Path) -> None:
        super().prepare(data_dir)
        service_dir = data_dir.parent
        properties = worker_properties(
            self.settings.kafka_bootstrap_servers,
            "127.0.0.1",
            self.port,
            jvm.CONNECT_PLUGINS,
            replication_factor=self.settings.kafka_replication_factor,
        )
        jvm.write_properties(service_dir / "connect.properties", properties)
        jvm.write_log4j2(service_dir / "log4j2.properties", LOGGERS)

    def healthy(self) -> bool:
        # /connectors answers once the worker has joined its group and read its config topic
        return http_ok(f"{self.endpoint}/connectors")

    def after_start(self) -> None:
        # up only once the registered connectors stream again (none on a fresh stack): a restart
        # otherwise reports the worker up while Debezium has not yet opened its slot
        try:
            problems = wait_streaming(self.endpoint, self.settings.postgres_dsn)
        except (psycopg2.Error, ConnectError, OSError) as exc:  # e.g. `stack up cdc` without Postgres
            problems = [f"could not check that changes stream ({type(exc).__name__})"]
        for problem in problems:
            log.warning("%s: %s", self.name, problem)
