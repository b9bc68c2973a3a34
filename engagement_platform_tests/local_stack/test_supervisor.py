"""Stack lifecycle through the real CLI: idempotent up, visible crashes, down leaves nothing."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from engagement_platform.local_stack import process
from engagement_platform.local_stack.process import is_alive
from engagement_platform_tests.harness import start_stack, stop_stack

SUBSET = ("postgres", "kafka", "redis")


@pytest.fixture(scope="module")
def small_stack():
    handle = start_stack("ep-test-lifecycle-", SUBSET)
    try:
        yield handle
    finally:
        stop_stack(handle)


def status(handle) -> dict[str, dict]:
    result = handle.cli("stack", "status", "--json", check=False)
    payload = json.loads(result.stdout)
    assert set(payload) == {"services"}
    return {s["name"]: s for s in payload["services"]}


def test_status_json_shape(small_stack) -> None:
    services = status(small_stack)
    assert set(services) == {"postgres", "kafka", "cdc", "clickhouse", "redis"}
    for entry in services.values():
        assert set(entry) == {"name", "healthy", "pid", "endpoint"}
    s = small_stack.settings
    assert services["postgres"]["endpoint"] == (
        f"postgresql://{s.postgres_user}:{s.postgres_password}@127.0.0.1:{s.postgres_port}/{s.postgres_db}"
    )
    assert services["kafka"]["endpoint"] == f"127.0.0.1:{s.kafka_port}"
    assert services["cdc"]["endpoint"] == f"http://127.0.0.1:{s.connect_port}"
    assert services["clickhouse"]["endpoint"] == (
        f"http://{s.clickhouse_user}:{s.clickhouse_password}@127.0.0.1:{s.clickhouse_port}"
    )
    assert services["redis"]["endpoint"] == f"redis://127.0.0.1:{s.redis_port}/0"
    for name in SUBSET:
        assert services[name]["healthy"] is True
        assert isinstance(services[name]["pid"], int)
    # not started in this stack
    assert services["cdc"] == {**services["cdc"], "healthy": False, "pid": None}


def test_up_twice_leaves_running_services_alone(small_stack) -> None:
    before = {n: e["pid"] for n, e in status(small_stack).items()}
    result = small_stack.cli("stack", "up", *SUBSET)
    assert result.stdout.count("already running") == len(SUBSET)
    after = {n: e["pid"] for n, e in status(small_stack).items()}
    assert before == after


def test_a_crash_is_visible_and_up_brings_the_service_back(small_stack) -> None:
    record = small_stack.supervisor.running("redis")
    assert record is not None
    os.kill(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_alive(record) and time.monotonic() < deadline:
        time.sleep(0.05)
    entry = status(small_stack)["redis"]
    assert entry["healthy"] is False and entry["pid"] is None
    text = small_stack.cli("stack", "status", check=False)
    assert text.returncode == 1
    assert "CRASHED" in text.stdout
    small_stack.cli("stack", "up", "redis")
    entry = status(small_stack)["redis"]
    assert entry["healthy"] is True and entry["pid"] not in (None, record.pid)


def test_down_stops_every_process_it_started() -> None:
    handle = start_stack("ep-test-down-", SUBSET)
    records = [handle.supervisor.running(n) for n in SUBSET]
    assert all(records)
    # postgres runs a family of processes in its group: all of them must go
    pgid = os.getpgid(records[0].pid)
    stop_stack(handle)
    assert not any(is_alive(r) for r in records)
    assert process.group_members(pgid) == []
