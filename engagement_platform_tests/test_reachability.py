"""Without a running stack every command that needs it says, in one line and exit code 1,
which service is not reachable, where, and how to start it: no traceback, no wait. An
always-on consumer waits instead, saying so once. The endpoints point at ports nothing
listens on (no stack is started)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engagement_platform import reachability, settings
from engagement_platform_tests.harness import free_ports

CLI = [sys.executable, "-m", "engagement_platform.cli"]
SECRET = "s3cret-not-shown"


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every endpoint on a port nothing listens on, every password set."""
    pg, kafka, redis, clickhouse, connect = free_ports(5)
    return {
        "EP_HOME": str(tmp_path_factory.mktemp("ep-home")),
        "POSTGRES_PORT": str(pg),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "REDIS_PORT": str(redis),
        "CLICKHOUSE_PORT": str(clickhouse),
        "CONNECT_URL": f"http://127.0.0.1:{connect}",
        "POSTGRES_PASSWORD": SECRET,
        "CLICKHOUSE_PASSWORD": SECRET,
        "REDIS_PASSWORD": SECRET,
    }


# each command that needs the stack, and the first service it needs
COMMANDS = [
    (("simulate", "--events", "5"), "postgres"),
    (("sql", "SELECT 1"), "clickhouse"),
    (("migrate", "status"), "postgres"),
    (("migrate", "up"), "postgres"),
    (("bench", "enrich"), "kafka"),
    (("bench", "leaderboard"), "kafka"),
    (("bench", "warehouse"), "kafka"),
    (("bench", "e2e", "--duration", "1"), "postgres"),
    (("bench", "soak", "--duration", "1"), "postgres"),
    (("dlq", "replay"), "kafka"),
    (("dlq", "replay", "--warehouse"), "clickhouse"),
]


@pytest.mark.parametrize(("args", "service"), COMMANDS, ids=[" ".join(a) for a, _s in COMMANDS])
def test_a_command_without_its_service_says_which_in_one_line(
    closed: dict[str, str], args: tuple[str, ...], service: str
) -> None:
    began = time.monotonic()
    result = subprocess.run(
        [*CLI, *args],
        env={**os.environ, **closed},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1 and result.stdout == "", result.stderr
    where = {
        "postgres": f"127.0.0.1:{closed['POSTGRES_PORT']}",
        "kafka": closed["KAFKA_BOOTSTRAP_SERVERS"],
        "clickhouse": f"http://127.0.0.1:{closed['CLICKHOUSE_PORT']}",
    }[service]
    assert result.stderr == (
        f"engagement-platform: {service} is not reachable at {where} (connection refused); "
        f"start it with `engagement-platform stack up {service}` (the whole platform: `make up`)\n"
    )
    assert SECRET not in result.stderr
    assert time.monotonic() - began < 30  # nothing waited for a timeout


@pytest.mark.parametrize("consumer", ["enrich", "leaderboard", "warehouse"])
def test_a_consumer_waits_for_kafka_saying_so_once(closed: dict[str, str], consumer: str) -> None:
    """An always-on consumer started before its stack waits (``up`` restarts nothing for it):
    one line says for what, then it polls quietly until stopped."""
    child = subprocess.Popen(
        [*CLI, "consume", consumer],
        env={**os.environ, **closed},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stderr is not None
        first = child.stderr.readline()
        assert first.startswith(
            f"engagement-platform: kafka is not reachable at {closed['KAFKA_BOOTSTRAP_SERVERS']}"
        )
        assert first.endswith("; waiting for it\n")
        assert SECRET not in first
        assert child.poll() is None  # still waiting, not exited
    finally:
        child.terminate()
        child.wait(timeout=10)
    assert child.stderr.read() == ""  # the same cause is said once


def test_every_service_of_bench_e2e_is_checked_in_turn(closed: dict[str, str]) -> None:
    s = settings.load({**closed})
    found = [
        reachability.problem(s, service) for service in ("postgres", "kafka", "cdc", "redis", "clickhouse")
    ]
    assert all(line is not None and "connection refused" in line for line in found), found
    assert f"cdc is not reachable at {closed['CONNECT_URL']}" in str(found[2])
    assert f"redis is not reachable at 127.0.0.1:{closed['REDIS_PORT']}" in str(found[3])
    assert not any(SECRET in str(line) for line in found)


def test_compose_mode_says_how_compose_starts_it(closed: dict[str, str]) -> None:
    s = settings.load({**closed, "EP_MODE": "compose"})
    assert str(reachability.problem(s, "cdc")).endswith("start it with `docker compose up -d connect`")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a broker still starting, say)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def test_a_kafka_port_that_serves_no_metadata_is_not_reachable(
    closed: dict[str, str], silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reachability, "KAFKA_METADATA_TIMEOUT_S", 1.0)
    s = settings.load({**closed, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{silent_port}"})
    assert reachability.problem(s, "kafka") == (
        f"kafka is not reachable at 127.0.0.1:{silent_port} (no metadata within 1 s); "
        "start it with `engagement-platform stack up kafka` (the whole platform: `make up`)"
    )


def test_kafka_is_reachable_through_any_broker_of_the_list(
    closed: dict[str, str], silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first broker of a cluster down is no reason to give up: the TCP check goes on to the
    next (here a port that takes the connection, so the metadata request is what fails)."""
    monkeypatch.setattr(reachability, "KAFKA_METADATA_TIMEOUT_S", 1.0)
    down = closed["KAFKA_BOOTSTRAP_SERVERS"]
    both = f"{down},127.0.0.1:{silent_port}"
    cluster = {**closed, "EP_MODE": "compose"}  # where brokers are anywhere, not port-strided
    s = settings.load({**cluster, "KAFKA_BOOTSTRAP_SERVERS": both})
    line = str(reachability.problem(s, "kafka"))
    assert f"kafka is not reachable at {both} (no metadata within 1 s)" in line
    (other,) = free_ports(1)
    s = settings.load({**cluster, "KAFKA_BOOTSTRAP_SERVERS": f"{down},127.0.0.1:{other}"})
    assert "(connection refused)" in str(reachability.problem(s, "kafka"))


def test_a_listening_service_passes(silent_port: int, tmp_path: Path) -> None:
    s = settings.load({"EP_HOME": str(tmp_path), "REDIS_PORT": str(silent_port)})
    reachability.require(s, ["redis"])  # raises nothing
