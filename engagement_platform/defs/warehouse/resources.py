"""ClickHouse as a Dagster resource: clickhouse-connect over HTTP, values passed as parameters only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from clickhouse_connect.driver.client import Client

from engagement_platform import settings
from engagement_platform.defs.config import setting
from engagement_platform.warehouse import ddl


class ClickHouseResource(dg.ConfigurableResource):
    """Every query goes through ``command``/``rows`` with a ``parameters`` mapping
    (``{name:Type}`` placeholders, bound server-side), so no value is ever formatted into SQL.

    ``client``/``command`` log in as the owner (the set-up assets' DDL); ``reader_client`` and
    ``rows``, which checks and sensors use, as the read-only reader."""

    host: str
    port: int
    username: str
    password: str
    reader_username: str = ""  # empty: the owner's login
    reader_password: str = ""
    database: str
    # which clickhouse_ddl/ files apply: "local" (Null queue fed by the bridge) or "compose" (Kafka engine)
    mode: str = "local"
    # WAREHOUSE_VARIANT: "cluster" applies the .cluster.sql files (compose mode only)
    warehouse_variant: str = "single"
    # local mode's ingest gate lives here (migrations.pause); empty: EP_HOME's default
    ep_home: str = ""
    # where the schema's versions live (EP_MIGRATIONS_DIR); empty: the repo
    migrations_dir: str = ""
    send_receive_timeout_s: int = 600

    def client(self, database: str | None = None) -> Client:
        """A new client on ``database`` (default: the configured one); the caller closes it."""
        return ddl.connect(
            self.host,
            self.port,
            self.username,
            self.password,
            self.database if database is None else database,
            send_receive_timeout=self.send_receive_timeout_s,
        )

    def reader_client(self) -> Client:
        """A new client on the configured database as the read-only reader; the caller closes it."""
        return ddl.connect(
            self.host,
            self.port,
            self.reader_username or self.username,
            self.reader_password if self.reader_username else self.password,
            self.database,
            send_receive_timeout=self.send_receive_timeout_s,
        )

    def ensure_database(self) -> bool:
        """Create the database if missing; True when it was created."""
        client = self.client(database="default")
        try:
            existed = ddl.database_exists(client, self.database)
            ddl.ensure_database(client, self.database)
        finally:
            client.close()
        return not existed

    @property
    def ddl_mode(self) -> str:
        """Which clickhouse_ddl/ files apply, as Settings.ddl_mode says."""
        return settings.load({"EP_MODE": self.mode, "WAREHOUSE_VARIANT": self.warehouse_variant}).ddl_mode

    @property
    def ep_home_path(self) -> Path:
        return Path(self.ep_home or str(settings.default("EP_HOME"))).expanduser().resolve()

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        client = self.client()
        try:
            return client.command(sql, parameters=dict(parameters or {}))
        finally:
            client.close()

    def rows(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Sequence[Sequence[Any]]:
        client = self.reader_client()
        try:
            return client.query(sql, parameters=dict(parameters or {})).result_rows
        finally:
            client.close()


def clickhouse_resource() -> ClickHouseResource:
    return ClickHouseResource(
        host=setting("clickhouse_host"),
        port=setting("clickhouse_port"),
        username=setting("clickhouse_user"),
        password=setting("clickhouse_password"),
        reader_username=setting("clickhouse_reader_user"),
        reader_password=setting("clickhouse_reader_password"),
        database=setting("clickhouse_database"),
        mode=setting("mode"),
        warehouse_variant=setting("warehouse_variant"),
        ep_home=setting("ep_home"),
        migrations_dir=setting("migrations_dir"),
    )
