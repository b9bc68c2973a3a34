"""`bench e2e`: its pure parts (stage figures, the rate search, the process names), and the
command end to end at a small rate, on a stack of its own (it runs the platform's own groups
and topics): every event reaches every stage, and the figures have their shape. No timing is
asserted; speed is for the command to print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engagement_platform.bench.e2e import (
    Outcome,
    RateSearch,
    Timeline,
    behind_line,
    cold_slices,
    cpu_line,
    process_pids,
    stage_figures,
)
from engagement_platform_tests.harness import StackHandle


def test_each_stage_counts_what_it_saw_and_what_it_missed() -> None:
    timeline = Timeline()
    timeline.add([1, 2, 3], [10.0, 10.0, 10.5])
    timeline.mark_each("cdc", {1: 10.05, 2: 10.1})
    timeline.mark_each("cdc", {1: 99.0})  # seen again later: the first sighting counts
    latencies = timeline.latencies_ms("cdc")
    assert sorted(round(x) for x in latencies) == [50, 100]
    figures = stage_figures(latencies, written=3)
    assert (figures["events"], figures["missing"]) == (2, 1)
    assert figures["p50"] <= figures["p99"] == figures["max"] == 100.0
    assert timeline.pending("cdc") == [3]


def test_the_search_climbs_the_ladder_then_bisects_to_the_precision() -> None:
    search = RateSearch(ladder=(1000, 2000, 4000), precision=0.1)
    tried = []
    while (rate := search.next()) is not None:
        tried.append(rate)
        search.record(rate, held=rate <= 2600)  # the platform holds up to 2,600/s
    assert tried[:3] == [1000, 2000, 4000]
    assert tried[3:] == [3000.0, 2500.0, 2750.0]  # each the middle of held and not held
    assert search.best() == 2500.0


def test_a_failed_hold_sends_the_search_below_it() -> None:
    search = RateSearch(ladder=(1000, 2000), precision=0.1)
    search.record(1000, True)
    search.record(2000, True)
    assert search.next() is None and search.best() == 2000  # the ladder is done: hold 2,000
    search.record(2000, False)  # the hold failed
    assert search.next() == 1500.0
    search.record(1500, True)
    assert search.next() == 1750.0


def test_when_the_first_rate_fails_the_search_halves_it() -> None:
    search = RateSearch(ladder=(1000,), precision=0.1)
    search.record(1000, False)
    assert search.next() == 500.0
    for rate in (500, 250, 125):
        search.record(rate, False)
    assert search.next() is None  # 62.5: below a tenth of the ladder's first and search.best() is None


def test_the_cold_window_is_cut_into_ten_second_slices() -> None:
    assert cold_slices(60) == [(0, 10), (10, 20), (20, 30), (30, 40), (40, 50), (50, 60)]
    assert cold_slices(25) == [(0, 10), (10, 20), (20, 25)]  # the last one shorter
    assert cold_slices(5) == [(0, 5)]


def test_a_window_holds_the_events_committed_within_it() -> None:
    timeline = Timeline()
    timeline.add([1, 2, 3], [100.0, 130.0, 161.0])
    timeline.mark_each("redis", {1: 100.5, 2: 130.05, 3: 161.2})
    assert timeline.committed_in((100.0, 160.0)) == [1, 2]
    assert sorted(round(ms) for ms in timeline.latencies_ms("redis", (100.0, 160.0))) == [50, 500]
    assert [round(ms) for ms in timeline.latencies_ms("redis", (160.0, 200.0))] == [200]
    assert len(timeline.latencies_ms("redis")) == 3


def test_processes_are_named_as_a_reader_knows_them() -> None:
    named = process_pids({"kafka": 1, "cdc": 2, "postgres": 3}, {"enrich": 4, "warehouse": 5}, [6, 7])
    assert named["connect"] == [2] and named["bridge"] == [5] and named["writers"] == [6, 7]
    assert {"kafka", "postgres", "enrich", "bench"} <= set(named)
    assert "cdc" not in named and "warehouse" not in named
    line = cpu_line({"kafka": {"cpu_percent": 20.0}, "connect": {"cpu_percent": 35.4}})
    assert line == "connect 35, kafka 20"


def outcome(written: int, connections: int, commit_ms: float) -> Outcome:
    return Outcome(1060, written, 20.0, {}, True, "", {}, 1, connections, 10.4, commit_ms)


def test_writers_that_fell_behind_say_whether_the_commits_or_the_cores_held_them() -> None:
    slow_commits = outcome(11_000, 22, 40.0)  # 22 connections at 40 ms: 550 transactions/s
    assert not slow_commits.kept_up and not slow_commits.held
    assert behind_line(slow_commits) == (
        "the writers could not keep up: 550 of 1,060 events/s asked (at worst 10.4 s behind; a commit "
        "took 40.0 ms: 22 connections commit at most ~550 of the 1,060 transactions/s asked; more "
        "--connections)"
    )
    assert behind_line(outcome(11_000, 22, 2.0)).endswith("the writers' cores were taken)")
    assert outcome(19_100, 22, 2.0).kept_up  # 955/s: 90% of the rate


@pytest.mark.slow
def test_every_event_committed_alone_reaches_every_stage_before_and_after_tuning(
    platform: StackHandle, tmp_path: Path
) -> None:
    out = tmp_path / "e2e.json"
    result = platform.cli(
        "bench", "e2e", "--rate", "300", "--duration", "5", "--tx-size", "1", "--variant", "both",
        "--json", str(out), timeout=600,
    )  # fmt: skip
    figures = json.loads(out.read_text())["results"]
    assert list(figures) == ["before", "after"]
    for variant, run in figures.items():
        assert run["written"] > 1000, (variant, run)
        assert (run["tx_size"], run["connections"]) == (1, 12), run
        for stage in ("cdc", "enriched", "redis", "clickhouse"):
            got = run["latency_ms"][stage]
            assert (got["events"], got["missing"]) == (run["written"], 0), (variant, stage, got)
            assert 0 < got["p50"] <= got["p99"] <= got["max"], (variant, stage, got)
        assert run["lag_bounded"], run["lag_note"]
        assert {"enrich", "leaderboard", "bridge", "kafka", "connect", "writers"} <= set(run["processes"])
    assert "Postgres commit ->" in result.stdout and "CDC (engagement_events.flat)" in result.stdout


@pytest.mark.slow
def test_cold_restarts_the_stack_and_reports_its_first_seconds_apart(
    platform: StackHandle, tmp_path: Path
) -> None:
    out = tmp_path / "cold.json"
    result = platform.cli(
        "bench", "e2e", "--cold", "5", "--rate", "200", "--duration", "5", "--json", str(out), timeout=600,
    )  # fmt: skip
    run = json.loads(out.read_text())["results"]["after"]
    assert run["stack_up_s"] > 0
    assert set(run["windows"]) == {"first", "steady"}
    for window in run["windows"].values():
        for stage in ("cdc", "enriched", "redis", "clickhouse"):
            assert window[stage]["missing"] == 0 and window[stage]["events"] > 0, window
    firsts = (
        run["windows"]["first"]["clickhouse"]["events"] + run["windows"]["steady"]["clickhouse"]["events"]
    )
    assert firsts == run["written"]  # the two windows split the run
    assert list(run["slices"]) == ["0-5 s"]  # the first window by 10 s: one slice of 5 s
    assert run["slices"]["0-5 s"]["clickhouse"]["events"] == run["windows"]["first"]["clickhouse"]["events"]
    assert "kafka: up at" in result.stdout + result.stderr  # the stack was restarted
    assert "right after `stack up`" in result.stdout and "/ steady p99" in result.stdout + result.stderr
