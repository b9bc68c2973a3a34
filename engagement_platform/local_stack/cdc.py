"""CDC: a Kafka Connect worker in distributed mode with Debezium's Postgres connector as a plugin.

The worker keeps connector configs, source offsets and statuses in its topics on the broker
(as in compose mode), so a restart of the worker -- clean or ``kill -9`` -- resumes from the
stored offsets. ``connector.json`` is registered through the worker's own REST API by the
``cdc/connector`` asset.
"""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg2

from engagement_platform.cdc.connect_client import ConnectError
from engagement_platform.local_stack import jvm
from engagement_platform.local_stack.service import Service, http_ok
from engagement_platform.monitoring.cdc_readiness import wait_streaming

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
    bootstrap_servers: str, rest_host: str, rest_port: int, plugin_path: Path | str, advertised_host: str = ""
) -> dict[str, object]:
    """The worker configuration, the same in both modes but for where things are."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "group.id": GROUP_ID,
        "config.storage.topic": CONFIG_TOPIC,
        "offset.storage.topic": OFFSET_TOPIC,
        "status.storage.topic": STATUS_TOPIC,
        "config.storage.replication.factor": 1,
        "offset.storage.replication.factor": 1,
        "status.storage.replication.factor": 1,
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
        # one worker: when it comes back after a crash, take its tasks at once instead of
        # waiting up to 5 minutes for the "lost" worker to return
        "scheduled.rebalance.max.delay.ms": 0,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 2000,
    }


def compose_worker_properties() -> dict[str, object]:
    return worker_properties(
        "kafka:29092", "0.0.0.0", 8083, "/opt/connect-plugins", advertised_host="connect"
    )


class CdcService(Service):
    name = "cdc"
    start_timeout = 120.0
    needs = ("kafka",)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.settings.connect_port}"

    def argv(self, data_dir: Path) -> list[str]:
        service_dir = data_dir.parent
        return jvm.java_argv(
            self.settings,
            "org.apache.kafka.connect.cli.ConnectDistributed",
            [str(service_dir / "connect.properties")],
            heap_opts=self.settings.connect_heap_opts,
            log4j_config=service_dir / "log4j2.properties",
            aot=jvm.prepared_aot(self.settings, self.name, self.settings.connect_heap_opts),
        )

    def prepare(self, data_dir: Path) -> None:
        super().prepare(data_dir)
        service_dir = data_dir.parent
        properties = worker_properties(
            self.settings.kafka_bootstrap_servers,
            "127.0.0.1",
            self.settings.connect_port,
            jvm.CONNECT_PLUGINS,
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
        except (
            psycopg2.Error,
            ConnectError,
            OSError,
        ) as exc:  # Postgres not up (`stack up cdc` alone): the sensors report it
            problems = [f"could not check that changes stream ({type(exc).__name__})"]
        for problem in problems:
            log.warning("cdc: %s", problem)
