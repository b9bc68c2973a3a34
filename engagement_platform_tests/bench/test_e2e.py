"""`bench e2e` end to end at a small rate, on a stack of its own (it runs the platform's own
groups and topics): every event reaches every stage, and the figures have their shape. No
timing is asserted; speed is for the command to print."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engagement_platform_tests.harness import StackHandle, set_up_stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def platform() -> Iterator[StackHandle]:
    with set_up_stack("ep-test-e2e-") as handle:
        yield handle


def test_every_event_reaches_kafka_redis_and_clickhouse_before_and_after_tuning(
    platform: StackHandle, tmp_path: Path
) -> None:
    out = tmp_path / "e2e.json"
    result = platform.cli(
        "bench", "e2e", "--rate", "300", "--duration", "5", "--variant", "both", "--json", str(out),
        timeout=600,
    )  # fmt: skip
    figures = json.loads(out.read_text())["results"]
    assert list(figures) == ["before", "after"]
    for variant, run in figures.items():
        assert run["written"] > 1000, (variant, run)
        for stage in ("enriched", "redis", "clickhouse"):
            got = run["latency_ms"][stage]
            assert (got["events"], got["missing"]) == (run["written"], 0), (variant, stage, got)
            assert 0 < got["p50"] <= got["p99"] <= got["max"], (variant, stage, got)
        assert run["lag_bounded"], run["lag_note"]
        assert {"enrich", "leaderboard", "warehouse", "kafka"} <= set(run["processes"])
    assert "Postgres commit ->" in result.stdout and "p99 ms" in result.stdout
