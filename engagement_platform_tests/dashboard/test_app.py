"""The Streamlit dashboard, run headless with Streamlit's AppTest against the real stack."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from engagement_platform.settings import PROJECT_ROOT
from engagement_platform_tests.harness import materialize

APP = PROJECT_ROOT / "engagement_platform" / "dashboard" / "app.py"


@pytest.fixture
def stack_env(stack, monkeypatch):  # type: ignore[no-untyped-def]
    """The app reads its endpoints from the environment, like every process."""
    for name, value in stack.overrides.items():
        monkeypatch.setenv(name, value)
    return stack


def test_renders_without_errors_with_a_warehouse_and_an_empty_leaderboard(stack_env) -> None:
    result = materialize(stack_env, "clickhouse/schema")
    assert result.returncode == 0, result.stderr[-2000:]
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    headers = [s.value for s in at.subheader]
    assert any(h.startswith("Live leaderboard") for h in headers)
    assert "Last hour (warehouse)" in headers
    assert {m.label for m in at.metric} == {"Events", "Users", "Avg completion", "Parse errors"}


def test_says_what_is_wrong_when_redis_is_unreachable(stack_env, monkeypatch) -> None:
    monkeypatch.setenv("REDIS_PORT", "1")  # nothing listens there
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    assert any("Redis is not reachable" in e.value for e in at.error)
