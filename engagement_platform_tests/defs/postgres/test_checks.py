"""replication_slot_sensor: the WAL Debezium's slot retains, read from the real database."""

from __future__ import annotations

import uuid

import dagster as dg
import psycopg2
import pytest

from engagement_platform.defs.postgres import checks
from engagement_platform.defs.postgres.checks import CHECK_KEY
from engagement_platform.monitoring.replication_slot import SlotThresholds
from engagement_platform_tests import harness
from engagement_platform_tests.defs import resources as test_resources
from engagement_platform_tests.harness import materialize

GIB = 1024**3

# --------------------------------------------------------------------------- real Postgres


@pytest.fixture(scope="module")
def connector(source_schema):  # type: ignore[no-untyped-def]
    result = materialize(source_schema, "postgres/schema,cdc/connector")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return source_schema


def resources(stack) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {
        "kafka": test_resources.kafka(stack.settings),
        "postgres": test_resources.postgres(stack.settings),
    }


def evaluate(stack, sensor: dg.SensorDefinition) -> tuple[dg.AssetCheckEvaluation, list[dg.AssetObservation]]:  # type: ignore[no-untyped-def]
    result = sensor(dg.build_sensor_context(resources=resources(stack)))
    assert isinstance(result, dg.SensorResult)
    [evaluation] = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert evaluation.asset_check_key == CHECK_KEY
    return evaluation, [e for e in result.asset_events if isinstance(e, dg.AssetObservation)]


def named(name: str, **kwargs) -> dg.SensorDefinition:  # type: ignore[no-untyped-def]
    return harness.build_replication_slot_sensor(name=f"{name}_{uuid.uuid4().hex[:8]}", **kwargs)


def test_debeziums_slot_is_active_and_retains_a_measurable_amount(connector) -> None:  # type: ignore[no-untyped-def]
    evaluation, [observation] = evaluate(connector, checks.replication_slot_sensor)
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    assert evaluation.passed, evaluation.description
    assert meta["slot"] == "engagement_slot"
    assert meta["active"] is True and meta["active_pid"] > 0
    assert meta["retained_wal_bytes"] >= 0 and meta["confirmed_flush_lag_bytes"] >= 0
    assert observation.asset_key == CHECK_KEY.asset_key
    assert observation.metadata["retained_wal_bytes"].value >= 0


def test_a_threshold_below_the_current_retention_fails(connector) -> None:  # type: ignore[no-untyped-def]
    # retention is >= 0 by construction, so -1 is below it whatever Debezium confirmed meanwhile
    warn, _ = evaluate(connector, named("warn", thresholds=SlotThresholds(warn_bytes=-1, error_bytes=GIB)))
    assert not warn.passed and warn.severity is dg.AssetCheckSeverity.WARN
    error, _ = evaluate(connector, named("error", thresholds=SlotThresholds(warn_bytes=-1, error_bytes=-1)))
    assert not error.passed and error.severity is dg.AssetCheckSeverity.ERROR
    assert "retains" in (error.description or "")


def test_an_inactive_slot_is_reported_with_its_idle_time(connector) -> None:  # type: ignore[no-untyped-def]
    slot = f"test_slot_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(connector.settings.postgres_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
            cur.execute("SELECT pg_logical_emit_message(false, 'ep-test', 'some wal')")
        evaluation, _ = evaluate(
            connector,
            named("inactive", slot_name_override=slot, thresholds=SlotThresholds(inactive_warn_s=-1)),
        )
        meta = {k: v.value for k, v in evaluation.metadata.items()}
        assert meta["active"] is False and meta["inactive_seconds"] >= 0
        assert meta["retained_wal_bytes"] > 0
        assert not evaluation.passed and evaluation.severity is dg.AssetCheckSeverity.WARN
        assert "no consumer attached" in (evaluation.description or "")
    finally:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        conn.close()


def test_a_missing_slot_is_an_error(connector) -> None:  # type: ignore[no-untyped-def]
    evaluation, observations = evaluate(connector, named("missing", slot_name_override="no_such_slot"))
    assert not evaluation.passed and evaluation.severity is dg.AssetCheckSeverity.ERROR
    assert "does not exist" in (evaluation.description or "") and observations == []
