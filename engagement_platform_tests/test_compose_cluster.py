"""docker-compose.cluster.yml, alone and merged onto docker-compose.yml, checked statically (these
machines have no Docker engine): the schema, the commands, the environment, and that the Kafka,
ClickHouse, Keeper and Connect nodes name each other consistently."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from engagement_platform import settings as settings_module
from engagement_platform.local_stack import cdc
from engagement_platform.migrations.files import clickhouse_migrations
from engagement_platform.settings import ENV_VARS, PROJECT_ROOT
from engagement_platform_tests.harness import (
    interpolate,
    load_compose,
    merge_compose,
    parse_service_command,
    plain_compose,
)
from engagement_platform_tests.test_compose import DAGSTER_STORAGE, LOCAL_ONLY, compose_validator

OVERRIDE = PROJECT_ROOT / "docker-compose.cluster.yml"
BROKERS = ("kafka", "kafka-2", "kafka-3")
CONTROLLERS = ("kafka-controller-1", "kafka-controller-2", "kafka-controller-3")
REPLICAS = ("clickhouse", "clickhouse-2")
KEEPERS = ("keeper-1", "keeper-2", "keeper-3")
WORKERS = ("connect", "connect-2")
CONSUMERS = ("enrich", "leaderboard", "leaderboard-seconds")


@pytest.fixture(scope="module")
def merged() -> dict[str, Any]:
    return merge_compose(load_compose("docker-compose.yml"), load_compose(OVERRIDE.name))


def app_services(merged: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc for name, svc in merged["services"].items() if svc.get("build", {}).get("target") == "app"
    }


def test_the_override_and_the_merged_file_validate_against_the_compose_specification(
    merged: dict[str, Any],
) -> None:
    validator = compose_validator()
    assert [e.message for e in validator.iter_errors(plain_compose(load_compose(OVERRIDE.name)))] == []
    assert [e.message for e in validator.iter_errors(merged)] == []


def test_every_command_of_the_merged_file_parses(merged: dict[str, Any]) -> None:
    for svc in app_services(merged).values():
        parse_service_command([interpolate(part) for part in svc["command"]])


def test_every_platform_service_gets_every_setting_and_the_cluster_variant(merged: dict[str, Any]) -> None:
    """Each app container's environment, interpolated with the defaults, loads as settings and
    points at all three brokers and the cluster DDL."""
    apps = app_services(merged)
    assert set(apps) >= {"setup", "dagster-webserver", "dagster-daemon", "dashboard", *CONSUMERS}
    for name, svc in apps.items():
        env = {k: interpolate(str(v)) for k, v in svc["environment"].items()}
        assert set(env) - DAGSTER_STORAGE <= set(ENV_VARS), name
        assert set(ENV_VARS) - LOCAL_ONLY <= set(env), (name, set(ENV_VARS) - LOCAL_ONLY - set(env))
        loaded = settings_module.load(env)
        assert loaded.ddl_mode == "cluster", name
        assert loaded.kafka_bootstrap_servers.split(",") == [f"{b}:29092" for b in BROKERS], name
        assert env["KAFKA_REPLICATION_FACTOR"] == "3" and env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", OVERRIDE.read_text()))
    assert used <= set(ENV_VARS), used - set(ENV_VARS)


def test_three_brokers_and_three_dedicated_controllers_form_one_kraft_cluster(merged: dict[str, Any]) -> None:
    services = merged["services"]
    envs = {name: services[name]["environment"] for name in BROKERS + CONTROLLERS}
    assert {envs[b]["KAFKA_PROCESS_ROLES"] for b in BROKERS} == {"broker"}
    assert {envs[c]["KAFKA_PROCESS_ROLES"] for c in CONTROLLERS} == {"controller"}
    assert len({str(env["KAFKA_NODE_ID"]) for env in envs.values()}) == 6
    assert len({env["CLUSTER_ID"] for env in envs.values()}) == 1
    voters = {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in envs.values()}
    assert len(voters) == 1
    expected = ",".join(f"{envs[c]['KAFKA_NODE_ID']}@{c}:9093" for c in CONTROLLERS)
    assert voters == {expected}
    for broker in BROKERS:
        env = envs[broker]
        assert env["KAFKA_ADVERTISED_LISTENERS"].startswith(
            f"INTERNAL://{broker}:29092,EXTERNAL://127.0.0.1:"
        )
        host_port = env["KAFKA_ADVERTISED_LISTENERS"].rsplit(":", 1)[1]
        assert f"EXTERNAL://:{host_port}" in env["KAFKA_LISTENERS"]
        assert f"127.0.0.1:{host_port}:{host_port}" in services[broker]["ports"]
        assert "CONTROLLER://" not in env["KAFKA_LISTENERS"]
        assert (
            int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"])
            == int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"])
            == 3
        )
        assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == int(env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]) == 2
        assert set(services[broker]["depends_on"]) >= set(CONTROLLERS)


def test_two_clickhouse_replicas_over_three_keepers_name_each_other(merged: dict[str, Any]) -> None:
    services = merged["services"]
    config = ET.parse(PROJECT_ROOT / "compose/clickhouse-cluster/config.d/cluster.xml").getroot()
    (cluster,) = list(config.find("remote_servers") or [])
    hosts = [r.findtext("host") for r in cluster.iter("replica")]
    assert hosts == list(REPLICAS)
    assert [n.findtext("host") for n in config.iter("node")] == list(KEEPERS)
    assert config.find("macros/replica").get("from_env") == "CLICKHOUSE_REPLICA"  # type: ignore[union-attr]
    # the cluster the Distributed table of 020's cluster variant names
    distributed = next(m for m in clickhouse_migrations("cluster") if m.version == 20).path.read_text()
    assert f"Distributed({cluster.tag}, currentDatabase()" in distributed
    for replica in REPLICAS:
        svc = services[replica]
        assert svc["hostname"] == svc["environment"]["CLICKHOUSE_REPLICA"] == replica
        assert svc["environment"]["CLICKHOUSE_DB"] == "default"  # the database is initdb/'s Replicated one
        targets = {v.split(":")[1] for v in svc["volumes"]}
        assert {
            "/etc/clickhouse-server/config.d/cluster.xml",
            "/etc/clickhouse-server/users.d/cluster.xml",
            "/etc/clickhouse-server/users.d/roles.xml",
            "/docker-entrypoint-initdb.d",
        } <= targets
        assert set(svc["depends_on"]) >= set(KEEPERS)
    both = [services[r]["environment"] for r in REPLICAS]
    for key in ("EP_CLICKHOUSE_WRITER_GRANT", "EP_CLICKHOUSE_READER_GRANT", "EP_CLICKHOUSE_DATABASE"):
        assert both[0][key] == both[1][key], key
    init = (PROJECT_ROOT / "compose/clickhouse-cluster/initdb/010_replicated_database.sh").read_text()
    assert "ENGINE = Replicated(" in init and "'{shard}', '{replica}'" in init
    keeper = ET.parse(PROJECT_ROOT / "compose/clickhouse-keeper/keeper.xml").getroot()
    raft = {s.findtext("id"): s.findtext("hostname") for s in keeper.iter("server")}
    assert raft == {services[k]["environment"]["KEEPER_SERVER_ID"]: k for k in KEEPERS}


def test_two_connect_workers_share_one_group_config_with_replicated_topics(merged: dict[str, Any]) -> None:
    services = merged["services"]
    mount = "./compose/connect/worker.cluster.properties:/opt/connect/worker.properties:ro"
    for worker in WORKERS:
        assert mount in services[worker]["volumes"], worker
        assert services[worker]["hostname"] == worker  # what each advertises to the other
    lines = (PROJECT_ROOT / "compose/connect/worker.cluster.properties").read_text().splitlines()
    ours = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    compose = {k: str(v) for k, v in cdc.compose_worker_properties().items()}
    assert ours["bootstrap.servers"] == ",".join(f"{b}:29092" for b in BROKERS)
    for worker in WORKERS:  # what ${env:KAFKA_REPLICATION_FACTOR} reads in both files
        assert services[worker]["environment"]["KAFKA_REPLICATION_FACTOR"] == "3", worker
    different = {"bootstrap.servers", "rest.advertised.host.name"}
    assert {k: v for k, v in ours.items() if k not in different} == {
        k: v for k, v in compose.items() if k not in different
    }
    assert "rest.advertised.host.name" not in ours


def test_consumers_run_two_replicas_each_within_the_partitions(merged: dict[str, Any]) -> None:
    partitions = int(settings_module.default("KAFKA_TOPIC_PARTITIONS"))
    for name in CONSUMERS:
        svc = merged["services"][name]
        assert 2 == svc["deploy"]["replicas"] <= partitions, name
        assert "ports" not in svc, name  # two containers cannot publish one host port


def test_named_volumes_are_declared(merged: dict[str, Any]) -> None:
    declared = set(merged["volumes"])
    for svc in merged["services"].values():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, source
            else:
                assert (PROJECT_ROOT / source).exists(), source
