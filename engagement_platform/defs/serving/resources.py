"""Redis, where the live leaderboard is served from, as a Dagster resource."""

from __future__ import annotations

import dagster as dg
import redis

from engagement_platform.defs.config import setting


class RedisResource(dg.ConfigurableResource):
    host: str
    port: int
    db: int = 0
    password: str = ""

    def client(self) -> redis.Redis:
        """A new client; the caller closes it."""
        return redis.Redis(
            host=self.host,
            port=self.port,
            db=self.db,
            password=self.password or None,
            socket_connect_timeout=5,
            socket_timeout=10,
        )


def redis_resource() -> RedisResource:
    return RedisResource(
        host=setting("redis_host"),
        port=setting("redis_port"),
        db=setting("redis_db"),
        password=setting("redis_password"),
    )
