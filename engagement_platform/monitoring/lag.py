"""Consumer lag: how far each consumer group is behind the topic it reads, in messages and in
seconds, partition by partition.

Watermarks come from ListOffsets (earliest and latest), committed offsets from the group
coordinator (OffsetFetch): what ``kafka-consumer-groups --describe`` shows. Seconds behind is
the age of the oldest record the group has not consumed yet (the record at its committed
offset): a stopped consumer falls behind in seconds even when few messages arrive.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from engagement_platform.kafka_config import client_config
from engagement_platform.monitoring.verdict import Level, Verdict, grade
from engagement_platform.streaming import topics

# the group of ClickHouse's Kafka engine (clickhouse_ddl/010_queue.compose.sql)
COMPOSE_WAREHOUSE_GROUP = "clickhouse_warehouse"


@dataclass(frozen=True)
class LagThresholds:
    """Messages behind (summed over a group's partitions) and seconds behind (its oldest
    unconsumed record). A healthy consumer drains tens of thousands of messages a second and
    commits every second or so, so 10k messages or a minute only persist when it is stuck or
    far too slow; the seconds catch a stopped consumer on a quiet topic within a minute."""

    warn: int = 10_000
    error: int = 100_000
    warn_seconds: float = 60.0
    error_seconds: float = 300.0


@dataclass(frozen=True)
class ConsumerGroup:
    """A consumer group and the topic it reads."""

    group: str
    topic: str


# `up`'s second leaderboard consumer (the engagement-seconds metric); not among the checked groups
SECONDS_GROUP = "leaderboard_seconds"


def consumer_groups(mode: str) -> tuple[ConsumerGroup, ...]:
    """The platform's groups: in compose mode ClickHouse itself consumes for the warehouse."""
    warehouse = "warehouse" if mode == "local" else COMPOSE_WAREHOUSE_GROUP
    return (
        ConsumerGroup("enrich", topics.EVENTS_FLAT),
        ConsumerGroup("leaderboard", topics.ENRICHED),
        ConsumerGroup(warehouse, topics.ENRICHED),
    )


@dataclass(frozen=True)
class GroupLag:
    """One group's position on one topic, partition by partition."""

    partitions: tuple[int, ...]
    committed: Mapping[int, int]  # absent: the group never committed that partition
    high: Mapping[int, int]  # absent: the high watermark could not be learned
    lag: Mapping[int, int]  # only partitions whose high watermark is known
    # age of the oldest unconsumed record per lagging partition (0 when caught up)
    seconds: Mapping[int, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.lag.values())

    @property
    def max_seconds(self) -> float:
        return max(self.seconds.values(), default=0.0)

    def with_seconds(self, seconds: Mapping[int, float]) -> GroupLag:
        return GroupLag(self.partitions, self.committed, self.high, self.lag, dict(seconds))

    @property
    def unknown(self) -> tuple[int, ...]:
        return tuple(p for p in self.partitions if p not in self.high)


def group_lag(
    partitions: Iterable[int],
    high: Mapping[int, int],
    committed: Mapping[int, int],
    low: Mapping[int, int] | None = None,
) -> GroupLag:
    """Lag per partition = high watermark - committed offset.

    Negative offsets are librdkafka's "unknown" (-1001) and count as absent. A partition the group
    never committed is measured from the low watermark, because the consumers start there
    (auto.offset.reset=earliest). A committed offset past the watermark (the broker lost data) is
    no lag at all rather than a negative one that would hide another partition's real lag.
    """
    low = low or {}
    parts = tuple(sorted(set(partitions)))
    known_high = {p: high[p] for p in parts if high.get(p, -1) >= 0}
    known_committed = {p: committed[p] for p in parts if committed.get(p, -1) >= 0}
    lag = {}
    for p, h in known_high.items():
        start = known_committed.get(p, max(low.get(p, 0), 0))
        lag[p] = max(h - start, 0)
    return GroupLag(parts, known_committed, known_high, lag)


def lag_verdict(group: str, topic: str, lag: GroupLag, thresholds: LagThresholds) -> Verdict:
    total, seconds = lag.total, lag.max_seconds
    level = max(
        grade(total, thresholds.warn, thresholds.error),
        grade(seconds, thresholds.warn_seconds, thresholds.error_seconds),
    )
    notes = [f"`{group}` is {total:,} messages and {seconds:,.1f} s behind `{topic}`"]
    if not lag.partitions:
        level = max(level, Level.WARN)
        notes = [f"topic `{topic}` does not exist, so `{group}` has nothing to read"]
    elif not lag.committed:
        notes.append("the group has never committed: its consumer has not run, or its offsets were lost")
        if total > 0:
            level = max(level, Level.WARN)
    if lag.unknown:
        level = max(level, Level.WARN)
        notes.append(f"high watermark not learned for partitions {list(lag.unknown)}")
    return Verdict(
        level,
        "; ".join(notes) + ".",
        {
            "group": group,
            "topic": topic,
            "lag": total,
            "lag_seconds": round(seconds, 3),
            "group_committed": bool(lag.committed),
            "lag_by_partition": {str(p): n for p, n in lag.lag.items()},
            "lag_seconds_by_partition": {str(p): round(s, 3) for p, s in lag.seconds.items()},
            "committed_by_partition": {str(p): o for p, o in lag.committed.items()},
            "high_watermark_by_partition": {str(p): o for p, o in lag.high.items()},
            "warn_above": thresholds.warn,
            "error_above": thresholds.error,
            "warn_above_seconds": thresholds.warn_seconds,
            "error_above_seconds": thresholds.error_seconds,
        },
    )


