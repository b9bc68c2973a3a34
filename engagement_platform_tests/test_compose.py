"""docker-compose.yml, checked statically (these machines have no Docker engine)."""

from __future__ import annotations

import re

import pytest
import yaml

from engagement_platform.settings import ENV_VARS, PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
INFRA = {"postgres", "kafka", "connect", "clickhouse", "redis"}
# variables that only the local embedded stack uses
LOCAL_ONLY = {"EP_JAVA_HOME"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_every_service_the_code_expects_is_there_with_a_healthcheck(compose: dict) -> None:
    services = compose["services"]
    assert set(services) >= INFRA
    for name in INFRA:
        assert "healthcheck" in services[name], name
        assert "image" in services[name], name


def test_postgres_has_logical_replication_and_kafka_runs_kraft(compose: dict) -> None:
    services = compose["services"]
    assert "wal_level=logical" in services["postgres"]["command"]
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "ZOOKEEPER" not in " ".join(kafka_env)


def test_host_ports_bind_to_loopback_only(compose: dict) -> None:
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_interpolated_variables_are_the_settings_names() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    assert used, "compose file interpolates no variables"
    assert used <= set(ENV_VARS), used - set(ENV_VARS)


def test_app_services_get_every_setting_by_the_same_names(compose: dict) -> None:
    apps = [svc for name, svc in compose["services"].items() if name not in INFRA]
    assert apps, "no platform service in the compose file"
    for svc in apps:
        env = svc["environment"]
        assert set(env) <= set(ENV_VARS), set(env) - set(ENV_VARS)
        assert set(ENV_VARS) - LOCAL_ONLY <= set(env), set(ENV_VARS) - LOCAL_ONLY - set(env)
        assert env["EP_MODE"] == "compose"
        assert svc["build"] == "."


def test_named_volumes_are_declared(compose: dict) -> None:
    declared = set(compose.get("volumes", {}))
    for svc in compose["services"].values():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, source


def test_dockerfile_copies_what_the_code_reads() -> None:
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    for name in ("workspace.yaml", "connector.json", "init.sql", "clickhouse_ddl", "engagement_platform"):
        assert name in text, name
