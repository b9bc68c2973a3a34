"""What `up` runs besides the stack, per plan: pure, no process is started."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from engagement_platform import settings as settings_module
from engagement_platform.local_stack.apps import AppPlan, DagsterService, app_services
from engagement_platform.monitoring.lag import SECONDS_GROUP


def consumers_of(plan: AppPlan, tmp_path: Path) -> dict[str, list[str]]:
    s = settings_module.load({"EP_HOME": str(tmp_path)})
    return {svc.name: svc.args for svc in app_services(s, plan) if svc.args[:1] == ["consume"]}


def option(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def test_n_instances_are_n_processes_of_each_consumer_in_one_group_with_their_own_ports(
    tmp_path: Path,
) -> None:
    apps = consumers_of(AppPlan(instances=3, simulator_rate=0, skip=("dagster", "dashboard")), tmp_path)
    kinds = ("enrich", "leaderboard", SECONDS_GROUP, "warehouse")
    assert set(apps) == {k if i == 1 else f"{k}-{i}" for k in kinds for i in (1, 2, 3)}
    for kind in kinds:
        same = [apps[kind], apps[f"{kind}-2"], apps[f"{kind}-3"]]
        # one group: the instances differ in nothing but their metrics port
        assert len({tuple(a[: a.index("--metrics-port")]) for a in same}) == 1, same
    assert option(apps[f"{SECONDS_GROUP}-2"], "--group") == SECONDS_GROUP
    ports = [option(apps[n], "--metrics-port") for n in ("enrich", "enrich-2", "enrich-3")]
    assert ports == ["9101", "9111", "9121"]


def test_the_plan_survives_a_round_trip_through_ep_home(tmp_path: Path) -> None:
    s = settings_module.load({"EP_HOME": str(tmp_path)})
    plan = AppPlan(instances=2, simulator_rate=150, skip=("dashboard",))
    plan.save(s)
    assert AppPlan.load(s) == plan


def test_dagster_home_gets_an_instance_config_without_the_first_visit_dialog(tmp_path: Path) -> None:
    s = settings_module.load({"EP_HOME": str(tmp_path)})
    DagsterService(s).prepare(tmp_path / "dagster-data")
    with dg.DagsterInstance.from_config(str(s.dagster_home)) as instance:
        assert instance.nux_enabled is False and instance.telemetry_enabled is False
    (s.dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")  # the user's own
    DagsterService(s).prepare(tmp_path / "dagster-data")
    assert (s.dagster_home / "dagster.yaml").read_text() == "telemetry:\n  enabled: true\n"


def test_a_dagster_home_of_the_users_is_left_as_it_is(tmp_path: Path) -> None:
    own = tmp_path / "own-dagster"
    s = settings_module.load({"EP_HOME": str(tmp_path / "ep"), "DAGSTER_HOME": str(own)})
    DagsterService(s).prepare(tmp_path / "dagster-data")
    assert own.is_dir() and not (own / "dagster.yaml").exists()
