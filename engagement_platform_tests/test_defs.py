"""The code location loads, and holds exactly the assets, checks, sensors and schedules of its snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import dagster as dg
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from engagement_platform.defs.config import OWNERS


def load() -> dg.Definitions:
    from engagement_platform.definitions import defs

    return defs


def _summary(defs: dg.Definitions) -> dict[str, Any]:
    """What users see of the code location, as plain data: each asset's group, kinds, owners,
    description, writer and upstream assets; the checks with their descriptions; the jobs, the
    sensors and schedules with their default status; the resources' names."""
    graph = defs.resolve_asset_graph()
    assets = {
        spec.key.to_user_string(): {
            "group": spec.group_name,
            "kinds": sorted(spec.kinds),
            "owners": list(spec.owners),
            "description": spec.description,
            "writer": spec.tags.get("writer"),
            "deps": sorted(dep.asset_key.to_user_string() for dep in spec.deps),
        }
        for spec in defs.resolve_all_asset_specs()
    }
    checks = {key.to_user_string(): graph.get_check_spec(key).description for key in graph.asset_check_keys}
    return {
        "assets": dict(sorted(assets.items())),
        "checks": dict(sorted(checks.items())),
        "jobs": sorted(j.name for j in defs.jobs or []),
        "sensors": {s.name: s.default_status.value for s in sorted(defs.sensors or [], key=lambda s: s.name)},
        "schedules": {
            s.name: {"cron": s.cron_schedule, "status": s.default_status.value}
            for s in sorted(defs.get_repository_def().schedule_defs, key=lambda s: s.name)
        },
        "resources": sorted(defs.resources or {}),
    }


def test_the_definitions_match_their_snapshot(snapshot: SnapshotAssertion) -> None:
    """A change to what the UI shows (an asset, a lineage edge, a check, a sensor, a description)
    shows up as a snapshot diff; accept one with ``pytest --snapshot-update`` and review it."""
    assert _summary(load()) == snapshot(extension_class=JSONSnapshotExtension)


def test_every_asset_has_an_owner_a_description_and_a_writer() -> None:
    for name, asset in _summary(load())["assets"].items():
        assert asset["owners"] == OWNERS and asset["description"] and asset["writer"], name


def test_sensors_and_schedules_run_by_default() -> None:
    defs = load()
    assert all(s.default_status is dg.DefaultSensorStatus.RUNNING for s in defs.sensors or [])
    assert all(s.default_status is dg.DefaultScheduleStatus.RUNNING for s in defs.schedules or [])


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