def committed_offsets(
    admin: AdminClient, group: str, topic: str, partitions: Sequence[int], timeout: float
) -> dict[int, int]:
    """The group's committed offsets (OffsetFetch); an unknown group simply has none."""
    if not partitions:
        return {}
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
    future = admin.list_consumer_group_offsets([request], request_timeout=timeout)[group]
    result = future.result(timeout)
    return {tp.partition: tp.offset for tp in result.topic_partitions if tp.error is None and tp.offset >= 0}


def watermarks(
    admin: AdminClient, partitions: Iterable[tuple[str, int]], timeout: float
) -> dict[tuple[str, int], tuple[int, int]]:
    """(low, high) watermarks per partition (ListOffsets earliest / latest)."""
    keys = list(partitions)
    if not keys:
        return {}
    found: dict[tuple[str, int], list[int]] = {key: [-1, -1] for key in keys}
    for index, spec in enumerate((OffsetSpec.earliest(), OffsetSpec.latest())):
        request = {TopicPartition(t, p): spec for t, p in keys}
        for tp, future in admin.list_offsets(request, request_timeout=timeout).items():
            found[(tp.topic, tp.partition)][index] = future.result(timeout).offset
    return {key: (low, high) for key, (low, high) in found.items() if high >= 0}


def oldest_unconsumed(
    bootstrap_servers: str, starts: Mapping[tuple[str, int], int], timeout: float
) -> dict[tuple[str, int], int]:
    """The timestamp (ms) of the record at each given offset: one small fetch per partition by a
    consumer that only assigns (it never joins or commits for any group)."""
    if not starts:
        return {}
    consumer = Consumer(
        client_config(
            bootstrap_servers,
            extra={
                "group.id": "ep-lag-probe",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "max.partition.fetch.bytes": 4096,
                "fetch.wait.max.ms": 10,
                "log_level": 2,
            },
        )
    )
    found: dict[tuple[str, int], int] = {}
    try:
        consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in starts.items()])
        deadline = time.monotonic() + timeout
        paused: list[TopicPartition] = []
        while len(found) < len(starts) and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=len(starts), timeout=0.1):
                topic, partition = msg.topic(), msg.partition()
                if msg.error() is not None or topic is None or partition is None:
                    continue
                if (topic, partition) not in found:
                    found[topic, partition] = msg.timestamp()[1]
                    paused.append(TopicPartition(topic, partition))
            if paused:  # one record per partition is all we want
                consumer.pause(paused)
                paused = []
    finally:
        consumer.close()
    return found


def measure_lag(
    bootstrap_servers: str, groups: Sequence[ConsumerGroup], timeout: float = 10.0, *, with_age: bool = True
) -> list[GroupLag]:
    """One GroupLag per entry of ``groups``, in order. Raises KafkaException when the broker is down."""
    admin = AdminClient(client_config(bootstrap_servers, extra={"log_level": 2}))
    metadata = admin.list_topics(timeout=timeout)
    partitions: dict[str, list[int]] = {}
    for topic in {g.topic for g in groups}:
        meta = metadata.topics.get(topic)
        partitions[topic] = sorted(meta.partitions) if meta is not None and meta.error is None else []
    committed = [committed_offsets(admin, g.group, g.topic, partitions[g.topic], timeout) for g in groups]
    marks_by_key = watermarks(admin, {(t, p) for t, parts in partitions.items() for p in parts}, timeout)
    lags = []
    for g, offsets in zip(groups, committed, strict=True):
        marks = {p: marks_by_key[(g.topic, p)] for p in partitions[g.topic] if (g.topic, p) in marks_by_key}
        lags.append(
            group_lag(
                partitions[g.topic],
                high={p: high for p, (_low, high) in marks.items()},
                committed=offsets,
                low={p: low for p, (low, _high) in marks.items()},
            )
        )
    if not with_age:
        return lags
    return [aged(bootstrap_servers, g.topic, lag, timeout) for g, lag in zip(groups, lags, strict=True)]


def aged(bootstrap_servers: str, topic: str, lag: GroupLag, timeout: float) -> GroupLag:
    """``lag`` with the age of the oldest record the group has not consumed, per lagging partition
    (where the group would resume: its committed offset, or the low watermark if it never
    committed). Caught-up partitions are 0 s behind, so the figure is never negative."""
    starts = {(topic, p): lag.high[p] - n for p, n in lag.lag.items() if n}
    stamps = oldest_unconsumed(bootstrap_servers, starts, timeout=min(timeout, 5.0))
    now_ms = time.time() * 1000
    ages = {p: max(now_ms - stamps[(topic, p)], 0.0) / 1000 if (topic, p) in stamps else 0.0 for p in lag.lag}
    return lag.with_seconds(ages)


def evaluate_lag(
    bootstrap_servers: str, groups: Sequence[ConsumerGroup], thresholds: LagThresholds, timeout: float = 10.0
) -> list[tuple[Verdict, GroupLag | None]]:
    """A verdict per group, in order; a broker that does not answer is an ERROR for each."""
    try:
        lags = measure_lag(bootstrap_servers, groups, timeout)
    except KafkaException as exc:
        down = Verdict(
            Level.ERROR,
            f"Kafka at {bootstrap_servers} did not answer: {exc}",
            {"bootstrap_servers": bootstrap_servers},
        )
        return [(down, None) for _ in groups]
    return [
        (lag_verdict(g.group, g.topic, lag, thresholds), lag) for g, lag in zip(groups, lags, strict=True)
    ]
