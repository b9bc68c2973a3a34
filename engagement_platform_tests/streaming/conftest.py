"""Fixtures of the streaming tests, on the session stack (helpers: ../harness.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engagement_platform_tests.harness import Child, StackHandle


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
