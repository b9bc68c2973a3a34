"""Settings: every endpoint from the environment, with the local stack's defaults."""

from __future__ import annotations

import pytest

from engagement_platform.settings import SettingsError, as_env, load


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
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.mode == "local"


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
        ({"EP_MODE": "cloud"}, "EP_MODE must be"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load(env)
