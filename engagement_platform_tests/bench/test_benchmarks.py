"""The benchmark commands run end to end at small sizes and write their figures.

No timing is asserted (speed is for the commands to print); only that each measures all
of its variants and reports ratios, so the commands do not rot.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("name", "args", "peers"),
    [
        (
            "enrich",
            ["--events", "3000", "--baseline-events", "300", "--content", "20", "--runs", "1"],
            ["json_relay", "faust", "quix"],
        ),
        ("leaderboard", ["--events", "3000"], []),
    ],
)
def test_consumer_benchmarks_report_ours_baseline_ceiling(
    stack, tmp_path: Path, name: str, args: list[str], peers: list[str]
) -> None:
    out = tmp_path / f"{name}.json"
    result = stack.cli("bench", name, *args, "--json", str(out), timeout=600)
    figures = json.loads(out.read_text())
    assert list(figures["results"]) == ["ours", "baseline", "ceiling", *peers]
    assert all(r["events_per_s"] > 0 for r in figures["results"].values())
    assert set(figures["ratios"]) == {"ours_vs_baseline", "ours_vs_ceiling", *(f"ours_vs_{p}" for p in peers)}
    assert "ours" in result.stdout and "baseline" in result.stdout
    assert all(f"ours / {p}" in result.stdout for p in peers)


def test_warehouse_benchmark_reports_ingest_and_queries(stack, tmp_path: Path) -> None:
    out = tmp_path / "warehouse.json"
    database = f"bench_test_{uuid.uuid4().hex[:6]}"
    stack.cli(
        "bench", "warehouse", "--messages", "3000", "--baseline-messages", "20", "--query-rows", "20000",
        "--repeat", "1", "--database", database, "--json", str(out), timeout=600,
    )  # fmt: skip
    figures = json.loads(out.read_text())
    text = json.dumps(figures)
    assert "top content, last 7 days" in text and "all its queries in a row" in text
    assert "baseline" in text and "bridge" in text
