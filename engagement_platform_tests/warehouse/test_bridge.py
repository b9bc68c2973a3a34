"""`consume warehouse`: the local bridge from engagement_enriched into ClickHouse, on the session stack.

Each test reads its own topic in its own group into its own ClickHouse database.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from engagement_platform.streaming import kafka_io
from engagement_platform.streaming.checkpoint import next_offsets
from engagement_platform.streaming.topics import TopicSpec, ensure_topics, settings_bounds
from engagement_platform.warehouse import ddl
from engagement_platform.warehouse.bridge import Config, WarehouseBridge
from engagement_platform_tests import harness
from engagement_platform_tests.defs.warehouse.helpers import enriched, fresh_database, raw
from engagement_platform_tests.harness import Child, StackHandle


def fake_msgs(*at: tuple[int, int]) -> list[SimpleNamespace]:
    return [SimpleNamespace(topic=lambda: "t", partition=lambda p=p: p, offset=lambda o=o: o) for p, o in at]


def test_next_offsets_commit_past_the_last_record_of_each_partition() -> None:
    msgs = fake_msgs((0, 5), (1, 2), (0, 6), (0, 7))
    got = {(tp.topic, tp.partition, tp.offset) for tp in next_offsets(msgs)}  # type: ignore[arg-type]
    assert got == {("t", 0, 8), ("t", 1, 3)}
    # a partition given back by a rebalance restarts at its committed offset: committing past its
    # last record replays a little, never skips
    msgs = fake_msgs((0, 5), (0, 6), (0, 3), (0, 4))
    assert [tp.offset for tp in next_offsets(msgs)] == [5]  # type: ignore[arg-type]


@pytest.fixture
def names(stack: StackHandle) -> dict[str, str]:
    """A fresh topic (created like the platform's own) and group for one test."""
    run = uuid.uuid4().hex[:8]
    topic = f"t-{run}.engagement_enriched"
    ensure_topics(
        stack.settings.kafka_bootstrap_servers,
        [TopicSpec(topic, stack.settings.topic_partitions)],
        bounds=settings_bounds(stack.settings),
    )
    return {"topic": topic, "group": f"t-{run}-warehouse"}


def produce(settings, values: list[bytes], topic: str) -> None:  # type: ignore[no-untyped-def]
    records = ((str(i % 10).encode(), value) for i, value in enumerate(values))
    harness.produce_records(Producer(kafka_io.producer_config(settings)), topic, records)


def committed(settings, group: str, topic: str) -> int:  # type: ignore[no-untyped-def]
    return sum(harness.committed_offsets(settings.kafka_bootstrap_servers, group, topic).values())


def reset_to_beginning(settings, group: str, topic: str) -> None:  # type: ignore[no-untyped-def]
    """What `kafka-consumer-groups --reset-offsets --to-earliest` does, for a stopped group."""
    consumer = Consumer(kafka_io.consumer_config(settings, group))
    try:
        partitions = [TopicPartition(topic, p, 0) for p in range(settings.topic_partitions)]
        consumer.commit(offsets=partitions, asynchronous=False)
    finally:
        consumer.close()


def test_bridge_loads_commits_and_a_replay_changes_no_count(
    stack: StackHandle, names: dict[str, str], spawn: Callable[..., Child]
) -> None:
    settings = stack.settings
    topic, group = names["topic"], names["group"]

    def run_bridge(database: str, *args: str) -> Child:
        flags = ["--topic", topic, "--group", group, "--summary-every", "1", *args]
        return spawn("consume", "warehouse", *flags, name="warehouse", env={"CLICKHOUSE_DATABASE": database})

    n = 3000
    valid = [
        raw(enriched(i, event_ts=f"2026-11-29T19:{i % 60:02d}:00.{i % 1000:03d}Z")) for i in range(1, n + 1)
    ]
    malformed = b'{"event_id": 1, "event_ts": "not a time"'
    # at-least-once upstream: 300 events twice on the topic already
    produce(settings, valid + valid[:300] + [malformed], topic)
    total_messages = n + 300 + 1
    with fresh_database(settings, "bridge") as (database, client):

        def final_counts() -> tuple[int, int, int]:
            row = client.query(
                "SELECT (SELECT count() FROM engagement_enriched FINAL), "
                "(SELECT uniqExactMerge(events) FROM content_engagement_minute), "
                "(SELECT count() FROM engagement_enriched_errors)"
            ).result_rows[0]
            return tuple(int(x) for x in row)  # type: ignore[return-value]

        proc = run_bridge(database)
        try:
            harness.wait_for(lambda: final_counts() == (n, n, 1), 60, "the bridge to load every event")
            harness.wait_for(
                lambda: committed(settings, group, topic) == total_messages, 60, "offsets committed"
            )
        finally:
            assert proc.stop() == 0, proc.output()
        out = proc.output()
        assert "warehouse: inserted=" in out and "stopped cleanly" in out
        errors = client.query("SELECT raw, reason FROM engagement_enriched_errors").result_rows
        assert errors == [(malformed.decode(), "bad_json")]

        # replay the whole topic: reset the bridge group's offsets to the beginning, restart it
        reset_to_beginning(settings, group, topic)
        assert committed(settings, group, topic) == 0
        proc = run_bridge(database, "--max-wait", "0.2")
        try:
            harness.wait_for(lambda: committed(settings, group, topic) == total_messages, 60, "the replay")
        finally:
            assert proc.stop() == 0, proc.output()
        # nothing changed but the error log, which records every delivery it saw
        assert final_counts() == (n, n, 2)
        assert client.command("SELECT count() FROM engagement_enriched") >= n  # copies until merged


def test_a_failed_insert_commits_nothing(stack: StackHandle, names: dict[str, str]) -> None:
    settings = stack.settings
    topic, group = names["topic"] + ".fail", names["group"]
    ensure_topics(settings.kafka_bootstrap_servers, [TopicSpec(topic, 1)], bounds=settings_bounds(settings))
    produce(settings, [raw(enriched(1))], topic)
    with fresh_database(settings, "fail") as (database, _client):
        config = Config(
            topic=topic, group=group, database=database, table="no_such_table", create_topic=False
        )
        bridge = WarehouseBridge(settings, config)
        try:
            consumer = bridge.open()
            records = harness.wait_for(
                lambda: [m for m in consumer.consume(10, timeout=1.0) if m.error() is None], 30, "a record"
            )
            with pytest.raises(RuntimeError, match="batch not committed"):
                bridge.flush(records, SimpleNamespace(requested=True))  # type: ignore[arg-type]
        finally:
            bridge.close()
    assert committed(settings, group, topic) == 0
    # sanity: the same batch goes in once the table is right
    with fresh_database(settings, "ok") as (database, client):
        bridge = WarehouseBridge(
            settings, Config(topic=topic, group=group, database=database, create_topic=False)
        )
        try:
            bridge.open()
            bridge.loop(until=lambda: bridge.inserted >= 1)
        finally:
            bridge.close()
        assert client.command(f"SELECT count() FROM {ddl.ENRICHED} FINAL") == 1
    assert committed(settings, group, topic) == 1
