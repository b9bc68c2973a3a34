"""The platform's own long-running processes, run locally by `engagement-platform up`.

They are supervised exactly like the stack's services (pid file, log, data dir under
``EP_HOME/<name>/``), so `engagement-platform down` finds and stops them the same way.
In compose mode each of them is a container built from the Dockerfile instead.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
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


# Neither the first-visit dialog nor usage reports (the dashboard's Streamlit sends none either).
INSTANCE_CONFIG = "nux:\n  enabled: false\ntelemetry:\n  enabled: false\n"


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
        """The platform's own DAGSTER_HOME gets an instance config unless it has one: without
        it, the UI's first visit opens with a "join the community" dialog over the catalog. A
        DAGSTER_HOME of the user's (``DAGSTER_HOME`` set) is left as it is."""
        super().prepare(data_dir)
        home = self.settings.dagster_home
        home.mkdir(parents=True, exist_ok=True)
        instance = home / "dagster.yaml"
        if not self.settings.dagster_home_override and not instance.exists():
            instance.write_text(INSTANCE_CONFIG)

    def healthy(self) -> bool:
        return http_ok(f"{self.endpoint}/server_info")

    def child_env(self) -> dict[str, str]:
        return dagster_env(self.settings)


class DashboardService(Service):
    """The Streamlit dashboard (dashboard/server.py: the page, whose queries start with its HTML
    request), its modules and clients made at start (dashboard/serve.py)."""

    name = "dashboard"
    start_timeout = 60.0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.settings.dashboard_port}"

    def argv(self, data_dir: Path) -> list[str]:
        return [
            sys.executable, "-m", "engagement_platform.dashboard.serve", "run",
            str(PROJECT_ROOT / "engagement_platform" / "dashboard" / "server.py"),
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


CONSUMERS = ("enrich", "leaderboard", "warehouse")  # what `consume` runs
OPTIONAL = ("dagster", "dashboard", "simulator")


@dataclass(frozen=True)
class AppPlan:
    """What `up` runs besides the stack; kept in ``EP_HOME/apps.json`` so `down`, `stack logs`
    and the next `up` know every process it started."""

    instances: int = 1  # processes per consumer, in one group: they share the partitions
    simulator_rate: float = 20.0  # events/s; 0 runs no simulator
    skip: tuple[str, ...] = ()  # of OPTIONAL: processes not to start

    def save(self, settings: Settings) -> None:
        settings.ep_home.mkdir(parents=True, exist_ok=True)
        plan_file(settings).write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, settings: Settings) -> AppPlan:
        try:
            raw = json.loads(plan_file(settings).read_text())
            return cls(int(raw["instances"]), float(raw["simulator_rate"]), tuple(raw["skip"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return cls(instances=settings.instances)


def plan_file(settings: Settings) -> Path:
    return settings.ep_home / "apps.json"


def instance_name(consumer: str, index: int) -> str:
    """``enrich``, then ``enrich-2``, ``enrich-3``...: the first keeps the plain name."""
    return consumer if index == 1 else f"{consumer}-{index}"


def metrics_port(settings: Settings, name: str, index: int) -> int:
    """Instance N of a consumer serves on its setting's port + 10 * (N - 1) (0 stays off)."""
    base = settings.metrics_port(name)
    return base + 10 * (index - 1) if base else 0


def app_services(settings: Settings, plan: AppPlan | None = None) -> list[Service]:
    """In start order: consumers before the simulator feeds them."""
    plan = plan or AppPlan.load(settings)
    prefix = settings.leaderboard_key_prefix
    services: list[Service] = [] if "dagster" in plan.skip else [DagsterService(settings)]
    events_prefix = metric_key_prefix(METRIC_EVENTS, prefix)
    for index in range(1, plan.instances + 1):
        services += [
            consumer(settings, "enrich", index),
            consumer(settings, "leaderboard", index, "--key-prefix", events_prefix),
            # the dashboard's other metric: the same consumer scoring engagement seconds under its
            # own keys and group (no /metrics of its own: the events one serves the leaderboard's)
            consumer(
                settings,
                "leaderboard",
                index,
                "--metric",
                METRIC_ENGAGEMENT_SECONDS,
                "--group",
                SECONDS_GROUP,
                "--key-prefix",
                metric_key_prefix(METRIC_ENGAGEMENT_SECONDS, prefix),
                name=SECONDS_GROUP,
                metrics=False,
            ),  # fmt: skip
            # local mode's bridge into ClickHouse (compose mode's ClickHouse reads Kafka itself)
            consumer(settings, "warehouse", index),
        ]
    if "dashboard" not in plan.skip:
        services.append(DashboardService(settings))
    if plan.simulator_rate > 0 and "simulator" not in plan.skip:
        rate = plan.simulator_rate
        burst = max(1, min(100, round(rate / 20)))  # about 20 commits a second
        services.append(
            CliProcess(
                settings,
                "simulator",
                ["simulate", "--rate", f"{rate:g}", "--burst", str(burst)],
                f"{rate:g} events/s into Postgres",
            )
        )
    return services


def consumer(
    settings: Settings, kind: str, index: int, *args: str, name: str | None = None, metrics: bool = True
) -> CliProcess:
    """Instance ``index`` of `consume KIND ARGS`, named ``name`` (``kind`` by default)."""
    port = metrics_port(settings, kind, index) if metrics else 0
    served = f", metrics http://127.0.0.1:{port}/metrics" if port else ""
    return CliProcess(
        settings,
        instance_name(name or kind, index),
        ["consume", kind, *args, "--metrics-port", str(port)],
        f"consumer group {name or kind}{served}",
    )
