"""``engagement-platform sql``: ad-hoc SQL on the warehouse from the shell.

The product promised ClickHouse's CLI; chdb has none, and a second process can't open
its data. So the query goes where every other process sends it: the ClickHouse HTTP
interface named by the settings (CLICKHOUSE_HOST/PORT/DATABASE), through clickhouse-connect,
as the read-only reader unless ``--admin`` asks for the owner: a shell's typo cannot drop a
table. The server formats the rows (ClickHouse's own CSV and JSON rules); this module only
picks the format and prints.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from typing import IO, Any

from engagement_platform.argtypes import UsageError
from engagement_platform.settings import Role, Settings

# --format (the choices cli.py offers) -> the ClickHouse output format asked for. It goes
# as X-ClickHouse-Format, not a FORMAT clause, so statements without output (DDL) still run.
FORMATS = {
    "table": "JSONCompact",
    "csv": "CSVWithNames",
    "json": "JSONEachRow",
}
# numbers stay numbers in JSON, whatever the server's default (older servers quote 64-bit integers)
JSON_SETTINGS = {"output_format_json_quote_64bit_integers": 0}
_MESSAGE_RE = re.compile(r"Code: \d+\..*", re.DOTALL)
_ERRNO_RE = re.compile(r"\[Errno \d+\] [^\"')]+")
# the server's version trailer, and what clickhouse-connect adds after it ("(for url ...)")
_TRAILER_RE = re.compile(r"\s*\(version [^)]*\).*$", re.DOTALL)
READONLY_HINT = " (sql runs as the read-only CLICKHOUSE_READER_USER; --admin runs it as the owner)"


class QueryFailed(RuntimeError):
    """ClickHouse refused the query, or could not be reached (the CLI exits 1)."""


def read_query(arg: str | None, stdin: IO[str]) -> str:
    """The SQL from the argument, or from standard input when it is '-' or missing."""
    if arg is None or arg == "-":
        if arg is None and stdin.isatty():
            raise UsageError("no query: give SQL as an argument, or '-' and SQL on standard input")
        arg = stdin.read()
    if not arg.strip():
        raise UsageError("the query is empty")
    return arg


def clickhouse_message(exc: BaseException) -> str:
    """ClickHouse's own message on one line, without the client's prefix or version trailer."""
    text = str(exc)
    match = _MESSAGE_RE.search(text)
    text = match.group(0) if match else text
    return " ".join(_TRAILER_RE.sub("", text).split())


def fetch(settings: Settings, database: str | None, sql: str, fmt: str, role: Role = "reader") -> bytes:
    """Run ``sql`` as ``role`` and return the server's output in ClickHouse format ``fmt``."""
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import Error, OperationalError

    # errors are reported here, in one line; the driver would also log them on stderr
    logging.getLogger("clickhouse_connect").setLevel(logging.CRITICAL)
    try:
        username, password = settings.clickhouse_login(role)
        client = clickhouse_connect.get_client(
            host=settings.clickhouse_host,
            port=settings.clickhouse_port,
            username=username,
            password=password,
            database=database or settings.clickhouse_database,
            connect_timeout=10,
        )
        try:
            return client.raw_query(
                sql,
                settings=JSON_SETTINGS if fmt.startswith("JSON") else None,
                transport_settings={"X-ClickHouse-Format": fmt},
            )
        finally:
            client.close()
    except OperationalError as exc:  # no answer at all, as opposed to ClickHouse saying no
        where = f"{settings.clickhouse_host}:{settings.clickhouse_port}"
        reason = _ERRNO_RE.search(str(exc))
        raise QueryFailed(
            f"cannot reach ClickHouse at {where}: {reason.group(0) if reason else clickhouse_message(exc)}"
        ) from None
    except Error as exc:
        message = clickhouse_message(exc)
        readonly = role == "reader" and message.startswith("Code: 164.")
        raise QueryFailed(message + (READONLY_HINT if readonly else "")) from None


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def print_table(body: bytes, out: IO[str]) -> None:
    """Rows as a rich table; output in another format (a FORMAT clause) is printed as is."""
    from rich.console import Console
    from rich.table import Table

    try:
        result = json.loads(body) if body.startswith(b"{") else None
    except ValueError:
        result = None
    if not isinstance(result, dict) or "meta" not in result:
        out.write(body.decode("utf-8", errors="replace") if body else "Ok.\n")
        return
    table = Table(show_lines=False, header_style="bold")
    for column in result["meta"]:
        table.add_column(column["name"], overflow="fold")
    for row in result["data"]:
        table.add_row(*("NULL" if v is None else _cell(v) for v in row))
    # a pipe gets the whole table, not one wrapped to 80 columns
    console = Console(file=out, width=None if out.isatty() else 10_000, highlight=False)
    console.print(table)
    console.print(f"{result.get('rows', len(result['data']))} row(s)", style="dim")


def run(args: argparse.Namespace, settings: Settings) -> int:
    sql = read_query(args.query, sys.stdin)
    body = fetch(settings, args.database, sql, FORMATS[args.format], "owner" if args.admin else "reader")
    if args.format == "table":
        print_table(body, sys.stdout)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
    return 0
