"""Settings: every endpoint from the environment, with the local stack's defaults."""

from __future__ import annotations

import pytest

from engagement_platform.settings import (
    ENV_VARS,
    PROJECT_ROOT,
    SettingsError,
    as_env,
    default,
    load,
    markdown_table,
    masked,
)


def test_defaults_are_the_standard_local_ports() -> None:
    s = load({})
    assert (s.postgres_port, s.kafka_port, s.connect_port, s.clickhouse_port, s.redis_port) == (
        5432,
        9092,
        8083,
        8123,
        6379,
    )
    assert s.postgres_dsn == "postgresql://postgres:postgres@127.0.0.1:5432/engagement"
    assert s.redis_url == "redis://:redis@127.0.0.1:6379/0"
    assert s.mode == "local"


def test_each_role_has_its_own_login_and_endpoints_mask_passwords() -> None:
    s = load({"POSTGRES_READER_PASSWORD": "r:d@/", "REDIS_WRITER_USER": "lb"})
    assert s.postgres_dsn_for("writer") == "postgresql://ep_writer:ep_writer@127.0.0.1:5432/engagement"
    assert s.postgres_dsn_for("reader") == "postgresql://ep_reader:r%3Ad%40%2F@127.0.0.1:5432/engagement"
    assert s.clickhouse_login("owner") == ("default", "clickhouse")
    assert s.clickhouse_login("reader") == ("ep_reader", "ep_reader")
    assert s.redis_url_for("writer") == "redis://lb:ep_writer@127.0.0.1:6379/0"
    assert masked(s.postgres_dsn) == "postgresql://postgres:***@127.0.0.1:5432/engagement"
    assert masked(s.postgres_dsn_for("reader")) == "postgresql://ep_reader:***@127.0.0.1:5432/engagement"
    assert masked(s.redis_url) == "redis://:***@127.0.0.1:6379/0"
    assert masked(s.clickhouse_url) == "http://default:***@127.0.0.1:8123"
    assert masked(s.connect_url) == s.connect_url  # nothing to hide


def test_overrides_and_round_trip_through_env() -> None:
    env = {
        "POSTGRES_PORT": "6543",
        "KAFKA_BOOTSTRAP_SERVERS": "kafka:29092",
        "POSTGRES_PASSWORD": "p@ss/word",
    }
    s = load(env)
    assert s.postgres_port == 6543 and s.kafka_port == 29092 and s.kafka_host == "kafka"
    assert "p%40ss%2Fword" in s.postgres_dsn  # credentials are URL-quoted in endpoints
    assert load(as_env(s)) == s


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"POSTGRES_PORT": "five"}, "POSTGRES_PORT must be an integer"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "nohost"}, "KAFKA_BOOTSTRAP_SERVERS must look like HOST:PORT"),
        ({"CONNECT_URL": "http://127.0.0.1"}, "CONNECT_URL must carry a port"),
        ({"EP_MODE": "cloud"}, "EP_MODE must be 'local' or 'compose', got 'cloud'"),
        ({"REDIS_PORT": "70000"}, "REDIS_PORT must be at most 65535, got '70000'"),
        ({"EP_INSTANCES": "0"}, "EP_INSTANCES must be at least 1"),
        ({"ENRICH_METRICS_PORT": "-1"}, "ENRICH_METRICS_PORT must be at least 0"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load(env)


def test_an_error_is_one_line_and_reads_only_the_given_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_PORT", "not-a-port")  # load(env) must not read os.environ
    assert load({}).postgres_port == default("POSTGRES_PORT") == 5432
    with pytest.raises(SettingsError) as caught:
        load()
    assert str(caught.value) == "POSTGRES_PORT must be an integer, got 'not-a-port'"


def test_one_broker_by_default_with_one_replica() -> None:
    s = load({})
    assert (s.kafka_brokers, s.kafka_replication_factor, s.kafka_min_insync_replicas) == (1, 1, 1)
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092" and s.connect_ports == [8083]


def test_a_local_cluster_derives_its_ports_and_lists_every_broker() -> None:
    s = load({"KAFKA_BROKERS": "3", "CONNECT_WORKERS": "2", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:4000"})
    assert s.kafka_bootstrap_servers == "127.0.0.1:4000,127.0.0.1:4100,127.0.0.1:4200"
    assert s.kafka_ports == [4000, 4100, 4200]
    assert s.kafka_controller_ports == [9093, 9193, 9293]
    assert s.connect_ports == [8083, 8183]
    assert (s.kafka_replication_factor, s.kafka_min_insync_replicas) == (3, 2)
    assert load(as_env(s)) == s  # a child process sees the same cluster
    explicit = load({"KAFKA_BROKERS": "2", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:5000,127.0.0.1:5007"})
    assert explicit.kafka_ports == [5000, 5007]
    assert (explicit.kafka_replication_factor, explicit.kafka_min_insync_replicas) == (2, 1)


def test_compose_mode_takes_the_bootstrap_list_as_given() -> None:
    s = load(
        {"EP_MODE": "compose", "KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092", "KAFKA_REPLICATION_FACTOR": "3"}
    )
    assert s.kafka_bootstrap_servers == "kafka-1:9092"
    assert (s.kafka_replication_factor, s.kafka_min_insync_replicas) == (3, 2)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"KAFKA_BROKERS": "2", "KAFKA_REPLICATION_FACTOR": "3"},
            "KAFKA_REPLICATION_FACTOR must be at most KAFKA_BROKERS",
        ),
        (
            {"KAFKA_MIN_INSYNC_REPLICAS": "2"},
            "KAFKA_MIN_INSYNC_REPLICAS must be at most the replication factor",
        ),
        ({"KAFKA_BROKERS": "3", "KAFKA_BOOTSTRAP_SERVERS": "a:1,a:2"}, "must list 1 or KAFKA_BROKERS"),
        ({"KAFKA_BROKERS": "3", "KAFKA_CONTROLLER_PORT": "9192"}, "ports that overlap"),
        ({"KAFKA_BROKERS": "0"}, "KAFKA_BROKERS must be at least 1"),
    ],
)
def test_a_cluster_that_cannot_work_is_refused_in_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as caught:
        load(env)
    assert "\n" not in str(caught.value)


def test_empty_values_take_the_default() -> None:
    assert load({"POSTGRES_PORT": "", "EP_MODE": ""}) == load({})


def test_secrets_stay_out_of_reprs() -> None:
    s = load({"POSTGRES_PASSWORD": "hunter2", "REDIS_PASSWORD": "hunter3"})
    assert "hunter" not in repr(s)


def test_every_variable_has_a_description() -> None:
    assert len(ENV_VARS) >= 38
    assert all(
        line.count("|") == 4 and not line.endswith("| None |") for line in markdown_table().splitlines()
    )


def test_the_readme_table_is_the_models() -> None:
    """The README's configuration table is generated: regenerate it with
    ``.venv/bin/python -m engagement_platform.settings --markdown``."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert markdown_table() in readme, "README's ## Configuration table differs from settings.Settings"
