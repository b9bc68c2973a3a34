"""The source database as a Dagster resource."""

from __future__ import annotations

import dagster as dg
import psycopg2
from psycopg2.extensions import connection as PgConnection

from engagement_platform.defs.config import setting


class PostgresResource(dg.ConfigurableResource):
    """Owner connection to the source database, plus the CDC role's credentials that
    `postgres/schema` grants and `cdc/connector` hands to Debezium."""

    host: str
    port: int
    dbname: str
    user: str
    password: str
    cdc_user: str
    cdc_password: str
    # where the schema's versions live (EP_MIGRATIONS_DIR); empty: the repo
    migrations_dir: str = ""

    def connect(self) -> PgConnection:
        return psycopg2.connect(
            host=self.host,
            port=self.port,
            dbname=self.dbname,
            user=self.user,
            password=self.password,
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
        migrations_dir=setting("migrations_dir"),
    )
