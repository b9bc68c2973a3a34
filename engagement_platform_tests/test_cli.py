"""The command line: bad input ends in one readable line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "engagement_platform.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env={**os.environ, **(env or {})})


@pytest.mark.parametrize(
    "args",
    [("stack", "bogus"), ("nope",), ("stack", "logs", "nosuchservice"), ("stack", "status", "--jsn")],
)
def test_bad_arguments_give_one_line_and_exit_2(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("engagement-platform")
    assert "Traceback" not in result.stderr


def test_bad_environment_gives_one_line_and_exit_2() -> None:
    result = run("stack", "status", env={"POSTGRES_PORT": "x"})
    assert result.returncode == 2
    assert result.stderr.strip() == "engagement-platform: error: POSTGRES_PORT must be an integer, got 'x'"


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for word in ("up", "down", "stack"):
        assert word in result.stdout
