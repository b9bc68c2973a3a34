"""One request's statement, run on a borrowed chdb connection.

``execute`` is synchronous and blocks in chdb: the HTTP layer runs it in a worker thread
and hands it the body as an iterator of chunks that arrive while it runs. Inserts are
streamed into chdb's inserter chunk by chunk, decompressing on the fly, so inserts of
millions of rows never sit in memory whole. Query results are materialised (like
``wait_end_of_query=1``) and handed back as a view of chdb's buffer, without a copy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from engagement_platform.local_stack.clickhouse_http.engine import Engine, Handle
from engagement_platform.local_stack.clickhouse_http.protocol import (
    ACCESS_DENIED,
    MIN_COMPRESS_BYTES,
    READONLY,
    SUPPORT_IS_DISABLED,
    SYNTAX_ERROR,
    Account,
    ClickHouseError,
    RequestOptions,
    choose_response_encoding,
    compress_body,
    decode_body,
    error_from_engine,
    format_content_type,
    summary_header,
)
from engagement_platform.local_stack.clickhouse_http.sql_scan import (
    InsertSplit,
    ast_tables,
    creates_kafka_table,
    first_keyword,
    insert_target,
    normalize_sql,
    split_insert,
    trailing_format,
    without_trailing_format,
)

LOG = logging.getLogger("engagement_platform.clickhouse_server")

# chdb's inserter is several times faster with ~1 MiB appends than with 64 KiB ones.
INSERT_APPEND_BYTES = 1 << 20
OWNER = Account("default", "")  # who runs a statement when no account is given: no limits


@dataclass
class Reply:
    """What to answer: the HTTP layer adds the headers every response carries."""

    status: int = 200
    body: bytes | memoryview = b""
    headers: dict[str, str] = field(default_factory=dict)
    keepalive: Any = None  # holds the chdb result whose buffer ``body`` views
    error: ClickHouseError | None = None  # what failed, for the request log
    statement: str = ""  # the statement's start and rows written, for the request log
    written_rows: int = 0


def execute(
    engine: Engine,
    opts: RequestOptions,
    method: str,
    body: Iterable[bytes],
    encoding: str,
    accept: str,
    account: Account = OWNER,
) -> Reply:
    """Run the request's statement (URL ``query`` + body, as ClickHouse concatenates them) as
    ``account``: a reader's connection is in ClickHouse's ``readonly=1``, whatever the request
    asks; a writer's statement must be an insert into its one table."""
    if account.role == "reader":
        opts.readonly = 1  # a URL's readonly=0 cannot lift it
    chunks = decode_body(body, encoding)
    prefix = (opts.query + "\n").encode() if opts.query else b""
    head, split = read_statement(prefix, chunks)
    with engine.borrow(opts, account) as handle:
        if split is not None:
            reply = run_insert(engine, handle, head, split, chunks, opts, method, account)
        else:
            reply = run_query(engine, handle, head, opts, method, account)
    _maybe_compress(reply, opts, accept)
    return reply


def _maybe_compress(reply: Reply, opts: RequestOptions, accept: str) -> None:
    if not accept or not opts.enable_http_compression or len(reply.body) < MIN_COMPRESS_BYTES:
        return
    encoding = choose_response_encoding(accept)
    if encoding is None:
        return
    reply.body = compress_body(reply.body, encoding, opts.zlib_level)
    reply.keepalive = None
    reply.headers["Content-Encoding"] = encoding


def _result_summary(result: Any) -> str:
    return summary_header(
        read_rows=result.storage_rows_read(),
        read_bytes=result.storage_bytes_read(),
        written_rows=result.rows_written(),
        written_bytes=result.bytes_written(),
        result_rows=result.rows_read(),
        result_bytes=result.bytes_read(),
        elapsed_ns=result.elapsed() * 1e9,
    )


def read_statement(prefix: bytes, body: Iterator[bytes]) -> tuple[bytes, InsertSplit | None]:
    """Read just enough of the request to know what it is.

    Returns the bytes read so far and, for ``INSERT ... FORMAT``, where the data starts
    (the rest of the data is still in ``body``). For any other statement the whole
    query text is returned and ``body`` is exhausted.
    """
    buffer = prefix
    while True:
        verdict = split_insert(buffer, final=False)
        if verdict is not None:
            break
        chunk = next(body, None)
        if chunk is None:
            verdict = split_insert(buffer, final=True)
            break
        buffer = buffer + chunk if buffer else chunk
    if isinstance(verdict, InsertSplit):
        return buffer, verdict
    rest = list(body)
    if rest:
        buffer = b"".join([buffer, *rest])
    return buffer, None


