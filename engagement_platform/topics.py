"""The Kafka topics of the platform, and creating them explicitly with the partitions we want.

Brokers auto-create topics on first produce with their own defaults (tansu: 4 partitions,
no compaction), so the code that owns a topic creates it before anything writes to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

CONTENT_FLAT = "content.flat"
EVENTS_FLAT = "engagement_events.flat"
ENRICHED = "engagement_enriched"
ENRICHED_DLQ = "engagement_enriched.dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def flat_topic_specs(partitions: int) -> list[TopicSpec]:
    """The CDC topics: content is a changelog keyed by id, so it is compacted."""
    return [
        TopicSpec(CONTENT_FLAT, partitions, {"cleanup.policy": "compact"}),
        TopicSpec(EVENTS_FLAT, partitions),
    ]


def ensure_topics(bootstrap_servers: str, specs: Iterable[TopicSpec], timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet; return the names created. Idempotent."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config)
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
    metadata = AdminClient({"bootstrap.servers": bootstrap_servers}).list_topics(timeout=timeout)
    return {n: len(metadata.topics[n].partitions) if n in metadata.topics else 0 for n in names}
