"""The Kafka cluster as a Dagster resource."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from engagement_platform.defs.config import setting
from engagement_platform.settings import replication_defaults
from engagement_platform.streaming.topics import (
    Replication,
    TopicSpec,
    ensure_topics,
    partition_counts,
    retention_bounds,
)


class KafkaResource(dg.ConfigurableResource):
    bootstrap_servers: str
    topic_partitions: int
    retention_ms: int
    retention_bytes: int
    brokers: int = 1
    replication_factor: int = 0  # 0: the default for `brokers` (settings.replication_defaults)
    min_insync_replicas: int = 0

    @property
    def replication(self) -> Replication:
        """The replication every topic the platform and Debezium create gets."""
        return Replication(
            *replication_defaults(self.brokers, self.replication_factor, self.min_insync_replicas)
        )

    def ensure_topics(self, specs: Iterable[TopicSpec]) -> list[str]:
        bounds = retention_bounds(self.retention_ms, self.retention_bytes)
        return ensure_topics(self.bootstrap_servers, specs, bounds=bounds, replication=self.replication)

    def partition_counts(self, names: Iterable[str]) -> dict[str, int]:
        return partition_counts(self.bootstrap_servers, names)


def kafka_resource() -> KafkaResource:
    return KafkaResource(
        bootstrap_servers=setting("kafka_bootstrap_servers"),
        topic_partitions=setting("topic_partitions"),
        retention_ms=setting("topic_retention_ms"),
        retention_bytes=setting("topic_retention_bytes"),
        brokers=setting("kafka_brokers"),
        replication_factor=setting("kafka_replication_factor"),
        min_insync_replicas=setting("kafka_min_insync_replicas"),
    )