def _statement_text(sql: bytes) -> str:
    try:
        return sql.decode("utf-8")
    except UnicodeDecodeError:
        raise ClickHouseError.make(SYNTAX_ERROR, "Query is not valid UTF-8") from None


def _head(statement: str) -> str:
    """The start of a statement on one line, for a log line."""
    return " ".join(statement[:240].split())[:120]


def _check_allowed(normalized: str, verdict: dict[str, Any] | None, readonly: int, method: str) -> None:
    """Refuse what would corrupt the data directory or break the HTTP contract."""
    if creates_kafka_table(normalized):
        raise ClickHouseError.make(
            SUPPORT_IS_DISABLED,
            "Kafka table engine is not supported by this local ClickHouse (chdb): creating "
            "one corrupts the embedded engine's data directory. Consume the topic in "
            "Python and INSERT into a MergeTree table instead",
        )
    if verdict is None:
        return
    if verdict.get("statement_count", 0) > 1:
        raise ClickHouseError.make(SYNTAX_ERROR, "Multi-statements are not allowed")
    klass = getattr(verdict.get("query_class"), "name", "")
    if not (readonly or method == "GET") or klass in ("READ_ONLY", "UNKNOWN"):
        return
    keyword = first_keyword(normalized)
    if klass == "CONTROL" and (keyword == "USE" or (keyword == "SET" and readonly != 1)):
        return
    hint = (
        " For queries over HTTP, method GET implies readonly. "
        "You should use method POST for modifying queries"
        if method == "GET"
        else ""
    )
    raise ClickHouseError.make(READONLY, f"Cannot execute query in readonly mode.{hint}")


def _denied(account: Account, grant: str) -> ClickHouseError:
    return ClickHouseError.make(
        ACCESS_DENIED,
        f"{account.user}: Not enough privileges. "
        f"To execute this query, it's necessary to have the grant {grant}",
    )


def _qualified(name: str, database: str) -> str:
    return name if "." in name else f"{database}.{name}"


def _check_insert_target(account: Account, statement: bytes, database: str) -> None:
    """A writer inserts into its one table (``account.table``) and nowhere else."""
    target = insert_target(statement)
    if target is None or target[1] != account.table:
        where = f"{target[0] or database}.{target[1]}" if target else "the target"
        raise _denied(account, f"INSERT ON {where}")


def _check_writer_statement(
    handle: Handle, account: Account, text: str, keyword: str, klass: str, opts: RequestOptions
) -> None:
    """What a writer may run besides its inserts: reads of ``system`` tables (what a client asks
    when it connects), ``DESCRIBE`` of its own table, ``USE`` and ``SET``. ClickHouse's own
    parser (``EXPLAIN AST``) names the tables a statement reads."""
    database = handle.database or ""
    if keyword in ("USE", "SET") and klass == "CONTROL":
        return
    if keyword == "INSERT":
        _check_insert_target(account, text.encode(), database)
    elif klass != "READ_ONLY":
        raise _denied(account, f"{' '.join(text.split()[:2]).upper()} ON {database}.*")
    try:
        explained = handle.conn.query(
            "EXPLAIN AST " + without_trailing_format(text), "TabSeparatedRaw", params=opts.query_params
        )
    except Exception as exc:
        raise error_from_engine(exc) from exc
    root, tables, table_function = ast_tables(explained.bytes().decode("utf-8", errors="replace"))
    if keyword != "INSERT" and root not in ("SelectWithUnionQuery", "DescribeQuery"):
        raise _denied(account, f"SHOW ON {database}.*")  # SHOW CREATE, EXISTS...: metadata it lacks
    if table_function:
        raise _denied(account, "CREATE TEMPORARY TABLE ON *.*")
    for table in (_qualified(t, database) for t in tables):
        if table.startswith("system.") or (root == "DescribeQuery" and table.endswith(f".{account.table}")):
            continue
        raise _denied(account, f"SELECT ON {table}")


