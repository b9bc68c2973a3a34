"""The platform's own long-running processes, run locally by `engagement-platform up`.

They are supervised exactly like the stack's services (pid file, log, data dir under
``EP_HOME/<name>/``), so `engagement-platform down` finds and stops them the same way.
In compose mode each of them is a container built from the Dockerfile instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

from engagement_platform.local_stack.service import Service, http_ok
from engagement_platform.monitoring.lag import SECONDS_GROUP
from engagement_platform.settings import PROJECT_ROOT, Settings, child_env
from engagement_platform.streaming.leaderboard import (
    METRIC_ENGAGEMENT_SECONDS,
    METRIC_EVENTS,
    metric_key_prefix,
)

CLI = [sys.executable, "-m", "engagement_platform.cli"]


class DagsterService(Service):
    """`dagster dev` on workspace.yaml: the UI, the daemon (schedules, sensors) and runs."""

    name = "dagster"
    start_timeout = 120.0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.settings.dagster_port}"

    def argv(self, data_dir: Path) -> list[str]:
        dagster = Path(sys.executable).parent / "dagster"
        return [
            str(dagster), "dev",
            "-w", str(PROJECT_ROOT / "workspace.yaml"),
            "-h", "127.0.0.1",
            "-p", str(self.settings.dagster_port),
        ]  # fmt: skip

    def prepare(self, data_dir: Path) -> None:
        super().prepare(data_dir)
        self.settings.dagster_home.mkdir(parents=True, exist_ok=True)

    def healthy(self) -> bool:
        return http_ok(f"{self.endpoint}/server_info")

    def child_env(self) -> dict[str, str]:
        return dagster_env(self.settings)


class DashboardService(Service):
    """The Streamlit dashboard."""

    name = "dashboard"
    start_timeout = 60.0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.settings.dashboard_port}"

    def argv(self, data_dir: Path) -> list[str]:
        return [
            sys.executable, "-m", "streamlit", "run",
            str(PROJECT_ROOT / "engagement_platform" / "dashboard" / "app.py"),
            "--server.address", "127.0.0.1",
            "--server.port", str(self.settings.dashboard_port),
            "--server.headless", "true",
            "--browser.gatherUsageStats", "false",
        ]  # fmt: skip

    def healthy(self) -> bool:
        return http_ok(f"{self.endpoint}/_stcore/health")


class CliProcess(Service):
    """A process that is one `engagement-platform ...` command; healthy while it runs."""

    start_timeout = 30.0
    min_uptime = 2.0

    def __init__(self, settings: Settings, name: str, args: list[str], endpoint: str) -> None:
        super().__init__(settings)
        self.name = name
        self.args = args
        self._endpoint = endpoint

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def argv(self, data_dir: Path) -> list[str]:
        return [*CLI, *self.args]

    def healthy(self) -> bool:
        return True  # the supervisor has already checked that the process is alive


def dagster_env(settings: Settings) -> dict[str, str]:
    return child_env(settings, {"DAGSTER_HOME": str(settings.dagster_home)})


def consumer_endpoint(settings: Settings, name: str) -> str:
    port = settings.metrics_port(name)
    metrics = f", metrics http://127.0.0.1:{port}/metrics" if port else ""
    return f"consumer group {name}{metrics}"


def app_services(settings: Settings, *, simulator_rate: float = 20.0) -> list[Service]:
    """In start order: consumers before the simulator feeds them."""
    prefix = settings.leaderboard_key_prefix
    return [
        DagsterService(settings),
        CliProcess(settings, "enrich", ["consume", "enrich"], consumer_endpoint(settings, "enrich")),
        CliProcess(
            settings,
            "leaderboard",
            ["consume", "leaderboard", "--key-prefix", metric_key_prefix(METRIC_EVENTS, prefix)],
            consumer_endpoint(settings, "leaderboard"),
        ),
        # the dashboard's other metric: the same consumer scoring engagement seconds under its own
        # keys and group (no /metrics of its own: the events one serves the leaderboard's)
        CliProcess(
            settings,
            SECONDS_GROUP,
            [
                "consume",
                "leaderboard",
                "--metric",
                METRIC_ENGAGEMENT_SECONDS,
                "--group",
                SECONDS_GROUP,
                "--key-prefix",
                metric_key_prefix(METRIC_ENGAGEMENT_SECONDS, prefix),
                "--metrics-port",
                "0",
            ],  # fmt: skip
            f"consumer group {SECONDS_GROUP}",
        ),
        # local mode's bridge into ClickHouse (compose mode's ClickHouse reads Kafka itself)
        CliProcess(settings, "warehouse", ["consume", "warehouse"], consumer_endpoint(settings, "warehouse")),
        DashboardService(settings),
        CliProcess(
            settings,
            "simulator",
            ["simulate", "--rate", str(simulator_rate), "--burst", "5"],
            f"{simulator_rate:g} events/s into Postgres",
        ),
    ]
