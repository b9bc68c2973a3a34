"""The Kafka topics of the platform, and creating them explicitly with the partitions we want.

The local broker never auto-creates topics (a broker default would pick partitions and
retention for us), so the code that owns a topic creates it before anything writes to it,
with bounded retention by time and size, and with the cluster's replication: the factor and
``min.insync.replicas`` from the settings, so an ``acks=all`` write survives a broker's loss.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from engagement_platform.kafka_config import client_config
from engagement_platform.settings import Settings

CONTENT_FLAT = "content.flat"
EVENTS_FLAT = "engagement_events.flat"
ENRICHED = "engagement_enriched"
ENRICHED_DLQ = "engagement_enriched.dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)

    @property
    def compacted(self) -> bool:
        return "compact" in self.config.get("cleanup.policy", "")


@dataclass(frozen=True)
class Replication:
    """How many brokers hold each partition, and how many must have a write before ``acks=all``
    succeeds (``KAFKA_REPLICATION_FACTOR``, ``KAFKA_MIN_INSYNC_REPLICAS``)."""

    factor: int = 1
    min_insync: int = 1


def settings_replication(settings: Settings) -> Replication:
    return Replication(settings.kafka_replication_factor, settings.kafka_min_insync_replicas)


def retention_bounds(retention_ms: int, retention_bytes: int) -> dict[str, str]:
    """Time and size bounds of a topic (``retention.bytes`` is per partition)."""
    return {"retention.ms": str(retention_ms), "retention.bytes": str(retention_bytes)}


def settings_bounds(settings: Settings) -> dict[str, str]:
    return retention_bounds(settings.topic_retention_ms, settings.topic_retention_bytes)


def flat_topic_specs(partitions: int) -> list[TopicSpec]:
    """The CDC topics: content is a changelog keyed by id, so it is compacted."""
    return [
        TopicSpec(CONTENT_FLAT, partitions, {"cleanup.policy": "compact"}),
        TopicSpec(EVENTS_FLAT, partitions),
    ]


def ensure_topics(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec],
    *,
    bounds: Mapping[str, str],
    replication: Replication = Replication(),
    timeout: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created. Idempotent.

    Every topic but a compacted changelog (which keeps the last record per key, whatever
    its age) gets ``bounds`` unless its spec sets its own; every topic gets ``replication`` (the
    platform's code passes ``settings_replication``; one replica suits a one-broker test only).
    """
    admin = AdminClient(client_config(bootstrap_servers))
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=replication.factor,
                config={
                    "min.insync.replicas": str(replication.min_insync),
                    **(dict(s.config) if s.compacted else {**bounds, **s.config}),
                },
            )
            for s in missing
        ],
        operation_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):  # lost a race with another creator: fine
                raise
    return created


def partition_counts(bootstrap_servers: str, names: Iterable[str], timeout: float = 10.0) -> dict[str, int]:
    """Partitions per topic (0 when the topic does not exist)."""
    metadata = AdminClient(client_config(bootstrap_servers)).list_topics(timeout=timeout)
    return {n: len(metadata.topics[n].partitions) if n in metadata.topics else 0 for n in names}
