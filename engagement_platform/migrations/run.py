"""Both databases' migrations from the platform's Settings: what `migrate` and the tests call.

Postgres runs first: the warehouse reads what the source produces, never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import closing

import psycopg2

from engagement_platform.migrations import clickhouse, postgres
from engagement_platform.migrations.files import Layout, Migration
from engagement_platform.migrations.status import Status
from engagement_platform.settings import Settings
from engagement_platform.warehouse import ddl


def postgres_session(
    cdc: tuple[str, str], writer: tuple[str, str], reader: tuple[str, str]
) -> dict[str, str]:
    """The session settings the Postgres migrations read, from (user, password) pairs: init.sql's
    CDC role, 002's writer (the simulator) and reader. Secrets: never logged."""
    return {
        "ep.cdc_user": cdc[0],
        "ep.cdc_password": cdc[1],
        "ep.writer_user": writer[0],
        "ep.writer_password": writer[1],
        "ep.reader_user": reader[0],
        "ep.reader_password": reader[1],
    }


def settings_session(settings: Settings) -> dict[str, str]:
    """:func:`postgres_session` with every role as ``settings`` names it."""
    return postgres_session(
        (settings.cdc_user, settings.cdc_password),
        settings.postgres_login("writer"),
        settings.postgres_login("reader"),
    )


def _clickhouse_database_exists(settings: Settings) -> bool:
    with closing(ddl.connect_settings(settings, "default")) as admin:
        return ddl.database_exists(admin, settings.clickhouse_database)


def status(settings: Settings) -> list[Status]:
    """Postgres's and ClickHouse's status; reads only (a missing database: all pending)."""
    layout = Layout.of(settings.migrations_dir)
    with closing(psycopg2.connect(settings.postgres_dsn)) as conn:
        result = [postgres.status(conn, layout.postgres())]
    if _clickhouse_database_exists(settings):
        with closing(ddl.connect_settings(settings)) as client:
            result.append(clickhouse.status(client, settings.ddl_mode, layout.clickhouse(settings.ddl_mode)))
    else:
        result.append(Status("clickhouse", pending=layout.clickhouse(settings.ddl_mode)))
    return result


def up(
    settings: Settings,
    on_applied: Callable[[str, Migration], None] = lambda db, m: None,
    on_wait: Callable[[str], None] = lambda line: None,
    session: Mapping[str, str] | None = None,
) -> dict[str, list[Migration]]:
    """Apply what is pending, Postgres first; database name -> files applied.

    Both databases are checked for edited files before either is touched.
    """
    for s in status(settings):
        s.refuse_edited()
    session = settings_session(settings) if session is None else session
    layout = Layout.of(settings.migrations_dir)
    with closing(psycopg2.connect(settings.postgres_dsn)) as conn:
        pg_done, _ = postgres.apply(
            conn,
            session,
            layout.postgres(),
            on_applied=lambda m: on_applied("postgres", m),
            on_wait=on_wait,
        )
    with closing(ddl.connect_settings(settings, "default")) as admin:
        ddl.ensure_database(admin, settings.clickhouse_database)
    with closing(ddl.connect_settings(settings)) as client:
        ch_done, _ = clickhouse.apply(
            client,
            settings.ddl_mode,
            settings.ep_home,
            layout.clickhouse(settings.ddl_mode),
            on_applied=lambda m: on_applied("clickhouse", m),
            on_wait=on_wait,
        )
    return {"postgres": pg_done, "clickhouse": ch_done}
