"""Redis, where the live leaderboard is served from, as a Dagster resource."""

from __future__ import annotations

import dagster as dg
import redis

from engagement_platform.defs.config import setting


class RedisResource(dg.ConfigurableResource):
    """Redis for the leaderboard's checks and sensors: they only read, as REDIS_READER_USER."""

    host: str
    port: int
    db: int = 0
    username: str = ""  # an ACL user; empty: Redis's `default`
    password: str = ""

    def client(self) -> redis.Redis:
        """A new client; the caller closes it."""
        return redis.Redis(
            host=self.host,
            port=self.port,
            db=self.db,
            username=self.username or None,
            password=self.password or None,
            socket_connect_timeout=5,
            socket_timeout=10,
        )


def redis_resource() -> RedisResource:
    return RedisResource(
        host=setting("redis_host"),
        port=setting("redis_port"),
        db=setting("redis_db"),
        username=setting("redis_reader_user"),
        password=setting("redis_reader_password"),
    )
