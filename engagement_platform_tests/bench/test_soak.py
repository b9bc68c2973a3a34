"""The soak's growth rule and its Redis arithmetic (pure), and a short soak on a real stack."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from engagement_platform.bench.soak import (
    Samples,
    grew,
    hour_projection_mib,
    over_cap,
    redis_per_1000,
    service_tree,
    verdicts,
)
from engagement_platform_tests.harness import StackHandle


def test_growth_counts_only_after_the_warm_up_sample() -> None:
    # 100 -> 300 MiB while warming up, then flat: a JVM filling its heap, not a leak
    assert not grew([100, 200, 300, 300, 305, 310], warmup=2)


def test_growth_above_ten_percent_of_the_warm_up_sample_fails() -> None:
    assert grew([100, 200, 300, 320, 340], warmup=2)  # +13%
    assert not grew([100, 200, 300, 320, 329], warmup=2)  # +9.7%


def test_small_processes_need_more_than_the_floor_to_fail() -> None:
    # +25% of 20 MiB is 5 MiB: allocator noise, under the 8 MiB floor
    assert not grew([20, 20, 20, 25], warmup=1)
    assert grew([20, 20, 20, 29], warmup=1)


def test_a_spike_that_went_away_is_not_growth() -> None:
    assert not grew([300, 300, 600, 310], warmup=1)


def test_a_run_shorter_than_its_warm_up_cannot_fail_and_says_so() -> None:
    assert not grew([100, 500, 900], warmup=2)  # the warm-up sample is the last: nothing after it
    (verdict,) = verdicts({"redis": [100, 500, 900]}, warmup=2)
    assert verdict.warm_mib is None and not verdict.grew
    assert verdict.note == "run too short to judge"


def test_verdicts_name_what_grew() -> None:
    found = verdicts({"kafka": [400, 470, 472, 480], "warehouse": [10, 50, 90, 130]}, warmup=1)
    assert [(v.name, v.grew) for v in found] == [("kafka", False), ("warehouse", True)]
    assert found[1].note.endswith("GREW")


def test_redis_per_1000_events_and_the_hour_projection() -> None:
    # 2 MiB more for 10,000 events: 209,715 bytes per 1,000
    samples = Samples(events=[0, 5_000, 10_000], redis_mib=[1.0, 2.0, 3.0])
    assert redis_per_1000(samples) == pytest.approx(2 * 2**20 / 10)
    # 3.6 million events at that cost, on top of the start
    assert hour_projection_mib(samples) == pytest.approx(1.0 + 2 * 360)


def test_no_events_means_no_redis_figure() -> None:
    assert redis_per_1000(Samples(events=[0, 0], redis_mib=[1.0, 1.5])) is None


def test_redis_is_held_to_its_cap_not_to_the_growth_rule() -> None:
    growing = [5.0 + i for i in range(20)]  # keys kept 70-130 minutes: grows through the run
    [other, redis] = verdicts({"redis": growing, "other": growing}, warmup=10)
    assert not redis.grew and "cap" in redis.note
    assert other.grew
    assert not over_cap(Samples(redis_mib=[1.0, 12.0, 49.9]))
    assert over_cap(Samples(redis_mib=[1.0, 50.5, 20.0]))


# a parent with two children and a grandchild under each: one child says it is a Dagster run
# worker (argv after -c is the child's own), the other is an ordinary long-lived child
FAMILY = textwrap.dedent(
    """
    import subprocess, sys, time
    nap = "import time; time.sleep(60)"
    sleeper = f"import subprocess as s, sys, time; s.Popen([sys.executable, '-c', {nap!r}]); time.sleep(60)"
    subprocess.Popen([sys.executable, "-c", sleeper, "dagster", "api", "execute_run", "{}"])
    subprocess.Popen([sys.executable, "-c", sleeper, "worker"])
    time.sleep(60)
    """
)


def test_a_service_s_tree_leaves_out_dagster_run_workers_and_their_children() -> None:
    parent = subprocess.Popen([sys.executable, "-c", FAMILY])
    try:
        family = psutil.Process(parent.pid)
        deadline = time.monotonic() + 30
        while len(family.children(recursive=True)) < 4:  # two children, a grandchild each
            assert time.monotonic() < deadline, "the family did not start"
            time.sleep(0.05)
        [worker] = [c for c in family.children() if c.cmdline()[-1] == "worker"]
        expected = {parent.pid, worker.pid, *(c.pid for c in worker.children())}
        assert {p.pid for p in service_tree(parent.pid)} == expected
    finally:
        for p in psutil.Process(parent.pid).children(recursive=True):
            p.kill()
        parent.kill()
        parent.wait()
    assert service_tree(parent.pid) == []


@pytest.mark.slow
def test_a_short_soak_samples_every_process_the_disk_and_redis(platform: StackHandle, tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    result = platform.cli(
        "bench", "soak", "--rate", "100", "--duration", "6", "--every", "2", "--warmup", "1",
        "--json", str(out), check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr  # 1: a process grew in 6 s of warm-up, allowed here
    samples = json.loads(out.read_text())["samples"]
    assert len(samples["redis_used_memory_mib"]) == 4 and min(samples["redis_used_memory_mib"]) > 0
    assert samples["events"][-1] > 0 and not samples["exited"], samples
    for name in ("enrich", "leaderboard", "leaderboard_seconds", "warehouse", "simulator", "kafka", "redis"):
        assert len(samples["rss_mib"][name]) == 4, (name, samples["rss_mib"])
