"""replication_slot_sensor: the WAL Debezium's slot retains, read from the real database."""

from __future__ import annotations

import uuid

import dagster as dg
import psycopg2
import pytest

from engagement_platform.defs.alerts import Level
from engagement_platform.defs.postgres import sensors
from engagement_platform.defs.postgres.sensors import CHECK_KEY, SlotState, SlotThresholds, slot_verdict
from engagement_platform_tests.defs import resources as test_resources
from engagement_platform_tests.harness import materialize

GIB = 1024**3
LIMITS = SlotThresholds(warn_bytes=100, error_bytes=1000, inactive_warn_s=60, inactive_error_s=600)


def state(
    retained: int = 10, active: bool = True, inactive: float | None = None, wal: str = "reserved"
) -> SlotState:
    return SlotState(active, 123 if active else None, wal, retained, retained // 2, inactive)


# --------------------------------------------------------------------------- pure


@pytest.mark.parametrize(
    ("slot", "level"),
    [
        (state(retained=100), Level.OK),
        (state(retained=101), Level.WARN),
        (state(retained=1001), Level.ERROR),
        (state(active=False, inactive=30), Level.OK),  # a cdc restart
        (state(active=False, inactive=61), Level.WARN),
        (state(active=False, inactive=601), Level.ERROR),
        (state(active=False, inactive=None), Level.WARN),  # Postgres < 17 cannot say since when
        (state(wal="unreserved"), Level.WARN),
        (state(wal="lost"), Level.ERROR),
        (None, Level.ERROR),
    ],
)
def test_thresholds_grade_retention_inactivity_and_wal_status(slot: SlotState | None, level: Level) -> None:
    assert slot_verdict("s", slot, LIMITS).level is level


def test_the_worst_finding_wins_and_all_are_described() -> None:
    verdict = slot_verdict("s", state(retained=500, active=False, inactive=900), LIMITS)
    assert verdict.level is Level.ERROR
    assert "retains 500 B" in verdict.description and "900 s" in verdict.description


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
    return sensors.build_replication_slot_sensor(name=f"{name}_{uuid.uuid4().hex[:8]}", **kwargs)


def test_debeziums_slot_is_active_and_retains_a_measurable_amount(connector) -> None:  # type: ignore[no-untyped-def]
    evaluation, [observation] = evaluate(connector, sensors.replication_slot_sensor)
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