def run_query(
    engine: Engine, handle: Handle, sql: bytes, opts: RequestOptions, method: str, account: Account = OWNER
) -> Reply:
    """Execute a complete statement and return its materialised result."""
    text = _statement_text(sql)
    normalized = normalize_sql(sql)
    if not normalized.strip(" ;"):
        raise ClickHouseError.make(SYNTAX_ERROR, "Empty query")
    verdict = handle.classify(text)
    _check_allowed(normalized, verdict, opts.readonly, method)
    engine.prepare(handle, opts)
    if account.role == "writer":
        klass = getattr((verdict or {}).get("query_class"), "name", "")
        _check_writer_statement(handle, account, text, first_keyword(normalized), klass, opts)
    fmt = opts.default_format or "TabSeparated"
    try:
        result = handle.conn.query(sql, fmt, params=opts.query_params)
    except Exception as exc:
        raise error_from_engine(exc) from exc
    klass = getattr((verdict or {}).get("query_class"), "name", "")
    keyword = first_keyword(normalized)
    if klass == "CONTROL" or keyword in ("SET", "USE") or "TEMPORARY" in normalized.upper():
        engine.after_control_statement(handle, keyword)
    wrapper = result.get_memview() if result.size() else None
    body = wrapper.view() if wrapper is not None else b""
    response = Reply(body=body, keepalive=(result, wrapper), statement=_head(text))
    response.written_rows = result.rows_written()
    response.headers["X-ClickHouse-Summary"] = _result_summary(result)
    if klass == "READ_ONLY" or len(body):
        out_format = trailing_format(normalized) or fmt
        response.headers["X-ClickHouse-Format"] = out_format
        response.headers["Content-Type"] = format_content_type(out_format)
    else:
        response.headers["Content-Type"] = "text/plain; charset=UTF-8"
    return response


def run_insert(
    engine: Engine,
    handle: Handle,
    head: bytes,
    split: InsertSplit,
    body: Iterator[bytes],
    opts: RequestOptions,
    method: str,
    account: Account = OWNER,
) -> Reply:
    """Stream an ``INSERT ... FORMAT`` body into chdb without holding it in memory."""
    statement = _statement_text(split.statement)
    normalized = normalize_sql(split.statement)
    _check_allowed(normalized, handle.classify(statement), opts.readonly, method)
    if method == "GET":
        raise ClickHouseError.make(READONLY, "Cannot execute INSERT over HTTP GET")
    engine.prepare(handle, opts)
    if account.role == "writer":
        _check_insert_target(account, split.statement, handle.database or "")
    try:
        inserter = handle.conn.send_insert(statement, split.format_name)
    except Exception as exc:
        raise error_from_engine(exc) from exc
    try:
        _feed(inserter, head[split.data_offset :], body)
        result = inserter.finish()
    except ClickHouseError:
        _cancel(inserter)
        raise
    except Exception as exc:
        _cancel(inserter)
        raise error_from_engine(exc) from exc
    response = Reply(statement=_head(statement), written_rows=result.rows_written)
    response.headers["X-ClickHouse-Summary"] = summary_header(
        written_rows=result.rows_written,
        written_bytes=result.bytes_written,
        elapsed_ns=result.elapsed * 1e9,
    )
    response.headers["Content-Type"] = "text/plain; charset=UTF-8"
    return response


def _feed(inserter: Any, first: bytes, body: Iterator[bytes]) -> None:
    """Append the data in ~1 MiB pieces: chdb's per-append cost dominates below that."""
    pending: list[bytes] = [first] if first else []
    size = len(first)
    for chunk in body:
        if not pending and len(chunk) >= INSERT_APPEND_BYTES:
            inserter.append(chunk)
            continue
        pending.append(chunk)
        size += len(chunk)
        if size >= INSERT_APPEND_BYTES:
            inserter.append(pending[0] if len(pending) == 1 else b"".join(pending))
            pending, size = [], 0
    if pending:
        inserter.append(pending[0] if len(pending) == 1 else b"".join(pending))


def _cancel(inserter: Any) -> None:
    try:
        inserter.cancel()
    except Exception:
        LOG.debug("cancelling a failed insert failed", exc_info=True)
