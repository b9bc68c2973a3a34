"""`consume warehouse`: the local bridge from engagement_enriched into ClickHouse, on real services."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from engagement_platform.streaming import kafka_io
from engagement_platform.streaming.kafka_io import next_offsets
from engagement_platform.streaming.topics import ENRICHED, TopicSpec, ensure_topics, settings_bounds
from engagement_platform.streaming.warehouse_runner import Config, WarehouseBridge
from engagement_platform.warehouse import ddl
from engagement_platform_tests.defs.warehouse.helpers import enriched, fresh_database, raw
from engagement_platform_tests.harness import CLI, StackHandle, start_stack, stop_stack


def test_next_offsets_commit_past_the_last_record_of_each_partition() -> None:
    msgs = [
        SimpleNamespace(topic=lambda: "t", partition=lambda p=p: p, offset=lambda o=o: o)
        for p, o in [(0, 5), (1, 2), (0, 7), (0, 6)]
    ]
    got = {(tp.topic, tp.partition, tp.offset) for tp in next_offsets(msgs)}  # type: ignore[arg-type]
    assert got == {("t", 0, 8), ("t", 1, 3)}


@pytest.fixture(scope="module")
def bridge_stack() -> Iterator[StackHandle]:
    handle = start_stack("ep-wh-bridge-", ("kafka", "clickhouse"))
    try:
        ensure_topics(
            handle.settings.kafka_bootstrap_servers,
            [TopicSpec(ENRICHED, handle.settings.topic_partitions)],
            bounds=settings_bounds(handle.settings),
        )
        yield handle
    finally:
        stop_stack(handle)


def produce(settings, values: list[bytes], topic: str = ENRICHED) -> None:  # type: ignore[no-untyped-def]
    producer = Producer(kafka_io.producer_config(settings))
    for i, value in enumerate(values):
        producer.produce(topic, value=value, key=str(i % 10).encode())
    assert producer.flush(30) == 0


def committed(settings, group: str, topic: str = ENRICHED) -> int:  # type: ignore[no-untyped-def]
    consumer = Consumer(kafka_io.consumer_config(settings, group))
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10))
    finally:
        consumer.close()


def reset_to_beginning(settings, group: str, topic: str = ENRICHED) -> None:  # type: ignore[no-untyped-def]
    """What `kafka-consumer-groups --reset-offsets --to-earliest` does, for a stopped group."""
    consumer = Consumer(kafka_io.consumer_config(settings, group))
    try:
        partitions = [TopicPartition(topic, p, 0) for p in range(settings.topic_partitions)]
        consumer.commit(offsets=partitions, asynchronous=False)
    finally:
        consumer.close()


def wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def run_bridge(stack: StackHandle, database: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "consume", "warehouse", "--summary-every", "1", *args],
        env={**stack.env, "CLICKHOUSE_DATABASE": database},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    return out


def test_bridge_loads_commits_and_a_replay_changes_no_count(bridge_stack) -> None:
    settings = bridge_stack.settings
    n = 3000
    valid = [
        raw(enriched(i, event_ts=f"2026-11-29T19:{i % 60:02d}:00.{i % 1000:03d}Z")) for i in range(1, n + 1)
    ]
    malformed = b'{"event_id": 1, "event_ts": "not a time"'
    # at-least-once upstream: 300 events twice on the topic already
    produce(settings, valid + valid[:300] + [malformed])
    total_messages = n + 300 + 1
    with fresh_database(settings, "bridge") as (database, client):

        def final_counts() -> tuple[int, int, int]:
            row = client.query(
                "SELECT (SELECT count() FROM engagement_enriched FINAL), "
                "(SELECT uniqExactMerge(events) FROM content_engagement_minute), "
                "(SELECT count() FROM engagement_enriched_errors)"
            ).result_rows[0]
            return tuple(int(x) for x in row)  # type: ignore[return-value]

        proc = run_bridge(bridge_stack, database)
        try:
            wait_for(lambda: final_counts() == (n, n, 1), what="the bridge to load every event")
            wait_for(lambda: committed(settings, "warehouse") == total_messages, what="offsets committed")
        finally:
            out = stop(proc)
        assert "warehouse: inserted=" in out and "stopped cleanly" in out
        errors = client.query("SELECT raw, reason FROM engagement_enriched_errors").result_rows
        assert errors == [(malformed.decode(), "bad_json")]

        # replay the whole topic: reset the bridge group's offsets to the beginning, restart it
        reset_to_beginning(settings, "warehouse")
        assert committed(settings, "warehouse") == 0
        proc = run_bridge(bridge_stack, database, "--max-wait", "0.2")
        try:
            wait_for(lambda: committed(settings, "warehouse") == total_messages, what="the replay")
        finally:
            stop(proc)
        # nothing changed but the error log, which records every delivery it saw
        assert final_counts() == (n, n, 2)
        assert client.command("SELECT count() FROM engagement_enriched") >= n  # copies until merged


def test_a_failed_insert_commits_nothing(bridge_stack) -> None:
    settings = bridge_stack.settings
    topic = "warehouse.test.fail"
    ensure_topics(settings.kafka_bootstrap_servers, [TopicSpec(topic, 1)], bounds=settings_bounds(settings))
    produce(settings, [raw(enriched(1))], topic)
    with fresh_database(settings, "fail") as (database, _client):
        config = Config(
            topic=topic, group="fail-group", database=database, table="no_such_table", create_topic=False
        )
        bridge = WarehouseBridge(settings, config)
        try:
            consumer = bridge.open()
            records = []
            deadline = time.monotonic() + 30
            while not records and time.monotonic() < deadline:
                records = [m for m in consumer.consume(10, timeout=1.0) if m.error() is None]
            assert records
            with pytest.raises(RuntimeError, match="batch not committed"):
                bridge.flush(records, SimpleNamespace(requested=True))  # type: ignore[arg-type]
        finally:
            bridge.close()
    assert committed(settings, "fail-group", topic) == 0
    # sanity: the same batch goes in once the table is right
    with fresh_database(settings, "ok") as (database, client):
        bridge = WarehouseBridge(
            settings, Config(topic=topic, group="fail-group", database=database, create_topic=False)
        )
        try:
            bridge.open()
            bridge.loop(until=lambda: bridge.inserted >= 1)
        finally:
            bridge.close()
        assert client.command(f"SELECT count() FROM {ddl.ENRICHED} FINAL") == 1
    assert committed(settings, "fail-group", topic) == 1
