"""The consumer lag checks and their sensor against the real broker: multi-record batches,
severities, groups that never committed, the platform's three checks."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from engagement_platform.defs.kafka import checks as lag_checks
from engagement_platform.defs.kafka.checks import LagThresholds, WatchedGroup
from engagement_platform.defs.kafka.resources import KafkaResource
from engagement_platform_tests import harness
from engagement_platform_tests.defs import resources as test_resources

KEY = dg.AssetKey(["kafka", "test_topic"])
# message thresholds alone: the records' age depends on how long the module has run
NO_AGE_LIMIT = {"warn_seconds": 1e9, "error_seconds": 1e9}

# --------------------------------------------------------------------------- real broker


def kafka_resource(stack) -> KafkaResource:  # type: ignore[no-untyped-def]
    return test_resources.kafka(stack.settings)


def evaluate(stack, groups: list[WatchedGroup], thresholds: LagThresholds) -> dg.SensorResult:  # type: ignore[no-untyped-def]
    sensor = harness.build_consumer_lag_sensor(
        name=f"lag_{uuid.uuid4().hex[:8]}", groups=groups, thresholds=thresholds
    )
    context = dg.build_sensor_context(resources={"kafka": kafka_resource(stack)})
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


@pytest.fixture(scope="module")
def produced(stack):  # type: ignore[no-untyped-def]
    """A fresh 3-partition topic holding 3 x 20,000 messages, produced in big batches so the last
    batch of every partition holds many records (the lag must count every record of it)."""
    bootstrap = stack.settings.kafka_bootstrap_servers
    topic = f"test-lag-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(30)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 200,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 100_000,
        }
    )
    per_partition = 20_000
    for i in range(per_partition * 3):
        producer.produce(topic, value=b'{"n": %d}' % i, partition=i % 3)
    assert producer.flush(60) == 0
    return topic, per_partition


def commit(stack, group: str, topic: str, offsets: dict[int, int]) -> None:  # type: ignore[no-untyped-def]
    consumer = Consumer(
        {
            "bootstrap.servers": stack.settings.kafka_bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()


def check(result: dg.SensorResult, group: str) -> dg.AssetCheckEvaluation:
    [evaluation] = [
        e
        for e in result.asset_events
        if isinstance(e, dg.AssetCheckEvaluation) and e.check_name == f"{group}_consumer_lag"
    ]
    return evaluation


def test_lag_equals_the_true_lag_after_multi_record_batches(stack, produced) -> None:  # type: ignore[no-untyped-def]
    topic, n = produced
    group = f"test-group-{uuid.uuid4().hex[:8]}"
    commit(stack, group, topic, {0: 1_000, 1: n})  # partition 2 never committed
    result = evaluate(
        stack, [WatchedGroup(group, topic, KEY)], LagThresholds(warn=50_000, error=100_000, **NO_AGE_LIMIT)
    )

    evaluation = check(result, group)
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    assert meta["high_watermark_by_partition"] == {"0": n, "1": n, "2": n}
    assert meta["lag_by_partition"] == {"0": n - 1_000, "1": 0, "2": n}
    assert meta["lag"] == 2 * n - 1_000
    assert meta["group"] == group and meta["topic"] == topic
    assert evaluation.passed  # 39,000 <= 50,000
    [observation] = [e for e in result.asset_events if isinstance(e, dg.AssetObservation)]
    assert observation.asset_key == KEY and observation.metadata[f"lag_{group}"].value == 2 * n - 1_000


def test_warn_and_error_severities_follow_the_thresholds(stack, produced) -> None:  # type: ignore[no-untyped-def]
    topic, n = produced
    group = f"test-group-{uuid.uuid4().hex[:8]}"
    commit(stack, group, topic, {0: n, 1: n, 2: n - 500})
    warn = check(
        evaluate(
            stack, [WatchedGroup(group, topic, KEY)], LagThresholds(warn=100, error=1_000, **NO_AGE_LIMIT)
        ),
        group,
    )
    assert not warn.passed and warn.severity is dg.AssetCheckSeverity.WARN
    error = check(
        evaluate(stack, [WatchedGroup(group, topic, KEY)], LagThresholds(warn=10, error=100, **NO_AGE_LIMIT)),
        group,
    )
    assert not error.passed and error.severity is dg.AssetCheckSeverity.ERROR
    assert error.metadata["lag"].value == 500


def test_seconds_behind_is_the_age_of_the_oldest_unconsumed_record(stack, produced) -> None:  # type: ignore[no-untyped-def]
    topic, n = produced
    group = f"test-age-{uuid.uuid4().hex[:8]}"
    commit(stack, group, topic, {0: n, 1: n, 2: n - 10})  # only partition 2 lags
    thresholds = LagThresholds(warn=1_000_000, error=2_000_000, warn_seconds=0.0, error_seconds=1e9)
    evaluation = check(evaluate(stack, [WatchedGroup(group, topic, KEY)], thresholds), group)
    by_partition = evaluation.metadata["lag_seconds_by_partition"].value
    assert by_partition["0"] == 0 and by_partition["1"] == 0  # caught up: 0, never negative
    assert by_partition["2"] > 0 and evaluation.metadata["lag_seconds"].value == by_partition["2"]
    assert not evaluation.passed and evaluation.severity is dg.AssetCheckSeverity.WARN  # above 0 s


def test_the_platform_sensor_fails_a_check_only_when_lag_persists(stack, produced) -> None:  # type: ignore[no-untyped-def]
    topic, n = produced
    group = f"test-sustain-{uuid.uuid4().hex[:8]}"
    commit(stack, group, topic, {0: n, 1: n, 2: n - 500})
    sensor = harness.build_consumer_lag_sensor(
        f"lag_{uuid.uuid4().hex[:8]}",
        [WatchedGroup(group, topic, KEY)],
        LagThresholds(warn=100, error=1_000, **NO_AGE_LIMIT),
        sustain=2,
    )
    cursor = None

    def tick() -> dg.AssetCheckEvaluation:
        nonlocal cursor
        context = dg.build_sensor_context(resources={"kafka": kafka_resource(stack)}, cursor=cursor)
        evaluation = check(sensor(context), group)
        cursor = context.cursor
        return evaluation

    first = tick()
    assert first.passed and "1 of 2 evaluations" in (first.description or "")
    second = tick()
    assert not second.passed and second.severity is dg.AssetCheckSeverity.WARN
    commit(stack, group, topic, {2: n})  # caught up: the check recovers and the streak starts over
    assert tick().passed
    commit(stack, group, topic, {2: n - 500})
    assert tick().passed  # one evaluation above the threshold again is no incident yet


def test_a_group_that_never_committed_is_reported_not_raised(stack, produced) -> None:  # type: ignore[no-untyped-def]
    topic, n = produced
    group = f"test-never-{uuid.uuid4().hex[:8]}"
    result = evaluate(
        stack,
        [
            WatchedGroup(group, topic, KEY),
            WatchedGroup(group, f"no-such-topic-{uuid.uuid4().hex[:6]}", KEY),
        ],
        LagThresholds(),
    )
    never, no_topic = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert not never.passed and "never committed" in (never.description or "")
    assert never.metadata["group_committed"].value is False
    assert never.metadata["lag"].value == 3 * n  # it would start from the beginning
    assert not no_topic.passed and "does not exist" in (no_topic.description or "")


def test_the_platform_sensor_reports_its_three_checks(stack) -> None:  # type: ignore[no-untyped-def]
    context = dg.build_sensor_context(
        resources={
            "kafka": kafka_resource(stack),
            "clickhouse": test_resources.clickhouse(stack.settings, "engagement"),
        }
    )
    result = lag_checks.consumer_lag_sensor(context)
    assert isinstance(result, dg.SensorResult)
    checks = {
        (e.asset_key.to_user_string(), e.check_name)
        for e in result.asset_events
        if isinstance(e, dg.AssetCheckEvaluation)
    }
    assert checks == {
        ("kafka/engagement_events_flat", "enrich_consumer_lag"),
        ("kafka/engagement_enriched", "leaderboard_consumer_lag"),
        ("kafka/engagement_enriched", "warehouse_consumer_lag"),
    }


def test_the_code_location_declares_the_checks_and_running_sensors() -> None:
    from engagement_platform.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.asset_check_keys}
    assert {
        "kafka/engagement_events_flat:enrich_consumer_lag",
        "kafka/engagement_enriched:leaderboard_consumer_lag",
        "kafka/engagement_enriched:warehouse_consumer_lag",
        "cdc/connector:connector_running",
        "postgres/engagement_events:replication_slot",
    } <= keys
    for name in ("consumer_lag_sensor", "connector_health_sensor", "replication_slot_sensor"):
        sensor = defs.resolve_sensor_def(name)
        assert sensor.default_status is dg.DefaultSensorStatus.RUNNING
        assert sensor.minimum_interval_seconds is not None and sensor.minimum_interval_seconds >= 30


def test_compose_mode_watches_the_group_of_clickhouses_kafka_engine() -> None:
    from engagement_platform.monitoring.lag import COMPOSE_WAREHOUSE_GROUP, consumer_groups
    from engagement_platform.settings import PROJECT_ROOT

    assert [g.group for g in consumer_groups("local")] == ["enrich", "leaderboard", "warehouse"]
    assert [g.group for g in consumer_groups("compose")][-1] == COMPOSE_WAREHOUSE_GROUP
    ddl = (PROJECT_ROOT / "clickhouse_ddl" / "010_queue.compose.sql").read_text()
    assert f"kafka_group_name = '{COMPOSE_WAREHOUSE_GROUP}'" in ddl
