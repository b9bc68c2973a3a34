"""The broker keeps what it was given: across `stack down`/`up`, and across a `kill -9`.

The whole path runs on a stack of this module's own (the tests restart it): Postgres -> the
Connect worker -> Kafka -> the three consumers -> ClickHouse and Redis. Afterwards the sinks
are compared with Postgres by event id and per (minute, content).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import psycopg2
import pytest
import redis
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, OffsetSpec

from engagement_platform.local_stack.process import is_alive
from engagement_platform.monitoring import reconcile
from engagement_platform.streaming import topics
from engagement_platform.warehouse.ddl import connect_settings
from engagement_platform_tests import harness as harness_ids
from engagement_platform_tests.harness import (
    Consumers,
    StackHandle,
    read_topic,
    set_up_stack,
    wait_clickhouse_holds_postgres,
    wait_for,
)

pytestmark = pytest.mark.slow

GROUPS = {"enrich": topics.EVENTS_FLAT, "leaderboard": topics.ENRICHED, "warehouse": topics.ENRICHED}
PLATFORM_TOPICS = (topics.CONTENT_FLAT, topics.EVENTS_FLAT, topics.ENRICHED, topics.ENRICHED_DLQ)


@pytest.fixture(scope="module")
def platform() -> Iterator[StackHandle]:
    with set_up_stack("ep-test-durable-") as handle:
        yield handle


def end_offsets(handle: StackHandle) -> dict[tuple[str, int], int]:
    admin = AdminClient({"bootstrap.servers": handle.settings.kafka_bootstrap_servers})
    metadata = admin.list_topics(timeout=10)
    request = {
        TopicPartition(t, p): OffsetSpec.latest()
        for t in PLATFORM_TOPICS
        for p in metadata.topics[t].partitions
    }
    return {(tp.topic, tp.partition): f.result(10).offset for tp, f in admin.list_offsets(request).items()}


def committed(handle: StackHandle) -> dict[tuple[str, str, int], int]:
    admin = AdminClient({"bootstrap.servers": handle.settings.kafka_bootstrap_servers})
    found = {}
    for group, topic in GROUPS.items():
        parts = [TopicPartition(topic, p) for p in range(handle.settings.topic_partitions)]
        result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, parts)])[
            group
        ].result(10)
        found |= {(group, tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}
    return found


def assert_sinks_match_postgres(handle: StackHandle, timeout: float = 180) -> None:
    """ClickHouse FINAL holds exactly Postgres's ids, none twice; Redis counts equal Postgres's."""
    diff = wait_clickhouse_holds_postgres(handle.settings, timeout)
    pg = psycopg2.connect(handle.settings.postgres_dsn)
    ch = connect_settings(handle.settings)
    rd = redis.Redis.from_url(handle.settings.redis_url)
    try:
        assert reconcile.clickhouse_duplicates(ch) == 0
        expected = reconcile.postgres_minute_counts(pg)
        minutes = {minute for minute, _content in expected}
        wait_for(
            lambda: not reconcile.count_diff(expected, reconcile.redis_minute_counts(rd, minutes)),
            60,
            "Redis minute buckets to equal Postgres per (minute, content)",
        )
        time.sleep(2)  # anything still arriving now would be a double count
        assert not reconcile.count_diff(expected, reconcile.redis_minute_counts(rd, minutes))
        print(f"sinks match Postgres: {diff.source:,} events, {len(expected):,} (minute, content) counts")
    finally:
        pg.close()
        ch.close()
        rd.close()


def test_stack_down_and_up_keeps_topics_data_and_committed_offsets(platform: StackHandle) -> None:
    with Consumers(platform, *GROUPS):
        platform.cli("simulate", "--content", "30", "--events", "2000", "--seed", "5")
        assert_sinks_match_postgres(platform)
    # the topics the consumers created are bounded in time and size
    admin = AdminClient({"bootstrap.servers": platform.settings.kafka_bootstrap_servers})
    created = [ConfigResource("topic", t) for t in (topics.ENRICHED, topics.ENRICHED_DLQ)]
    for resource, future in admin.describe_configs(created).items():
        config = future.result(10)
        assert config["retention.ms"].value == str(platform.settings.topic_retention_ms), resource
        assert config["retention.bytes"].value == str(platform.settings.topic_retention_bytes), resource
    # the consumers stopped cleanly: what they committed is final
    offsets, ends = committed(platform), end_offsets(platform)
    platform.cli("stack", "down")
    platform.cli("stack", "up")
    assert end_offsets(platform) == ends
    assert committed(platform) == offsets
    with Consumers(platform, *GROUPS):
        platform.cli("simulate", "--content", "30", "--events", "1000", "--seed", "6")
        assert_sinks_match_postgres(platform)
    # the connector resumed from its offsets in Kafka: no second snapshot of the table
    pg = psycopg2.connect(platform.settings.postgres_dsn)
    total = len(harness_ids.postgres_ids(pg))
    pg.close()
    messages = read_topic(
        platform.settings.kafka_bootstrap_servers, topics.EVENTS_FLAT, until=lambda ms: len(ms) >= total
    )
    assert len(messages) == total


def test_broker_kill_9_mid_stream_loses_nothing_and_flow_resumes(platform: StackHandle) -> None:
    pg = psycopg2.connect(platform.settings.postgres_dsn)
    pg.autocommit = True
    ch = connect_settings(platform.settings)

    def newest_in_postgres() -> int:
        with pg.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 0) FROM engagement_events")
            return int(cur.fetchone()[0])

    def newest_in_clickhouse() -> int:
        return int(ch.command("SELECT max(event_id) FROM engagement_enriched"))

    try:
        with Consumers(platform, *GROUPS, "simulate --rate 300 --burst 10") as procs:
            mark = newest_in_postgres()
            wait_for(lambda: newest_in_clickhouse() > mark, 60, "events to flow before the crash")
            broker = platform.supervisor.running("kafka")
            assert broker is not None
            os.kill(broker.pid, signal.SIGKILL)
            wait_for(lambda: not is_alive(broker), 30, "the broker to die")
            killed_at = time.monotonic()
            # events keep landing in Postgres while the broker is gone
            wait_for(lambda: newest_in_postgres() > mark + 600, 30, "the simulator to go on")
            platform.cli("stack", "up", "kafka")
            answering_at, after = time.monotonic(), newest_in_postgres()
            wait_for(lambda: newest_in_clickhouse() > after, 30, "events to flow again")
            resumed = time.monotonic() - answering_at
            print(
                f"broker down {answering_at - killed_at:.1f}s; events flow again {resumed:.1f}s after "
                "it answered"
            )
            procs.stop("simulate")
            assert procs.alive(*GROUPS), procs.tails()
            try:
                assert_sinks_match_postgres(platform)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{procs.tails()}") from None
    finally:
        pg.close()
        ch.close()
