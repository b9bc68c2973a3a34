"""The code location loads, and holds exactly the assets, checks, sensors and schedules users see."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import dagster as dg

from engagement_platform.settings import PROJECT_ROOT

ASSETS = {
    "postgres/schema": "source",
    "postgres/content": "source",
    "postgres/engagement_events": "source",
    "cdc/connector": "source",
    "kafka/content_flat": "streaming",
    "kafka/engagement_events_flat": "streaming",
    "kafka/engagement_enriched": "streaming",
    "kafka/engagement_enriched_dlq": "streaming",
    "clickhouse/schema": "warehouse",
    "clickhouse/engagement_enriched": "warehouse",
    "clickhouse/engagement_enriched_errors": "warehouse",
    "clickhouse/content_engagement_minute": "warehouse",
    "clickhouse/history_backfill": "warehouse",
    "clickhouse/daily_content_engagement": "warehouse",
    "redis/leaderboard": "serving",
}
CHECKS = {
    "postgres/engagement_events:replication_slot",
    "cdc/connector:connector_running",
    "kafka/engagement_events_flat:enrich_consumer_lag",
    "kafka/engagement_enriched:leaderboard_consumer_lag",
    "kafka/engagement_enriched:warehouse_consumer_lag",
    "clickhouse/engagement_enriched:no_recent_parse_errors",
    "clickhouse/engagement_enriched:minute_rollup_matches_final",
    "clickhouse/daily_content_engagement:daily_matches_final",
    # the streaming assets' freshness, evaluated by their activity sensors
    "kafka/content_flat:freshness",
    "kafka/engagement_events_flat:freshness",
    "kafka/engagement_enriched:freshness",
    "clickhouse/engagement_enriched:freshness",
    "clickhouse/content_engagement_minute:freshness",
    "redis/leaderboard:freshness",
    # the data-quality checks that run on their own
    "kafka/engagement_enriched:enrichment_quality",
    "clickhouse/engagement_enriched:matches_postgres",
    "clickhouse/engagement_enriched:no_duplicate_event_ids",
    "redis/leaderboard:matches_warehouse",
}
EDGES = {
    ("postgres/schema", "postgres/engagement_events"),
    ("postgres/engagement_events", "kafka/engagement_events_flat"),
    ("cdc/connector", "kafka/engagement_events_flat"),
    ("kafka/engagement_events_flat", "kafka/engagement_enriched"),
    ("kafka/content_flat", "kafka/engagement_enriched"),
    ("kafka/engagement_enriched", "clickhouse/engagement_enriched"),
    ("kafka/engagement_enriched", "redis/leaderboard"),
    ("kafka/engagement_events_flat", "kafka/engagement_enriched_dlq"),
    ("kafka/engagement_enriched", "clickhouse/engagement_enriched_errors"),
    ("clickhouse/engagement_enriched", "clickhouse/content_engagement_minute"),
    ("clickhouse/history_backfill", "clickhouse/engagement_enriched"),
    ("clickhouse/engagement_enriched", "clickhouse/daily_content_engagement"),
}


def load() -> dg.Definitions:
    from engagement_platform.definitions import defs

    return defs


def test_assets_groups_owners_descriptions_and_lineage() -> None:
    specs = {spec.key.to_user_string(): spec for spec in load().resolve_all_asset_specs()}
    assert set(specs) == set(ASSETS)
    for name, spec in specs.items():
        assert spec.group_name == ASSETS[name], name
        assert spec.owners == ["team:engagement-data"], name
        assert spec.description, name
        assert spec.tags.get("writer"), name
    edges = {(dep.asset_key.to_user_string(), name) for name, spec in specs.items() for dep in spec.deps}
    assert edges >= EDGES, EDGES - edges


def test_checks_sensors_and_schedules() -> None:
    defs = load()
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.asset_check_keys} == CHECKS
    sensors = {s.name: s for s in defs.sensors or []}
    assert set(sensors) == {
        "consumer_lag_sensor",
        "connector_health_sensor",
        "replication_slot_sensor",
        "kafka_activity_sensor",
        "warehouse_activity_sensor",
        "leaderboard_activity_sensor",
        "enrichment_quality_sensor",
        "warehouse_reconciliation_sensor",
        "leaderboard_reconciliation_sensor",
        "alerts_sensor",
        "dlq_records_sensor",
    }
    assert all(s.default_status is dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    schedules = {s.name: s for s in defs.schedules or []}
    assert set(schedules) == {"daily_content_engagement_schedule", "warehouse_checks_schedule"}
    assert all(s.default_status is dg.DefaultScheduleStatus.RUNNING for s in schedules.values())
    jobs = {j.name for j in defs.jobs or []}
    assert jobs == {"daily_content_engagement_job", "warehouse_checks_job", "dlq_replay"}
    assert set(defs.resources or {}) == {"postgres", "kafka", "connect", "clickhouse", "redis", "alerts"}


def test_loading_the_definitions_touches_no_environment_variable() -> None:
    probe = (
        "import json, os; before = dict(os.environ); import engagement_platform.definitions; "
        "print(json.dumps({k: v for k, v in os.environ.items() if before.get(k) != v}))"
    )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "KAFKA_", "EP_", "CLICKHOUSE_"))
    }
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == {}


def test_nothing_outside_defs_imports_defs() -> None:
    package = PROJECT_ROOT / "engagement_platform"
    offenders = []
    for path in package.rglob("*.py"):
        if "defs" in path.relative_to(package).parts or path.name == "definitions.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(package)}: {n}" for n in names if n.startswith("engagement_platform.defs")
            ]
    assert not offenders


def test_dagster_validates_the_code_location(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    result = subprocess.run(
        [dagster, "definitions", "validate", "-m", "engagement_platform.definitions"],
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Validation successful" in result.stdout + result.stderr
