"""ClickHouse: the chdb engine owned by one process that serves the ClickHouse HTTP interface."""

from __future__ import annotations

import base64
import urllib.parse
from pathlib import Path

from engagement_platform.local_stack.service import Service, http_ok, python_module_argv
from engagement_platform.settings import child_env

MALLOC_ARENA_MAX = "2"


class ClickHouseService(Service):
    name = "clickhouse"
    start_timeout = 60.0

    @property
    def endpoint(self) -> str:
        return self.settings.clickhouse_url

    def argv(self, data_dir: Path) -> list[str]:
        return python_module_argv("engagement_platform.local_stack.clickhouse_http", data_dir)

    def child_env(self) -> dict[str, str]:
        # chdb allocates through glibc's malloc (no jemalloc in it), whose per-thread arenas kept
        # the freed memory of the server's ~160 threads: +17-36% over an hour's soak; two arenas
        # held it flat (docs/design/clickhouse-http.md, "Memory")
        return child_env(self.settings, {"MALLOC_ARENA_MAX": MALLOC_ARENA_MAX})

    def healthy(self) -> bool:
        # an authenticated query, not just /ping: the engine must have opened its data
        s = self.settings
        token = base64.b64encode(f"{s.clickhouse_user}:{s.clickhouse_password}".encode()).decode()
        query = urllib.parse.urlencode({"query": "SELECT 1"})
        return http_ok(
            f"http://127.0.0.1:{s.clickhouse_port}/?{query}",
            headers={"Authorization": f"Basic {token}"},
        )
