"""Fixtures of the read API's tests: the session stack's Redis, as the owner, and a key
prefix per test whose keys are deleted afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from engagement_platform.streaming.leaderboard import Keys


@pytest.fixture
def keys(r: redis.Redis) -> Iterator[Keys]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    yield Keys(prefix)
    for key in r.scan_iter(match=f"{prefix}*", count=1000):
        r.delete(key)
