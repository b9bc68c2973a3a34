"""Session fixtures: one real local stack shared by every integration test (helpers: harness.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from engagement_platform_tests.harness import Child, StackHandle, materialize, start_stack, stop_stack


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


@pytest.fixture
def r(stack: StackHandle) -> Iterator[redis.Redis]:
    """Redis as its owner (the default user): tests set up, check and clean up their keys."""
    client = redis.Redis.from_url(stack.settings.redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def source_schema(stack: StackHandle) -> StackHandle:
    """init.sql applied through the `postgres/schema` asset."""
    result = materialize(stack, "postgres/schema")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return stack


@pytest.fixture
def spawn(stack: StackHandle, tmp_path: Path) -> Iterator[Callable[..., Child]]:
    """``spawn("consume", "enrich", ..., name=...)`` starts a command on the stack, its log
    in ``tmp_path``; whatever a test left running is killed (SIGKILL) afterwards."""
    started: list[Child] = []

    def start(*args: str, name: str = "child", env: dict[str, str] | None = None) -> Child:
        child = Child(stack, args, tmp_path / f"{name}-{len(started)}.log", env)
        started.append(child)
        return child

    yield start
    for child in started:
        child.kill()
