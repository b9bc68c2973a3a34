"""The Kafka cluster as a Dagster resource."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from engagement_platform.defs.config import setting
from engagement_platform.streaming.topics import TopicSpec, ensure_topics, partition_counts, retention_bounds


class KafkaResource(dg.ConfigurableResource):
    bootstrap_servers: str
    topic_partitions: int
    retention_ms: int
    retention_bytes: int

    def ensure_topics(self, specs: Iterable[TopicSpec]) -> list[str]:
        bounds = retention_bounds(self.retention_ms, self.retention_bytes)
        return ensure_topics(self.bootstrap_servers, specs, bounds=bounds)

    def partition_counts(self, names: Iterable[str]) -> dict[str, int]:
        return partition_counts(self.bootstrap_servers, names)


def kafka_resource() -> KafkaResource:
    return KafkaResource(
        bootstrap_servers=setting("kafka_bootstrap_servers"),
        topic_partitions=setting("topic_partitions"),
        retention_ms=setting("topic_retention_ms"),
        retention_bytes=setting("topic_retention_bytes"),
    )
