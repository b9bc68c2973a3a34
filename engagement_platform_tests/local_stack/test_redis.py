"""The local Redis: the sorted-set commands the leaderboard is built on."""

from __future__ import annotations

import uuid

import redis


def test_zincrby_zrevrange_expire_round_trip(stack) -> None:
    s = stack.settings
    client = redis.Redis(
        host=s.redis_host, port=s.redis_port, db=s.redis_db, password=s.redis_password or None
    )
    key = f"zset:test:{uuid.uuid4().hex[:8]}"
    try:
        client.zincrby(key, 2, "a")
        client.zincrby(key, 5, "b")
        client.zincrby(key, 1, "a")
        assert client.zrevrange(key, 0, -1, withscores=True) == [(b"b", 5.0), (b"a", 3.0)]
        assert client.expire(key, 60)
        assert 0 < client.ttl(key) <= 60
        assert client.info("server")["redis_version"] >= "6"
    finally:
        client.delete(key)
        client.close()
