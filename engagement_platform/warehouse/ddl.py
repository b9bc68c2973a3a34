"""ClickHouse plumbing shared by every warehouse client: connections, statement splitting,
and the names of the tables code reads or writes.

The schema itself is ``clickhouse_ddl/``, applied as versioned migrations by
``engagement_platform.migrations`` (each file once per database, recorded in
``schema_migrations``; an applied file that was edited is refused). A schema change is a new
file there (``engagement-platform migrate new clickhouse NAME``), never an edit of an old one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from engagement_platform.settings import Role, Settings

# The tables the rest of the platform reads or writes (names used in code, not only in SQL).
QUEUE = "engagement_enriched_queue"
INGEST = "engagement_enriched_ingest"
ENRICHED = "engagement_enriched"
ERRORS = "engagement_enriched_errors"
MINUTE = "content_engagement_minute"
DAILY = "daily_content_engagement"
# per day, rebuilt with DAILY: what the dashboard reads for the days already built
BREAKDOWN = "daily_engagement_breakdown"
BY_DEVICE = "daily_content_by_device"
# fed by views (clickhouse_ddl/140): per day, content type and device, the set of user ids
USERS_DAILY = "users_daily"


class DdlError(ValueError):
    """SQL the splitter cannot cut into statements (an unterminated quote or comment)."""


def split_statements(sql: str) -> list[str]:
    """Split a script on ``;`` outside quotes and comments; comments are kept with their statement.

    The HTTP interface runs one statement per request, and a naive ``split(';')`` would
    cut string literals and comments that contain one.
    """
    statements: list[str] = []
    start = i = 0
    n = len(sql)
    while i < n:
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif ch == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise DdlError("unterminated /* comment")
            i = end + 2
        elif ch in "'\"`":
            i += 1
            while True:
                if i >= n:
                    raise DdlError(f"unterminated {ch} quote")
                if sql[i] == "\\":
                    i += 2
                elif sql[i] == ch:
                    if i + 1 < n and sql[i + 1] == ch:  # doubled quote: an escaped quote
                        i += 2
                    else:
                        i += 1
                        break
                else:
                    i += 1
        elif ch == ";":
            statements.append(sql[start:i])
            i += 1
            start = i
        else:
            i += 1
    statements.append(sql[start:])
    return [s.strip() for s in statements if _has_code(s)]


def _has_code(statement: str) -> bool:
    """True unless the text is only whitespace and comments."""
    return bool(strip_comments(statement))


def strip_comments(statement: str) -> str:
    """The statement without its comments (a ``--`` inside a string cuts the line: only for
    looking at a statement's shape)."""
    without_block = re.sub(r"/\*.*?\*/", "", statement, flags=re.S)
    return "\n".join(line.split("--", 1)[0] for line in without_block.splitlines()).strip()


def connect(
    host: str,
    port: int,
    username: str,
    password: str,
    database: str | None = None,
    **kwargs: Any,
) -> Client:
    """A clickhouse-connect HTTP client; ``database`` must exist (see ``ensure_database``)."""
    kwargs.setdefault("connect_timeout", 10)
    kwargs.setdefault("send_receive_timeout", 300)
    return clickhouse_connect.get_client(
        host=host,
        port=port,
        username=username,
        password=password,
        database=database or "",
        **kwargs,
    )


def connect_settings(
    settings: Settings, database: str | None = None, *, role: Role = "owner", **kwargs: Any
) -> Client:
    """A client logged in as ``role`` (issue 20): the owner for DDL, the bridge's ``writer``,
    the read-only ``reader``."""
    user, password = settings.clickhouse_login(role)
    return connect(
        settings.clickhouse_host,
        settings.clickhouse_port,
        user,
        password,
        database if database is not None else settings.clickhouse_database,
        **kwargs,
    )


def scalar_int(client: Client, sql: str, parameters: Mapping[str, Any] | None = None) -> int:
    """The one integer a query such as ``SELECT count() …`` returns.

    ``Client.command`` is typed to return any of four shapes; this says which one is meant, and
    fails clearly when the query returns something else.
    """
    value = client.command(sql, parameters=dict(parameters or {}))
    if not isinstance(value, int | str):
        raise TypeError(f"expected one value from {sql!r}, got {value!r}")
    return int(value)


def database_exists(client: Client, database: str) -> bool:
    return bool(
        scalar_int(client, "SELECT count() FROM system.databases WHERE name = {db:String}", {"db": database})
    )


def table_exists(client: Client, name: str) -> bool:
    """Whether the client's current database holds a table or view called ``name``."""
    return bool(
        scalar_int(
            client,
            "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = {n:String}",
            {"n": name},
        )
    )


def ensure_database(client: Client, database: str) -> None:
    client.command("CREATE DATABASE IF NOT EXISTS {db:Identifier}", parameters={"db": database})


def tables(client: Client, database: str) -> dict[str, dict[str, Any]]:
    """Name -> engine, DDL and row count of the database's tables (for metadata and tests)."""
    result = client.query(
        "SELECT name, engine, create_table_query, total_rows FROM system.tables "
        "WHERE database = {db:String} ORDER BY name",
        parameters={"db": database},
    )
    return {
        name: {"engine": engine, "create": create, "rows": rows}
        for name, engine, create, rows in result.result_rows
    }


def insert_raw(client: Client, table: str, messages: Iterable[bytes | str]) -> int:
    """Insert message values as-is into a one-column ``raw String`` table; returns rows sent."""
    rows = [[m] for m in messages]
    if rows:
        client.insert(table, rows, column_names=["raw"])
    return len(rows)
