"""CDC: Debezium's Postgres connector in the embedded engine, behind a Kafka Connect REST API."""

from __future__ import annotations

from pathlib import Path

from engagement_platform.local_stack.service import Service, http_ok, python_module_argv


class CdcService(Service):
    name = "cdc"
    start_timeout = 120.0  # a JVM and ~400 jars

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.settings.connect_port}"

    def argv(self, data_dir: Path) -> list[str]:
        return python_module_argv("engagement_platform.local_stack.cdc_server", data_dir)

    def healthy(self) -> bool:
        return http_ok(f"{self.endpoint}/connector-plugins")
