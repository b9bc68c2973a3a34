"""The source database as a Dagster resource."""

from __future__ import annotations

import dagster as dg
import psycopg2
from psycopg2.extensions import connection as PgConnection

from engagement_platform.defs.config import setting


class PostgresResource(dg.ConfigurableResource):
    """Owner connection to the source database, plus the credentials of the roles that
    `postgres/schema` creates: the CDC role (which `cdc/connector` hands to Debezium), the
    simulator's writer and the read-only reader."""

    host: str
    port: int
    dbname: str
    user: str
    password: str
    cdc_user: str
    cdc_password: str
    writer_user: str
    writer_password: str
    reader_user: str
    reader_password: str
    # where the schema's versions live (EP_MIGRATIONS_DIR); empty: the repo
    migrations_dir: str = ""

    def connect(self) -> PgConnection:
        """The owner's connection (the set-up assets)."""
        return self._connect(self.user, self.password)

    def reader_connect(self) -> PgConnection:
        """The read-only role's connection (checks and sensors)."""
        return self._connect(self.reader_user, self.reader_password)

    def _connect(self, user: str, password: str) -> PgConnection:
        return psycopg2.connect(
            host=self.host,
            port=self.port,
            dbname=self.dbname,
            user=user,
            password=password,
            connect_timeout=10,
            application_name="engagement-platform-dagster",
        )


def postgres_resource() -> PostgresResource:
    return PostgresResource(
        host=setting("postgres_host"),
        port=setting("postgres_port"),
        dbname=setting("postgres_db"),
        user=setting("postgres_user"),
        password=setting("postgres_password"),
        cdc_user=setting("cdc_user"),
        cdc_password=setting("cdc_password"),
        writer_user=setting("postgres_writer_user"),
        writer_password=setting("postgres_writer_password"),
        reader_user=setting("postgres_reader_user"),
        reader_password=setting("postgres_reader_password"),
        migrations_dir=setting("migrations_dir"),
    )
