"""Stack lifecycle through the real CLI: idempotent up, visible crashes, down leaves nothing."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from engagement_platform.local_stack import process
from engagement_platform.local_stack.process import is_alive
from engagement_platform.local_stack.service import Service
from engagement_platform.local_stack.supervisor import Supervisor
from engagement_platform.settings import ENV_VARS, Settings, load
from engagement_platform_tests.harness import (
    StackHandle,
    make_ep_home,
    stack_env,
    start_stack,
    stop_stack,
    wait_for,
)

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
    assert services["redis"]["endpoint"] == f"redis://:{s.redis_password}@127.0.0.1:{s.redis_port}/0"
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


def test_no_password_is_printed_on_a_command_line_or_in_a_log() -> None:
    """Every secret set to a value of its own: `stack up` and `stack status` print endpoints with
    ``***``, no service's processes carry one in their argv, no service log holds one; the
    ``--json`` status keeps whole endpoints (for tools)."""
    passwords = {
        name: f"pw-{name.lower().replace('_', '-')}-{os.getpid()}"
        for name, field in ENV_VARS.items()
        if name.endswith("_PASSWORD") and not Settings.model_fields[field].repr
    }
    services = ("postgres", "redis", "clickhouse")
    handle = StackHandle({**stack_env(make_ep_home("ep-test-secrets-")), **passwords})
    try:
        up = handle.cli("stack", "up", *services)
        assert up.stdout.count(":***@") == 3, up.stdout  # "postgres: up at postgresql://...:***@..."
        text = handle.cli("stack", "status", check=False).stdout
        s = handle.settings
        assert f"postgresql://{s.postgres_user}:***@127.0.0.1:{s.postgres_port}/" in text
        assert f"http://{s.clickhouse_user}:***@127.0.0.1:{s.clickhouse_port}" in text
        assert f"redis://:***@127.0.0.1:{s.redis_port}/0" in text
        assert status(handle)["postgres"]["endpoint"] == s.postgres_dsn
        argv = [
            " ".join(p.cmdline())
            for name in services
            for p in _family(handle.supervisor.running(name).pid)  # type: ignore[union-attr]
        ]
        logs = [handle.supervisor.log_file(name).read_text(errors="replace") for name in services]
        for variable, secret in passwords.items():
            for where, content in (
                ("up", up.stdout + up.stderr),
                ("status", text),
                *(("argv", a) for a in argv),
            ):
                assert secret not in content, f"{variable} in {where}"
            assert not any(secret in log for log in logs), f"{variable} in a service log"
    finally:
        stop_stack(handle)


def _family(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


class SlowToStop(Service):
    """A process whose clean shutdown takes seconds after SIGTERM, as a Kafka node's does."""

    name = "slow"
    min_uptime = 0.5

    @property
    def endpoint(self) -> str:
        return "-"

    def argv(self, data_dir: Path) -> list[str]:
        script = (
            "import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(5), sys.exit(0)))\n"
            "while True: time.sleep(1)\n"
        )
        return [sys.executable, "-c", script]

    def healthy(self) -> bool:
        return True


def test_a_stop_on_purpose_drops_the_pid_file_before_the_process_is_gone(tmp_path: Path) -> None:
    """`up` restarts a service whose process died while its pid file remains: a deliberate stop
    must not look like that at any moment, or `up` starts a second copy (it did, in a rolling
    restart of a Kafka cluster: two nodes on one port)."""
    settings = load({"EP_HOME": str(tmp_path)})
    sup = Supervisor(settings, [SlowToStop(settings)])
    sup.up(log=lambda _line: None)
    record = sup.running("slow")
    assert record is not None
    stopping = threading.Thread(target=sup.down, kwargs={"log": lambda _line: None})
    stopping.start()
    try:
        wait_for(lambda: not sup.pid_file("slow").exists(), 10, "the pid file to go")
        assert is_alive(record), "the pid file outlived the process: `up` would restart it"
    finally:
        stopping.join(timeout=30)
    assert not is_alive(record)
