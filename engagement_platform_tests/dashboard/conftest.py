"""The dashboard's tests share one seeded data set on the session stack (helpers: seed.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
import streamlit as st

from engagement_platform_tests.dashboard.seed import Seeded, seed, unseed
from engagement_platform_tests.harness import StackHandle


@pytest.fixture(scope="package")
def seeded(stack: StackHandle) -> Iterator[Seeded]:
    """Known rows in a ClickHouse database and Redis keys of their own (dropped afterwards)."""
    client = redis.Redis.from_url(stack.settings.redis_url)
    data = seed(stack.settings, client, uuid.uuid4().hex[:8])
    try:
        yield data
    finally:
        unseed(stack.settings, client, data)
        client.close()


@pytest.fixture
def app_env(stack: StackHandle, seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> Seeded:
    """The app reads its endpoints from the environment, like every process (AppTest runs it here).
    Its caches start empty: results an earlier test's page shared must not answer this one's."""
    for name, value in {**stack.overrides, **seeded.env()}.items():
        monkeypatch.setenv(name, value)
    st.cache_data.clear()
    return seeded
