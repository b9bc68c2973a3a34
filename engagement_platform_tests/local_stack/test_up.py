"""`make up` end to end: the whole platform starts, data flows to Redis and ClickHouse,
and `engagement-platform down` from another process stops every process it started."""

from __future__ import annotations

import re
import subprocess
import threading
import time

import pytest

from engagement_platform.local_stack.process import is_alive
from engagement_platform.serving.top_content import top_content
from engagement_platform.warehouse.ddl import connect_settings
from engagement_platform_tests.harness import CLI, StackHandle, free_ports, make_ep_home, stack_env


@pytest.mark.slow
def test_up_runs_the_platform_and_down_stops_it() -> None:
    dagster_port, dashboard_port = free_ports(2)
    handle = StackHandle(
        {
            **stack_env(make_ep_home("ep-test-up-")),
            "DAGSTER_PORT": str(dagster_port),
            "DASHBOARD_PORT": str(dashboard_port),
        }
    )
    up = subprocess.Popen(
        [*CLI, "up"], env=handle.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(up.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()

    def wait_for_line(pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(lines):
                if re.search(pattern, line):
                    return line
            assert up.poll() is None, "".join(lines)
            time.sleep(0.5)
        raise AssertionError(f"no line matching {pattern!r}:\n{''.join(lines)}")

    try:
        wait_for_line("is up on the local embedded stack", 300)
        wait_for_line("State, data and logs:", 10)  # printed after every endpoint line
        for name in ("dagster", "dashboard"):
            assert any(line.split()[:1] == [name] for line in lines), "".join(lines)
        printed, s = "".join(lines), handle.settings  # endpoints for people: passwords masked
        assert f"postgresql://{s.postgres_user}:***@127.0.0.1:{s.postgres_port}/" in printed, printed
        for secret in (s.postgres_password, s.clickhouse_password, s.redis_password):
            assert f":{secret}@" not in printed, printed
        # records flow: CDC -> enrich; the pulse line counts enriched records
        wait_for_line(r"engagement_events\.flat \+[1-9].*engagement_enriched \+[1-9]", 120)
        wait_for_line(r"leaderboard \(10 min\): #1 ", 60)
        settings = handle.settings
        deadline = time.monotonic() + 60
        while not top_content(window_minutes=10, n=5, settings=settings) and time.monotonic() < deadline:
            time.sleep(1)
        assert top_content(window_minutes=10, n=5, settings=settings), "the leaderboard stays empty"
        client = connect_settings(settings)
        try:
            deadline = time.monotonic() + 60
            while int(client.command("SELECT count() FROM engagement_enriched")) == 0:
                assert time.monotonic() < deadline, "ClickHouse stays empty"
                time.sleep(1)
        finally:
            client.close()
        # both databases at their latest version
        status = handle.cli("migrate", "status", check=False)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "0 pending, 0 edited" in status.stdout, status.stdout
    finally:
        records = [sup.running(s.name) for sup in _supervisors(handle) for s in sup.services]
        down = subprocess.run([*CLI, "down"], env=handle.env, capture_output=True, text=True, timeout=120)
        code = up.wait(timeout=60)
    assert down.returncode == 0, down.stderr
    assert code == 0, "".join(lines)
    assert not [r for r in records if r is not None and is_alive(r)]


def _supervisors(handle: StackHandle):  # type: ignore[no-untyped-def]
    from engagement_platform.local_stack.up import supervisors

    return supervisors(handle.settings)
