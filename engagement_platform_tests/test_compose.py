"""docker-compose.yml, checked statically (these machines have no Docker engine)."""

from __future__ import annotations

import re

import pytest
import yaml

from engagement_platform.settings import ENV_VARS, PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
INFRA = {"postgres", "kafka", "connect", "clickhouse", "redis"}
# variables that only the local embedded stack uses
LOCAL_ONLY = {"EP_JAVA_HOME", "KAFKA_CONTROLLER_PORT", "KAFKA_HEAP_OPTS", "CONNECT_HEAP_OPTS", "EP_INSTANCES"}


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
        assert svc["build"] == {"context": ".", "target": "app"}


def test_named_volumes_are_declared(compose: dict) -> None:
    declared = set(compose.get("volumes", {}))
    for svc in compose["services"].values():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, source


def test_dockerfile_copies_what_the_code_reads() -> None:
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    for name in (
        "workspace.yaml",
        "connector.json",
        "init.sql",
        "clickhouse_ddl",
        "postgres_migrations",
        "engagement_platform",
    ):
        assert name in text, name


def test_kafka_and_debezium_versions_match_the_local_stack(compose: dict) -> None:
    pom = (PROJECT_ROOT / "engagement_platform/local_stack/jvm/kafka/pom.xml").read_text()
    kafka_version = re.search(r"<kafka.version>([^<]+)<", pom).group(1)  # type: ignore[union-attr]
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{kafka_version}"
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert f"FROM apache/kafka:{kafka_version} AS connect" in dockerfile
    # the compose Connect image takes its Debezium plugin from the local stack's own pom
    assert "COPY engagement_platform/local_stack/jvm/debezium-postgres/pom.xml" in dockerfile
    assert compose["services"]["connect"]["build"] == {"context": ".", "target": "connect"}
    assert compose["services"]["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_compose_connect_worker_matches_the_local_one() -> None:
    from engagement_platform.local_stack import cdc, jvm

    committed = cdc.COMPOSE_PROPERTIES.read_text()
    assert committed == jvm.properties_text(cdc.compose_worker_properties(), cdc.COMPOSE_HEADER)
    local = cdc.worker_properties("127.0.0.1:9092", "127.0.0.1", 8083, "/plugins")
    compose = cdc.compose_worker_properties()
    where = {"bootstrap.servers", "listeners", "rest.advertised.host.name", "plugin.path"}
    assert {k: v for k, v in local.items() if k not in where} == {
        k: v for k, v in compose.items() if k not in where
    }
    assert (
        "COPY engagement_platform/local_stack/jvm/connect-worker.compose.properties"
        in (PROJECT_ROOT / "Dockerfile").read_text()
    )
