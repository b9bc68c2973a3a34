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


HEAVY = ("confluent_kafka", "dagster", "pandas", "clickhouse_connect", "redis", "psycopg2", "streamlit")


def loaded_after(code: str) -> list[str]:
    probe = f"import sys; {code}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_building_the_parser_imports_no_client_library() -> None:
    assert loaded_after("from engagement_platform import cli; cli.build_parser([])") == []


def test_a_consumer_command_loads_its_own_module_only() -> None:
    code = "from engagement_platform import cli; cli.build_parser(['consume', 'leaderboard'])"
    loaded = loaded_after(code)
    assert "redis" in loaded and "confluent_kafka" in loaded
    assert not {"dagster", "pandas", "streamlit", "clickhouse_connect"} & set(loaded), loaded
