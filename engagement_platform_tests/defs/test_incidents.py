"""A stopped consumer, end to end through Dagster: lag in messages and seconds, freshness, exactly
one alert on a real webhook, and exactly one recovery once it runs again.

The platform runs on a stack of this module's own (the sensors watch the platform's fixed topics
and groups); the sensors are evaluated the way the daemon evaluates them (``harness.tick``:
their events are recorded in a Dagster instance the freshness and alert sensors then read).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg2
import pytest
import redis

from engagement_platform.defs.alerts.resources import AlertsResource
from engagement_platform.defs.alerts.sensors import alerts_sensor
from engagement_platform.defs.kafka import checks as lag_checks
from engagement_platform.defs.kafka.sensors import kafka_activity_monitor
from engagement_platform.warehouse.ddl import connect_settings
from engagement_platform_tests import harness as harness_ids
from engagement_platform_tests.defs import resources as test_resources
from engagement_platform_tests.harness import (
    Consumers,
    StackHandle,
    WebhookReceiver,
    newest_event_id,
    postgres_clickhouse_diff,
    set_up_stack,
    tick,
    wait_for,
)

pytestmark = pytest.mark.slow

FRESH = (15.0, 600.0)  # seconds: beyond Debezium's 10 s heartbeat, well short of the platform's 90 s


@pytest.fixture(scope="module")
def platform() -> Iterator[StackHandle]:
    with set_up_stack("ep-test-incidents-") as handle:
        yield handle


class Sensors:
    """The lag, topic-activity and alert sensors, ticking against one instance."""

    def __init__(self, handle: StackHandle, instance: dg.DagsterInstance, webhook_url: str) -> None:
        from engagement_platform.definitions import defs

        s = handle.settings
        self.instance = instance
        self.repository = defs.get_repository_def()
        self.resources = {
            "kafka": test_resources.kafka(s),
            "postgres": test_resources.postgres(s),
            "clickhouse": test_resources.clickhouse(s, s.clickhouse_database),
            "alerts": AlertsResource(webhook_url=webhook_url),
        }
        self.activity = kafka_activity_monitor(FRESH).sensor("kafka_activity_test")
        self.cursors: dict[str, str | None] = {}

    def run(self, sensor: dg.SensorDefinition) -> object:
        result, self.cursors[sensor.name] = tick(
            sensor, self.instance, self.resources, self.cursors.get(sensor.name), self.repository
        )
        return result

    def round(self) -> None:
        """What the daemon does every 30 s, in the order the figures feed each other."""
        self.run(lag_checks.consumer_lag_sensor)
        self.run(self.activity)
        self.run(alerts_sensor)

    def latest(self, asset: str, check: str) -> dg.AssetCheckEvaluation:
        key = dg.AssetCheckKey(dg.AssetKey.from_user_string(asset), check)
        record = self.instance.get_latest_asset_check_evaluation_record(key)
        assert record is not None and record.evaluation is not None, key
        return record.evaluation


def caught_up(handle: StackHandle) -> bool:
    return postgres_clickhouse_diff(handle.settings).exact


def test_a_stopped_consumer_is_one_alert_and_one_recovery(platform: StackHandle) -> None:
    receiver = WebhookReceiver()
    try:
        with (
            dg.instance_for_test() as instance,
            Consumers(platform, "enrich", "leaderboard", "warehouse") as procs,
        ):
            sensors = Sensors(platform, instance, receiver.url)
            platform.cli("simulate", "--content", "20", "--events", "500", "--seed", "21")
            wait_for(lambda: caught_up(platform), 120, "the warehouse to hold every event")
            sensors.round()
            sensors.round()
            assert sensors.latest("kafka/engagement_events_flat", "enrich_consumer_lag").passed
            assert sensors.latest("kafka/engagement_enriched", "freshness").passed
            assert receiver.texts() == []  # a healthy platform says nothing

            procs.stop("enrich")
            before = newest_event_id(platform.settings)
            platform.cli("simulate", "--content", "20", "--events", "2000", "--seed", "22")
            assert newest_event_id(platform.settings) == before + 2000
            wait_for(
                lambda: (
                    sensors.run(lag_checks.consumer_lag_sensor) is not None
                    and sensors.latest("kafka/engagement_events_flat", "enrich_consumer_lag")
                    .metadata["lag"]
                    .value
                    == 2000
                ),
                60,
                "the 2,000 events to reach engagement_events.flat",
                step=1.0,
            )
            time.sleep(FRESH[0])  # the enriched topic has now not moved for longer than allowed
            sensors.round()
            sensors.round()
            lag = sensors.latest("kafka/engagement_events_flat", "enrich_consumer_lag").metadata
            assert lag["lag"].value == 2000 and lag["lag_seconds"].value > 0
            # below the lag thresholds yet, but what it should write has stopped moving
            assert not sensors.latest("kafka/engagement_enriched", "freshness").passed
            sensors.round()
            [alert] = receiver.texts()
            assert "consumer enrich" in alert and "kafka/engagement_enriched:freshness" in alert, alert

            procs.start("enrich")
            wait_for(lambda: caught_up(platform), 120, "the warehouse to catch up again")

            def recovered() -> bool:
                sensors.round()
                return len(receiver.texts()) > 1

            wait_for(recovered, 60, "the recovery message", step=1.0)
            sensors.round()
            sensors.round()
            assert (
                sensors.latest("kafka/engagement_events_flat", "enrich_consumer_lag").metadata["lag"].value
                == 0
            )
            assert sensors.latest("kafka/engagement_enriched", "freshness").passed
            assert len(receiver.texts()) == 2, "\n".join(receiver.texts())
            assert "RECOVERED consumer enrich" in receiver.texts()[1]
    finally:
        receiver.close()


# --------------------------------------------------------------------------- injected faults


def evaluate(sensor: dg.SensorDefinition, resources: dict, cursor: str | None = None):  # type: ignore[no-untyped-def,type-arg]
    """One tick; the evaluation of each check by name, and the cursor for the next tick."""
    context = dg.build_sensor_context(resources=resources, cursor=cursor)
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    found = {e.check_name: e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)}
    return found, context.cursor


def redis_client(handle: StackHandle) -> redis.Redis:
    return redis.Redis.from_url(handle.settings.redis_url)


def all_resources(handle: StackHandle) -> dict:  # type: ignore[type-arg]
    s = handle.settings
    return {
        "kafka": test_resources.kafka(s),
        "postgres": test_resources.postgres(s),
        "clickhouse": test_resources.clickhouse(s, s.clickhouse_database),
        "redis": test_resources.redis(s),
    }


def test_rows_deleted_in_clickhouse_fail_reconciliation_until_repaired(platform: StackHandle) -> None:
    from engagement_platform.defs.warehouse.checks import reconciliation_monitor
    from engagement_platform.warehouse import backfill
    from engagement_platform.warehouse.gate import IngestGate

    # everything up to now is a closed window here; the platform leaves two minutes in flight
    sensor = reconciliation_monitor(settle=timedelta(0)).sensor("reconciliation_test")
    resources = all_resources(platform)
    with Consumers(platform, "enrich", "warehouse"):
        platform.cli("simulate", "--content", "20", "--events", "300", "--seed", "31")
        wait_for(lambda: caught_up(platform), 120, "the warehouse to hold every event")
    found, _ = evaluate(sensor, resources)
    assert found["matches_postgres"].passed and found["no_duplicate_event_ids"].passed

    ch = connect_settings(platform.settings)
    conn = psycopg2.connect(platform.settings.postgres_dsn)
    try:
        victims = sorted(harness_ids.clickhouse_ids(ch))[-10:]
        ch.command(
            "DELETE FROM engagement_enriched WHERE event_id IN {ids:Array(UInt64)}",
            parameters={"ids": victims},
            settings={"mutations_sync": 2},
        )
        found, _ = evaluate(sensor, resources)
        broken = found["matches_postgres"]
        print(f"injected: 10 rows deleted in ClickHouse; found: {broken.description}")
        assert not broken.passed and broken.severity is dg.AssetCheckSeverity.ERROR
        assert broken.metadata["missing"].value == 10
        assert set(broken.metadata["missing_sample"].value) == set(victims)

        # the repair a user would run: load the day's missing events from Postgres
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        assert (
            backfill.backfill_day(
                conn, ch, today, today + timedelta(days=1), IngestGate(platform.settings.ep_home)
            ).inserted
            == 10
        )
        found, _ = evaluate(sensor, resources)
        assert found["matches_postgres"].passed, found["matches_postgres"].description
    finally:
        conn.close()
        ch.close()


def test_a_corrupted_leaderboard_bucket_fails_its_check_until_repaired(platform: StackHandle) -> None:
    from engagement_platform.defs.serving.checks import leaderboard_reconciliation_monitor

    # the current minute counts as closed here: nothing is written after the bulk load
    sensor = leaderboard_reconciliation_monitor(settle=timedelta(minutes=-1)).sensor("leaderboard_test")
    resources = all_resources(platform)
    with Consumers(platform, "enrich", "leaderboard", "warehouse"):
        platform.cli("simulate", "--content", "20", "--events", "300", "--seed", "32")
        wait_for(lambda: caught_up(platform), 120, "the warehouse to hold every event")
        wait_for(lambda: evaluate(sensor, resources)[0]["matches_warehouse"].passed, 60, "Redis to agree")
    client = redis_client(platform)
    try:
        [(bucket, member)] = [
            (key, members[0][0])
            for key in sorted(client.scan_iter("zset:eng:minute:*"))[-1:]
            if (members := client.zrange(key, 0, 0, withscores=True))
        ]
        client.zincrby(bucket, 5, member)
        found, _ = evaluate(sensor, resources)
        broken = found["matches_warehouse"]
        print(f"injected: +5 on {member!r} in {bucket!r}; found: {broken.description}")
        assert not broken.passed and broken.metadata["mismatched"].value == 1
        client.zincrby(bucket, -5, member)  # the repair
        assert evaluate(sensor, resources)[0]["matches_warehouse"].passed
    finally:
        client.close()


def test_a_poison_message_fails_enrichment_quality_and_then_clears(platform: StackHandle) -> None:
    from confluent_kafka import Producer

    from engagement_platform.defs.kafka.checks import enrichment_quality_monitor
    from engagement_platform.streaming import topics

    sensor = enrichment_quality_monitor().sensor("quality_test")
    resources = all_resources(platform)
    with Consumers(platform, "enrich", "warehouse"):
        found, cursor = evaluate(sensor, resources)
        producer = Producer({"bootstrap.servers": platform.settings.kafka_bootstrap_servers})
        producer.produce(topics.EVENTS_FLAT, b"{this is not json", b'{"content_id": "x"}')
        assert producer.flush(10) == 0
        platform.cli("simulate", "--content", "20", "--events", "200", "--seed", "33")
        wait_for(lambda: caught_up(platform), 120, "the warehouse to hold every event")
        found, cursor = evaluate(sensor, resources, cursor)
        broken = found["enrichment_quality"]
        print(f"injected: one malformed record on {topics.EVENTS_FLAT}; found: {broken.description}")
        assert not broken.passed and broken.metadata["dlq_records"].value == 1
        found, cursor = evaluate(sensor, resources, cursor)  # nothing malformed since: it clears
        assert found["enrichment_quality"].passed, found["enrichment_quality"].description
