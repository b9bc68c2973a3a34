"""The warehouse schema as files in ``clickhouse_ddl/``, applied in order for one mode.

Kept free of Dagster so the bridge consumer, the benchmark and the tests share exactly the
code path the ``clickhouse/schema`` asset uses.

File names are ``NNN_name.sql`` (both modes), ``NNN_name.local.sql`` or
``NNN_name.compose.sql`` (that mode only); they run in numeric order, then by name. The
first schema (010-090) is ``IF NOT EXISTS`` throughout, so an edited table definition does
not alter an existing table: schema changes are later files (100 on) that change a database
in place (view swaps, rebuilds, ``ALTER``), each written to be safe to run twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from engagement_platform.settings import PROJECT_ROOT, Settings

DDL_DIR = PROJECT_ROOT / "clickhouse_ddl"
MODES = ("local", "compose")
_FILE_NAME = re.compile(r"^(?P<order>\d+)_(?P<name>[A-Za-z0-9_]+)(?:\.(?P<mode>local|compose))?\.sql$")

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


class DdlError(ValueError):
    """The ``clickhouse_ddl/`` directory holds something the applier cannot order or split."""


@dataclass(frozen=True)
class DdlFile:
    path: Path
    order: int
    mode: str | None  # None: both modes

    @property
    def name(self) -> str:
        return self.path.name


def ddl_files(mode: str, directory: Path = DDL_DIR) -> list[DdlFile]:
    """The files that apply in ``mode``, in application order."""
    if mode not in MODES:
        raise DdlError(f"mode must be one of {MODES}, got {mode!r}")
    found = []
    for path in directory.iterdir():
        if path.suffix != ".sql":
            continue
        match = _FILE_NAME.match(path.name)
        if match is None:
            # a misnamed file would otherwise be skipped silently, or run in the wrong mode
            raise DdlError(f"{path.name}: DDL files must be named NNN_name[.local|.compose].sql")
        found.append(DdlFile(path, int(match["order"]), match["mode"]))
    return sorted(
        (f for f in found if f.mode in (None, mode)),
        key=lambda f: (f.order, f.name),
    )


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
    return bool(_strip_comments(statement))


def _strip_comments(statement: str) -> str:
    """The statement without its comments (a ``--`` inside a string cuts the line: used only
    to look at a statement's head)."""
    without_block = re.sub(r"/\*.*?\*/", "", statement, flags=re.S)
    return "\n".join(line.split("--", 1)[0] for line in without_block.splitlines()).strip()


def statements(mode: str, directory: Path = DDL_DIR) -> list[tuple[DdlFile, str]]:
    return [(f, stmt) for f in ddl_files(mode, directory) for stmt in split_statements(f.path.read_text())]


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


def connect_settings(settings: Settings, database: str | None = None, **kwargs: Any) -> Client:
    return connect(
        settings.clickhouse_host,
        settings.clickhouse_port,
        settings.clickhouse_user,
        settings.clickhouse_password,
        database if database is not None else settings.clickhouse_database,
        **kwargs,
    )


def ensure_database(client: Client, database: str) -> None:
    client.command("CREATE DATABASE IF NOT EXISTS {db:Identifier}", parameters={"db": database})


_CREATE_VIEW_IF_NOT_EXISTS = re.compile(
    r"^CREATE\s+MATERIALIZED\s+VIEW\s+IF\s+NOT\s+EXISTS\s+([A-Za-z_][A-Za-z0-9_]*)\b", re.I
)


def _view_exists_already(client: Client, statement: str) -> bool:
    """True if ``statement`` is ``CREATE MATERIALIZED VIEW IF NOT EXISTS v`` and ``v`` exists.

    ClickHouse checks such a view's SELECT against its target table before it checks whether
    the view exists; once a later file reshaped the target (110 reshapes the minute rollup),
    re-running the earlier file would fail although it means to do nothing."""
    match = _CREATE_VIEW_IF_NOT_EXISTS.match(_strip_comments(statement))
    return match is not None and bool(
        client.command(
            "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = {v:String}",
            parameters={"v": match[1]},
        )
    )


def apply(client: Client, mode: str, directory: Path = DDL_DIR) -> list[str]:
    """Run every statement for ``mode`` in the client's current database; returns the files applied."""
    applied: list[str] = []
    for ddl_file, statement in statements(mode, directory):
        try:
            if not _view_exists_already(client, statement):
                client.command(statement)
        except Exception as exc:
            raise DdlError(f"{ddl_file.name}: {exc}") from exc
        if not applied or applied[-1] != ddl_file.name:
            applied.append(ddl_file.name)
    return applied


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
