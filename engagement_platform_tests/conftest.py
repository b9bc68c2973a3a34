"""Shared fixtures: one real local stack for the whole test session, on free ports.

The stack lives in its own temporary ``EP_HOME`` so it never touches a stack started by
``make up``; it is started and stopped through the real CLI, as a user would.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engagement_platform import settings as settings_module
from engagement_platform.local_stack.supervisor import Supervisor
from engagement_platform.settings import Settings

CLI = [sys.executable, "-m", "engagement_platform.cli"]


def free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out, so nothing else is listening on them."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def make_ep_home(prefix: str) -> Path:
    # world-traversable: PostgreSQL runs as 'nobody' when the tests run as root
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def stack_env(ep_home: Path) -> dict[str, str]:
    pg, kafka, redis, clickhouse, connect = free_ports(5)
    return {
        "EP_HOME": str(ep_home),
        "POSTGRES_PORT": str(pg),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "REDIS_PORT": str(redis),
        "CLICKHOUSE_PORT": str(clickhouse),
        "CONNECT_URL": f"http://127.0.0.1:{connect}",
    }


@dataclass
class StackHandle:
    """A running stack: its settings, the environment that reaches it, and its supervisor."""

    overrides: dict[str, str]
    settings: Settings = field(init=False)
    supervisor: Supervisor = field(init=False)

    def __post_init__(self) -> None:
        self.settings = settings_module.load(self.env)
        self.supervisor = Supervisor(self.settings)

    @property
    def env(self) -> dict[str, str]:
        """The full environment for a child process that should use this stack."""
        return {**os.environ, **self.overrides}

    def cli(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*CLI, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"engagement-platform {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result


def materialize(handle: StackHandle, selection: str, env: Mapping[str, str] | None = None):  # type: ignore[no-untyped-def]
    """Materialize assets with Dagster's own CLI, as a user would; returns the CompletedProcess."""
    from engagement_platform.runner import materialize_argv

    return subprocess.run(
        materialize_argv(selection),
        env={**handle.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def start_stack(
    prefix: str, services: tuple[str, ...] = (), extra: Mapping[str, str] | None = None
) -> StackHandle:
    handle = StackHandle({**stack_env(make_ep_home(prefix)), **(extra or {})})
    handle.cli("stack", "up", *services)
    return handle


def stop_stack(handle: StackHandle) -> None:
    records = [handle.supervisor.running(s.name) for s in handle.supervisor.services]
    handle.cli("stack", "down")
    from engagement_platform.local_stack.process import is_alive

    left = [r for r in records if r is not None and is_alive(r)]
    shutil.rmtree(handle.settings.ep_home, ignore_errors=True)
    assert not left, f"processes left behind by stack down: {left}"


@pytest.fixture(scope="session")
def stack() -> Iterator[StackHandle]:
    """The whole five-service stack, shared by every integration test of the session.

    EP_TEST_SERVICES=postgres,kafka (say) starts only those, for quick local iterations.
    """
    only = tuple(s for s in os.environ.get("EP_TEST_SERVICES", "").split(",") if s)
    handle = start_stack("ep-test-", only)
    try:
        yield handle
    finally:
        stop_stack(handle)


@pytest.fixture(scope="session")
def source_schema(stack: StackHandle) -> StackHandle:
    """init.sql applied through the `postgres/schema` asset."""
    result = materialize(stack, "postgres/schema")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return stack
