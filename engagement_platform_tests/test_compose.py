"""docker-compose.yml, checked statically (these machines have no Docker engine)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from engagement_platform.settings import ENV_VARS, PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
INFRA = {"postgres", "kafka", "connect", "clickhouse", "redis"}
# variables that only the local embedded stack uses
LOCAL_ONLY = {
    "EP_JAVA_HOME",
    "EP_JVM_AOT",
    "KAFKA_CONTROLLER_PORT",
    "KAFKA_HEAP_OPTS",
    "CONNECT_HEAP_OPTS",
    "EP_INSTANCES",
    "KAFKA_BROKERS",
    "CONNECT_WORKERS",
}


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


def test_redis_gets_the_same_acl_users_as_local_mode(compose: dict, tmp_path: Path) -> None:
    """The compose command's shell script, run here with the ACL file in a temporary folder,
    writes exactly the lines local mode writes (engagement_platform/serving/redis_acl.py)."""
    import os
    import subprocess

    from engagement_platform.serving.redis_acl import acl_lines
    from engagement_platform.settings import load

    redis = compose["services"]["redis"]
    assert redis["command"][:2] == ["sh", "-c"]
    script = redis["command"][2].replace("$$", "$").replace("/data/", f"{tmp_path}/")
    script = script.replace("exec redis-server", "exit 0 #")
    env = {"PATH": os.environ["PATH"], "REDIS_PASSWORD": "o", "REDIS_WRITER_PASSWORD": "w p"}
    env |= {"REDIS_WRITER_USER": "lb", "REDIS_READER_USER": "dash", "REDIS_READER_PASSWORD": "r'"}
    subprocess.run(["sh", "-c", script], env=env, check=True)
    written = tmp_path / "users.acl"
    assert written.stat().st_mode & 0o777 == 0o600
    assert written.read_text().splitlines() == acl_lines(load(env))
    assert "--aclfile /data/users.acl" in redis["command"][2]
    assert "redis-cli ping" in redis["healthcheck"]["test"][1]


def test_clickhouse_gets_the_bridge_and_reader_users(compose: dict) -> None:
    """users.d XML mounted into the official image: passwords and grants from its environment."""
    import xml.etree.ElementTree as ET

    clickhouse = compose["services"]["clickhouse"]
    source, target, _ = next(v for v in clickhouse["volumes"] if "users.d" in v).split(":")
    assert target == "/etc/clickhouse-server/users.d/roles.xml"
    users = ET.parse(PROJECT_ROOT / source).getroot().find("users")
    assert users is not None
    env = clickhouse["environment"]
    app_env = compose["services"]["dashboard"]["environment"]
    for role, profile in (("WRITER", "default"), ("READER", "readonly")):
        user = users.find(app_env[f"CLICKHOUSE_{role}_USER"])
        assert user is not None, role
        assert user.findtext("profile") == profile
        password = user.find("password")
        assert password is not None and password.get("from_env") == f"CLICKHOUSE_{role}_PASSWORD"
        assert env[f"CLICKHOUSE_{role}_PASSWORD"] == app_env[f"CLICKHOUSE_{role}_PASSWORD"]
        grant = user.find("grants/query")
        assert grant is not None and grant.get("from_env") in env
    assert env["EP_CLICKHOUSE_WRITER_GRANT"].startswith("GRANT INSERT ON ")
    assert env["EP_CLICKHOUSE_WRITER_GRANT"].endswith(".engagement_enriched_queue")
    assert env["EP_CLICKHOUSE_READER_GRANT"].startswith("GRANT SELECT ON ")
