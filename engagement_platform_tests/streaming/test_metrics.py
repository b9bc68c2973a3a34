"""Each consumer serves Prometheus /metrics on loopback; the text parses and the counters move."""

from __future__ import annotations

import contextlib
import urllib.request
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from engagement_platform.bench import data
from engagement_platform.streaming import kafka_io, topics
from engagement_platform.streaming.metrics import ConsumerMetrics
from engagement_platform_tests.defs.warehouse.helpers import fresh_database
from engagement_platform_tests.harness import Child, StackHandle, free_ports, produce_records, wait_for


def scrape(port: int) -> dict[str, float]:
    """Every sample of /metrics by name (labels dropped: one consumer per process)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}


def test_summary_counters_are_metrics_and_in_out_follow_the_consumers_names() -> None:
    metrics = ConsumerMetrics("leaderboard", records_in="processed", records_out="applied")
    summary = kafka_io.Summary("leaderboard", metrics=metrics)
    summary.add(processed=10, applied=7, duplicates=3)
    metrics.batch(10, 0.02)
    metrics.lag(42)
    metrics.committed()
    from prometheus_client import generate_latest

    samples = {
        s.name: s.value
        for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        for s in family.samples
    }
    assert samples["ep_consumer_processed_total"] == 10 and samples["ep_consumer_duplicates_total"] == 3
    assert samples["ep_consumer_records_in_total"] == 10 and samples["ep_consumer_records_out_total"] == 7
    assert samples["ep_consumer_batch_size_count"] == 1 and samples["ep_consumer_lag_messages"] == 42
    assert samples["ep_consumer_last_commit_timestamp_seconds"] > 1.7e9


@pytest.mark.parametrize("consumer", ["enrich", "leaderboard", "warehouse"])
def test_each_consumer_serves_metrics_whose_counters_move(
    stack: StackHandle, spawn: Callable[..., Child], consumer: str
) -> None:
    run = uuid.uuid4().hex[:8]
    [port] = free_ports(1)
    contents, stream = data.synthetic(5, 40, seed=7, span_seconds=60)
    events = list(stream)
    producer = Producer({"bootstrap.servers": stack.settings.kafka_bootstrap_servers})
    bounds = topics.settings_bounds(stack.settings)
    if consumer == "enrich":
        names = {
            t: f"m{run}.{t}"
            for t in (topics.CONTENT_FLAT, topics.EVENTS_FLAT, topics.ENRICHED, topics.ENRICHED_DLQ)
        }
        specs = [topics.TopicSpec(n, 1) for n in names.values()]
        topics.ensure_topics(stack.settings.kafka_bootstrap_servers, specs, bounds=bounds)
        produce_records(producer, names[topics.CONTENT_FLAT], map(data.flat_content, contents))
        produce_records(producer, names[topics.EVENTS_FLAT], events)
        args = ["--events-topic", names[topics.EVENTS_FLAT], "--content-topic", names[topics.CONTENT_FLAT],
                "--output-topic", names[topics.ENRICHED],
                "--dlq-topic", names[topics.ENRICHED_DLQ]]  # fmt: skip
    else:
        topic = f"m{run}.enriched"
        topics.ensure_topics(
            stack.settings.kafka_bootstrap_servers, [topics.TopicSpec(topic, 1)], bounds=bounds
        )
        produce_records(producer, topic, data.enriched(contents, events))
        args = ["--topic", topic]
        if consumer == "leaderboard":
            args += ["--key-prefix", f"m{run}:"]
    group = ["--group", f"m{run}", "--metrics-port", str(port)]
    with contextlib.ExitStack() as scope:
        env = None
        if consumer == "warehouse":  # a database of its own, with the schema
            database, _client = scope.enter_context(fresh_database(stack.settings, "metrics"))
            env = {"CLICKHOUSE_DATABASE": database}
        child = spawn("consume", consumer, *group, *args, name=consumer, env=env)
        watch(child, port, len(events))


def watch(child: Child, port: int, events: int) -> None:
    """The counters move as the consumer works, and it stops cleanly."""

    def counted() -> bool:
        samples = scrape(port)
        written = samples.get("ep_consumer_records_out_total", 0) >= events
        return written and "ep_consumer_last_commit_timestamp_seconds" in samples

    wait_for(
        counted,
        60,
        f"{events} records counted out and a commit",
        alive=child.alive,
        describe=child.output,
    )
    samples = scrape(port)
    assert samples["ep_consumer_records_in_total"] >= events
    assert samples["ep_consumer_batch_size_count"] >= 1 and samples["ep_consumer_batch_seconds_count"] >= 1
    assert samples["ep_consumer_last_commit_timestamp_seconds"] > 1.7e9
    assert "ep_consumer_lag_messages" in samples
    assert child.stop() == 0
