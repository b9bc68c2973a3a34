"""The ClickHouse HTTP interface, served from an embedded chdb engine.

No registry ships a modern ClickHouse server, but chdb is the real ClickHouse engine
in-process, and only one process may open a data directory. This module is that one
process: it owns the engine and speaks enough of ClickHouse's HTTP protocol that an
unmodified ``clickhouse_connect.get_client(host=..., port=...)`` in any other process
can connect, query, insert (plain or compressed) and receive ClickHouse-style errors.

Run it as ``python -m engagement_platform.local_stack.clickhouse_server --data-dir DIR``.
It listens on ``127.0.0.1:<settings.clickhouse_port>`` only.

Design notes (the why):

* chdb allows many connections to its one engine, each with its own session state
  (``USE``, ``SET``, temporary tables), and queries on different connections run in
  parallel with the GIL released. So each request borrows a connection: one dedicated
  to its ``session_id`` when it has one (clickhouse-connect always sends one), otherwise
  one from a small pool. A connection is only ever used by one request at a time.
* Per-request settings arrive as URL parameters. DDL cannot take a ``SETTINGS`` clause
  and the clause would change meaning for ``CREATE TABLE``, so settings are applied with
  ``SET`` on the borrowed connection, diffed against what that connection already has
  (clickhouse-connect repeats the same settings on every call, so usually nothing runs).
  A URL setting that stops being sent is reset to DEFAULT, so in a session that also ran
  its own ``SET`` of that same setting, the session's value is not restored.
* ``INSERT ... FORMAT X`` bodies are streamed into chdb's streaming inserter chunk by
  chunk, decompressing on the fly, so inserts of millions of rows never sit in memory
  whole. Query results are materialised (like ``wait_end_of_query=1``) and written from
  chdb's buffer without a copy.
* ``ENGINE = Kafka`` is refused before it reaches chdb: creating one leaves chdb's data
  directory unopenable.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO, NoReturn
from urllib.parse import parse_qsl, urlsplit

import chdb
import lz4.frame

from engagement_platform import settings as ep_settings

try:  # zstd is optional: clickhouse-connect only uses it when asked for explicitly
    from backports import zstd as _zstd  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    _zstd = None

LOG = logging.getLogger("engagement_platform.clickhouse_server")

LISTEN_HOST = "127.0.0.1"
DEFAULT_SESSION_TIMEOUT_S = 60.0
MAX_SESSION_TIMEOUT_S = 3600.0
MAX_SESSIONS = 1000
IDLE_POOL_SIZE = 16
KEEP_ALIVE_TIMEOUT_S = 30
# chdb's inserter is several times faster with ~1 MiB appends than with 64 KiB ones.
INSERT_APPEND_BYTES = 1 << 20
BODY_READ_BYTES = 1 << 20
SINGLE_WRITE_LIMIT = 64 * 1024
# Compressing a tiny response costs more on loopback than it saves; clients read an
# uncompressed body fine when no Content-Encoding is set.
MIN_COMPRESS_BYTES = 1024

# URL parameters that belong to the HTTP transport, not to the engine. Everything else
# that is not ``param_*`` is treated as a ClickHouse setting and validated by chdb.
CONSUMED_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "session_id",
        "session_timeout",
        "session_check",
        "query_id",
        "readonly",
        "compress",
        "decompress",
        "enable_http_compression",
        "http_zlib_compression_level",
    }
)
# Accepted and deliberately ignored: they steer the HTTP exchange of a real server
# (progress headers, buffering, cancellation on disconnect, the Native block-info
# revision) and either have no meaning here or describe what this server always does.
IGNORED_PARAMS = frozenset(
    {
        "wait_end_of_query",
        "http_wait_end_of_query",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "client_protocol_version",
        "buffer_size",
        "http_response_buffer_size",
        "add_http_cors_header",
        "http_native_compression_disable_checksumming_on_decompress",
        "role",
        "stacktrace",
    }
)

# ClickHouse error codes used by this module.
UNKNOWN_EXCEPTION = 1002
SYNTAX_ERROR = 62
NOT_IMPLEMENTED = 48
BAD_ARGUMENTS = 36
UNKNOWN_SETTING = 115
UNKNOWN_DATABASE = 81
READONLY = 164
CANNOT_DECOMPRESS = 271
SUPPORT_IS_DISABLED = 344
SESSION_NOT_FOUND = 372
SESSION_IS_LOCKED = 373
INVALID_SESSION_TIMEOUT = 374
AUTHENTICATION_FAILED = 516

_ERROR_NAMES = {
    SYNTAX_ERROR: "SYNTAX_ERROR",
    NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    BAD_ARGUMENTS: "BAD_ARGUMENTS",
    UNKNOWN_SETTING: "UNKNOWN_SETTING",
    READONLY: "READONLY",
    CANNOT_DECOMPRESS: "CANNOT_DECOMPRESS",
    SUPPORT_IS_DISABLED: "SUPPORT_IS_DISABLED",
    SESSION_NOT_FOUND: "SESSION_NOT_FOUND",
    SESSION_IS_LOCKED: "SESSION_IS_LOCKED",
    INVALID_SESSION_TIMEOUT: "INVALID_SESSION_TIMEOUT",
    AUTHENTICATION_FAILED: "AUTHENTICATION_FAILED",
    UNKNOWN_EXCEPTION: "UNKNOWN_EXCEPTION",
}

# ClickHouse's exceptionCodeToHTTPStatus, for the codes a client can plausibly cause.
# 503 is deliberately never used: clickhouse-connect retries it.
_HTTP_400 = frozenset({6, 8, 15, 25, 26, 27, 36, 38, 41, 44, 53, 62, 72, 117, 167, 168, 223, 321, 376, 441})
_HTTP_404 = frozenset({46, 47, 50, 56, 60, 63, 73, 81, 115, 336, 372})
_HTTP_403 = frozenset({164, 497, 516})
_HTTP_501 = frozenset({48})

_CODE_RE = re.compile(r"Code: (\d+)\.")
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")
_SETTING_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KAFKA_ENGINE_RE = re.compile(r"\bENGINE\s*=\s*Kafka\b", re.IGNORECASE)
_TRAILING_FORMAT_RE = re.compile(
    r"\bFORMAT\s+([A-Za-z_][A-Za-z0-9_]*)(?:\s+SETTINGS\b[^;]*)?\s*;?\s*$", re.IGNORECASE
)
_SQL_WS = frozenset(b" \t\n\r\f\v")
_IDENT_START = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_CHARS = _IDENT_START | frozenset(b"0123456789$")


# --------------------------------------------------------------------------- errors


class ClickHouseError(Exception):
    """An error to report the way ClickHouse does: code, text, HTTP status."""

    def __init__(self, code: int, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else http_status_for(code)

    @classmethod
    def make(cls, code: int, text: str, status: int | None = None) -> ClickHouseError:
        """Build the ``Code: N. DB::Exception: text (NAME)`` body ClickHouse sends."""
        name = _ERROR_NAMES.get(code, "UNKNOWN_EXCEPTION")
        return cls(code, f"Code: {code}. DB::Exception: {text}. ({name})", status)

    def body(self, version: str) -> bytes:
        """The response body; carries the version trailer clients know to scrub."""
        text = self.message.rstrip()
        if "(version " not in text:
            text = f"{text} (version {version})"
        return (text + "\n").encode("utf-8", errors="replace")


def http_status_for(code: int) -> int:
    """Map an exception code to ClickHouse's HTTP status, so clients branch the same."""
    if code in _HTTP_400:
        return 400
    if code in _HTTP_404:
        return 404
    if code in _HTTP_403:
        return 403
    if code in _HTTP_501:
        return 501
    return 500


def error_from_engine(exc: BaseException) -> ClickHouseError:
    """Turn a chdb exception (its text already is ClickHouse's) into a ClickHouseError.

    chdb's streaming inserter prefixes its messages ("Streaming insert finish failed: "),
    so the text is cut back to where ClickHouse's own message starts.
    """
    text = str(exc)
    start = text.find("Code: ")
    if start > 0:
        text = text[start:]
    match = _CODE_RE.match(text)
    if match is None:
        return ClickHouseError.make(UNKNOWN_EXCEPTION, text or type(exc).__name__)
    return ClickHouseError(int(match.group(1)), text.strip())


# --------------------------------------------------------------------------- SQL scanning


class _NeedMore(Exception):
    """The scanner reached the end of a buffer that more body bytes may extend."""


@dataclass(frozen=True)
class InsertSplit:
    """Where an ``INSERT ... FORMAT name`` statement ends and its inline data begins."""

    statement: bytes  # the INSERT without its FORMAT clause, as chdb's inserter wants
    format_name: str
    data_offset: int


NOT_A_DATA_INSERT = "not-a-data-insert"


def _skip_space(data: bytes, i: int, final: bool) -> int:
    """Skip whitespace and comments; an unterminated comment needs more input."""
    n = len(data)
    while i < n:
        c = data[i]
        if c in _SQL_WS:
            i += 1
        elif data.startswith(b"--", i):
            j = data.find(b"\n", i)
            if j < 0:
                if final:
                    return n
                raise _NeedMore
            i = j + 1
        elif data.startswith(b"/*", i):
            j = data.find(b"*/", i + 2)
            if j < 0:
                if final:
                    return n
                raise _NeedMore
            i = j + 2
        else:
            break
    return i


def _quoted_end(data: bytes, i: int, final: bool) -> int:
    """End (exclusive) of the quoted literal/identifier starting at ``i``."""
    quote = data[i]
    n = len(data)
    j = i + 1
    while j < n:
        c = data[j]
        if c == 0x5C:  # backslash escapes the next byte
            j += 2
            continue
        if c == quote:
            if j + 1 < n and data[j + 1] == quote:  # doubled quote
                j += 2
                continue
            if j + 1 == n and not final:
                raise _NeedMore  # might be the first half of a doubled quote
            return j + 1
        j += 1
    if final:
        return n
    raise _NeedMore


def _word_end(data: bytes, i: int, final: bool) -> int:
    """End of the bare identifier starting at ``i``; a word cut by the buffer needs more."""
    n = len(data)
    j = i
    while j < n and data[j] in _IDENT_CHARS:
        j += 1
    if j == n and not final:
        raise _NeedMore
    return j


def _next_token(data: bytes, i: int, final: bool) -> tuple[str, int, int]:
    """Return (kind, start, end) of the token at or after ``i``; kind is '' at the end."""
    i = _skip_space(data, i, final)
    if i >= len(data):
        if final:
            return "", i, i
        raise _NeedMore
    c = data[i]
    if c in _IDENT_START:
        return "word", i, _word_end(data, i, final)
    if c in (0x27, 0x22, 0x60):  # ' " `
        return "quoted", i, _quoted_end(data, i, final)
    return "punct", i, i + 1


def _scan_table_name(data: bytes, i: int, final: bool, is_function: bool) -> int:
    """Skip the target after INSERT INTO [TABLE|FUNCTION]; it may be named 'format'."""
    kind, start, end = _next_token(data, i, final)
    if kind not in ("word", "quoted"):
        return start
    i = end
    if is_function:
        return i
    kind, start, end = _next_token(data, i, final)
    if kind == "punct" and data[start] == 0x2E:  # db.table
        kind, start, end = _next_token(data, end, final)
        return end if kind in ("word", "quoted") else start
    return i


def _data_start(data: bytes, i: int, final: bool) -> int:
    """Where inline data starts after the format name, per ClickHouse's insert parser:
    spaces and tabs are skipped, then at most one line break."""
    n = len(data)
    while i < n and data[i] in b" \t\f":
        i += 1
    if i < n and data[i] == 0x0D:
        i += 1
    if i < n and data[i] == 0x0A:
        i += 1
    if i == n and not final:
        raise _NeedMore  # the line break may still be on its way
    return i


def _split_insert(data: bytes, final: bool) -> InsertSplit | str:
    kind, start, end = _next_token(data, 0, final)
    if kind != "word" or data[start:end].upper() != b"INSERT":
        return NOT_A_DATA_INSERT
    kind, start, end = _next_token(data, end, final)
    if kind != "word" or data[start:end].upper() != b"INTO":
        return NOT_A_DATA_INSERT
    i = end
    kind, start, end = _next_token(data, i, final)
    is_function = False
    if kind == "word" and data[start:end].upper() in (b"TABLE", b"FUNCTION"):
        is_function = data[start:end].upper() == b"FUNCTION"
        i = end
    i = _scan_table_name(data, i, final, is_function)
    depth = 0
    while True:
        kind, start, end = _next_token(data, i, final)
        if not kind:
            return NOT_A_DATA_INSERT
        i = end
        if kind == "punct":
            depth += {0x28: 1, 0x29: -1}.get(data[start], 0)
            continue
        if kind != "word" or depth:
            continue
        word = data[start:end].upper()
        if word in (b"SELECT", b"WITH", b"VALUES", b"INFILE"):
            return NOT_A_DATA_INSERT
        if word == b"FORMAT":
            kind, name_start, name_end = _next_token(data, end, final)
            if kind != "word":
                return NOT_A_DATA_INSERT
            return InsertSplit(
                statement=data[:start].rstrip(),
                format_name=data[name_start:name_end].decode("ascii"),
                data_offset=_data_start(data, name_end, final),
            )


def split_insert(data: bytes, final: bool) -> InsertSplit | str | None:
    """Find the inline data of ``INSERT ... FORMAT name``.

    Returns an InsertSplit, NOT_A_DATA_INSERT for anything that must run as a whole
    query (SELECT, INSERT ... VALUES/SELECT/FROM INFILE, DDL, ...), or None when
    ``data`` is a prefix that more bytes could still change the answer for.
    """
    try:
        return _split_insert(data, final)
    except _NeedMore:
        return None


def normalize_sql(sql: bytes) -> str:
    """SQL with comments removed, string literals emptied and identifiers unquoted.

    What is left is what the parser acts on, so checks such as "creates a Kafka table"
    can't be fooled by a comment or tripped by a string that merely mentions it.
    """
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        j = _skip_space(sql, i, final=True)
        if j > i:
            out.append(" ")
            i = j
            continue
        c = sql[i]
        if c in (0x27, 0x22, 0x60):
            end = _quoted_end(sql, i, final=True)
            if c == 0x27:
                out.append("''")
            else:
                out.append(sql[i + 1 : end - 1].decode("utf-8", errors="replace"))
            i = end
        else:
            j = i + 1
            while j < n and sql[j] not in _SQL_WS and sql[j] not in b"'\"`-/":
                j += 1
            out.append(sql[i:j].decode("utf-8", errors="replace"))
            i = j
    return "".join(out)


def creates_kafka_table(normalized_sql: str) -> bool:
    """Whether the statement would create/attach a Kafka-engine table."""
    return _KAFKA_ENGINE_RE.search(normalized_sql) is not None


def trailing_format(normalized_sql: str) -> str | None:
    """The FORMAT clause that ends a query, which overrides default_format."""
    match = _TRAILING_FORMAT_RE.search(normalized_sql)
    return match.group(1) if match else None


def first_keyword(normalized_sql: str) -> str:
    """The statement's leading keyword, upper-cased ('' for an empty statement)."""
    match = re.match(r"[\s(]*([A-Za-z_]+)", normalized_sql)
    return match.group(1).upper() if match else ""


# --------------------------------------------------------------------------- HTTP helpers


@dataclass
class RequestOptions:
    """A request's URL parameters sorted into what the server does with them."""

    query: str = ""
    database: str | None = None
    default_format: str | None = None
    session_id: str | None = None
    session_timeout: float = DEFAULT_SESSION_TIMEOUT_S
    session_check: bool = False
    query_id: str = ""
    readonly: int = 0
    enable_http_compression: bool = True
    zlib_level: int = 3
    engine_settings: dict[str, str] = field(default_factory=dict)
    query_params: dict[str, str] = field(default_factory=dict)


def _flag(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false")


def parse_options(params: Iterable[tuple[str, str]]) -> RequestOptions:
    """Sort URL parameters into transport options, query parameters and settings."""
    opts = RequestOptions()
    for key, value in params:
        if key.startswith("param_"):
            opts.query_params[key[len("param_") :]] = value
        elif key in IGNORED_PARAMS or key in ("user", "password", "quota_key"):
            continue
        elif key in CONSUMED_PARAMS:
            _apply_consumed(opts, key, value)
        elif not _SETTING_NAME_RE.match(key):
            raise ClickHouseError.make(UNKNOWN_SETTING, f"Unknown setting '{key}'")
        else:
            opts.engine_settings[key] = value
    return opts


def _apply_consumed(opts: RequestOptions, key: str, value: str) -> None:
    if key == "query":
        opts.query = value
    elif key == "database":
        opts.database = value or None
    elif key == "default_format":
        opts.default_format = value or None
    elif key == "session_id":
        opts.session_id = value or None
    elif key == "session_timeout":
        opts.session_timeout = _session_timeout(value)
    elif key == "session_check":
        opts.session_check = _flag(value)
    elif key == "query_id":
        opts.query_id = value
    elif key == "readonly":
        opts.readonly = int(value) if value.isdigit() else int(_flag(value))
    elif key == "enable_http_compression":
        opts.enable_http_compression = _flag(value)
    elif key == "http_zlib_compression_level":
        opts.zlib_level = int(value) if value.isdigit() else 3
    elif key in ("compress", "decompress") and _flag(value):
        raise ClickHouseError.make(
            NOT_IMPLEMENTED,
            f"'{key}=1' (ClickHouse-native block compression) is not supported by this "
            "server; use HTTP compression (Content-Encoding / Accept-Encoding) instead",
        )


def _session_timeout(value: str) -> float:
    try:
        timeout = float(value)
    except ValueError:
        raise ClickHouseError.make(INVALID_SESSION_TIMEOUT, f"Invalid session timeout: '{value}'") from None
    if timeout <= 0 or timeout > MAX_SESSION_TIMEOUT_S:
        raise ClickHouseError.make(
            INVALID_SESSION_TIMEOUT,
            f"Session timeout '{value}' is out of range (0, {MAX_SESSION_TIMEOUT_S:g}]",
        )
    return timeout


def request_credentials(headers: Mapping[str, str], params: Mapping[str, str]) -> tuple[str, str] | None:
    """The (user, password) a request presents, in ClickHouse's order of precedence."""
    if "X-ClickHouse-User" in headers or "X-ClickHouse-Key" in headers:
        return headers.get("X-ClickHouse-User", "default"), headers.get("X-ClickHouse-Key", "")
    auth = headers.get("Authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return ("", "")
        user, _, password = decoded.partition(":")
        return user, password
    if "user" in params or "password" in params:
        return params.get("user", "default"), params.get("password", "")
    return None


def check_credentials(presented: tuple[str, str] | None, user: str, password: str) -> None:
    """Reject what real ClickHouse would: 401 with nothing presented, 403 if wrong."""
    given_user, given_password = presented if presented is not None else ("default", "")
    ok_user = hmac.compare_digest(given_user.encode(), user.encode())
    ok_password = hmac.compare_digest(given_password.encode(), password.encode())
    if ok_user and ok_password:
        return
    raise ClickHouseError.make(
        AUTHENTICATION_FAILED,
        f"{given_user or 'default'}: Authentication failed: password is incorrect, "
        "or there is no user with such name",
        status=401 if presented is None else 403,
    )


def format_content_type(fmt: str) -> str:
    """Content-Type for an output format, as ClickHouse labels it."""
    lowered = fmt.lower()
    if lowered.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if lowered.startswith("csv"):
        return "text/csv; charset=UTF-8; header=" + ("present" if "names" in lowered else "absent")
    if lowered.startswith("json"):
        return "application/json; charset=UTF-8"
    if lowered.startswith(("pretty", "vertical", "markdown", "values", "xml")):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


# --------------------------------------------------------------------------- bodies


class BadRequest(Exception):
    """The HTTP framing itself is broken; the connection can't be trusted further."""


class RequestBody:
    """The raw body of one request, read incrementally (Content-Length or chunked).

    One generator is kept so an error path can drain whatever the handler didn't read,
    which keeps a keep-alive connection aligned with the next request.
    """

    def __init__(self, rfile: BinaryIO, headers: Mapping[str, str]) -> None:
        self._rfile = rfile
        chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        length = headers.get("Content-Length")
        try:
            self._remaining = int(length) if length and not chunked else 0
        except ValueError:
            raise BadRequest(f"bad Content-Length {length!r}") from None
        self.maybe_empty = not chunked and self._remaining == 0
        self.chunks: Iterator[bytes] = self._read_chunked() if chunked else self._read_sized()

    def _read_sized(self) -> Iterator[bytes]:
        while self._remaining > 0:
            piece = self._rfile.read(min(self._remaining, BODY_READ_BYTES))
            if not piece:
                raise BadRequest("connection closed inside the request body")
            self._remaining -= len(piece)
            yield piece

    def _read_chunked(self) -> Iterator[bytes]:
        while True:
            line = self._rfile.readline(1024)
            if not line.endswith(b"\n"):
                raise BadRequest("truncated chunk header")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadRequest(f"bad chunk size {line[:40]!r}") from None
            if size == 0:
                self._skip_trailers()
                return
            while size > 0:
                piece = self._rfile.read(min(size, BODY_READ_BYTES))
                if not piece:
                    raise BadRequest("connection closed inside a chunk")
                size -= len(piece)
                yield piece
            if self._rfile.readline(8) not in (b"\r\n", b"\n"):
                raise BadRequest("chunk not followed by CRLF")

    def _skip_trailers(self) -> None:
        while True:
            line = self._rfile.readline(8192)
            if line in (b"\r\n", b"\n", b""):
                return

    def drain(self) -> None:
        """Read and discard the rest of the body."""
        for _ in self.chunks:
            pass


def _decompressor_factory(encoding: str) -> Callable[[], Any] | None:
    if encoding == "lz4":
        return lz4.frame.LZ4FrameDecompressor
    if encoding in ("gzip", "x-gzip", "deflate"):
        return lambda: zlib.decompressobj(wbits=47)  # zlib or gzip header, auto-detected
    if encoding == "zstd" and _zstd is not None:
        return _zstd.ZstdDecompressor
    return None


def decode_body(chunks: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """Undo Content-Encoding incrementally.

    clickhouse-connect compresses every insert block as its own lz4 frame, so the body
    is a concatenation of frames and a new decompressor starts after each one ends.
    """
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        yield from chunks
        return
    factory = _decompressor_factory(encoding)
    if factory is None:
        raise ClickHouseError.make(BAD_ARGUMENTS, f"Unknown Content-Encoding '{encoding}'")
    decoder = factory()
    mid_frame = False
    try:
        for chunk in chunks:
            data = chunk
            while data:
                out = decoder.decompress(data)
                mid_frame = True
                if out:
                    yield out
                if not decoder.eof:
                    break
                data, decoder, mid_frame = decoder.unused_data, factory(), False
    except ClickHouseError:
        raise
    except Exception as exc:  # every codec has its own error type
        raise ClickHouseError.make(CANNOT_DECOMPRESS, f"Cannot decompress {encoding} body: {exc}") from exc
    if mid_frame:
        raise ClickHouseError.make(CANNOT_DECOMPRESS, f"Truncated {encoding} body")


def choose_response_encoding(accept_encoding: str) -> str | None:
    """Pick the cheapest encoding the client accepts; on loopback CPU is the cost."""
    offered = {part.split(";")[0].strip().lower() for part in accept_encoding.split(",")}
    for encoding in ("lz4", "zstd", "gzip", "deflate"):
        if encoding in offered and (encoding != "zstd" or _zstd is not None):
            return encoding
    return None


def compress_body(data: bytes | memoryview, encoding: str, zlib_level: int) -> bytes:
    """Compress a whole response body (one frame, so streaming decoders are happy)."""
    if encoding == "lz4":
        return lz4.frame.compress(data)
    if encoding == "zstd":
        return _zstd.compress(bytes(data))
    wbits = 31 if encoding == "gzip" else 15
    compressor = zlib.compressobj(level=max(1, min(zlib_level, 9)), wbits=wbits)
    return compressor.compress(data) + compressor.flush()


# --------------------------------------------------------------------------- engine


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_value(value: str) -> str:
    """Settings are sent quoted: ClickHouse converts the string to the setting's type."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Handle:
    """One chdb connection and the session state this server knows it carries."""

    def __init__(self, conn: Any, session_id: str | None = None) -> None:
        self.conn = conn
        self.session_id = session_id
        self.lock = threading.Lock()
        self.database: str | None = None  # what USE last set on this connection
        self.session_database: str | None = None  # a session's own USE, if it issued one
        # URL settings SET on the connection; None marks one whose value is unknown
        self.applied: dict[str, str | None] = {}
        self.timeout = DEFAULT_SESSION_TIMEOUT_S
        self.last_used = time.monotonic()
        self.discard = False  # state no longer known: close instead of reusing

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # closing is best effort; the engine outlives handles
            LOG.debug("error closing a chdb connection", exc_info=True)

    def classify(self, sql: str) -> dict[str, Any] | None:
        """chdb's own parser verdict on a statement (class, count), when available."""
        raw = getattr(self.conn, "_conn", None)
        if raw is None or not hasattr(raw, "classify_query"):
            return None
        try:
            return raw.classify_query(sql)
        except Exception:
            return None


class Engine:
    """The process's single chdb engine, its connection pool and its HTTP sessions."""

    def __init__(self, data_dir: Path, default_database: str) -> None:
        self.data_dir = data_dir
        self.default_database = default_database
        # The primary connection keeps the engine up: chdb shuts it down when the last
        # connection closes, and reopening costs ~0.3 s.
        self._primary = chdb.connect(str(data_dir))
        self._connect_lock = threading.Lock()
        self._pool: list[Handle] = []
        self._pool_lock = threading.Lock()
        self._sessions: dict[str, Handle] = {}
        self._sessions_lock = threading.Lock()
        version, timezone = self._scalar_row("SELECT version(), timezone()")
        self.version = version
        self.timezone = timezone
        self._primary.query(
            f"CREATE DATABASE IF NOT EXISTS {quote_identifier(default_database)}", "TabSeparated"
        )

    def _scalar_row(self, sql: str) -> list[str]:
        return self._primary.query(sql, "TabSeparated").bytes().decode().rstrip("\n").split("\t")

    def _new_handle(self, session_id: str | None = None) -> Handle:
        with self._connect_lock:
            return Handle(chdb.connect(str(self.data_dir)), session_id)

    @contextmanager
    def borrow(self, opts: RequestOptions) -> Iterator[Handle]:
        """Lend a connection for one request: the session's own, or a pooled one."""
        handle = self._session_handle(opts) if opts.session_id else self._pooled_handle()
        try:
            yield handle
        finally:
            handle.last_used = time.monotonic()
            if opts.session_id:
                self._return_session(handle)
            else:
                self._return_pooled(handle)

    def _pooled_handle(self) -> Handle:
        with self._pool_lock:
            if self._pool:
                return self._pool.pop()
        return self._new_handle()

    def _return_pooled(self, handle: Handle) -> None:
        if not handle.discard:
            with self._pool_lock:
                if len(self._pool) < IDLE_POOL_SIZE:
                    self._pool.append(handle)
                    return
        handle.close()

    def _session_handle(self, opts: RequestOptions) -> Handle:
        session_id = opts.session_id or ""
        with self._sessions_lock:
            handle = self._sessions.get(session_id)
            if handle is None:
                if opts.session_check:
                    raise ClickHouseError.make(SESSION_NOT_FOUND, f"Session {session_id} not found")
                self._evict_sessions_locked()
                handle = self._new_handle(session_id)
                self._sessions[session_id] = handle
            if not handle.lock.acquire(blocking=False):
                raise ClickHouseError.make(
                    SESSION_IS_LOCKED, f"Session {session_id} is locked by a concurrent client"
                )
        handle.timeout = opts.session_timeout
        return handle

    def _return_session(self, handle: Handle) -> None:
        if handle.discard:
            with self._sessions_lock:
                if self._sessions.get(handle.session_id or "") is handle:
                    del self._sessions[handle.session_id or ""]
            handle.close()
        handle.lock.release()

    def _evict_sessions_locked(self) -> None:
        """Drop expired sessions (and the oldest idle ones beyond MAX_SESSIONS)."""
        now = time.monotonic()
        expired = [h for h in self._sessions.values() if now - h.last_used > h.timeout]
        if len(self._sessions) - len(expired) >= MAX_SESSIONS:
            idle = sorted(self._sessions.values(), key=lambda h: h.last_used)
            expired.extend(idle[: len(self._sessions) - MAX_SESSIONS + 1])
        for handle in expired:
            if handle.lock.acquire(blocking=False):
                self._sessions.pop(handle.session_id or "", None)
                handle.close()
                handle.lock.release()

    def expire_sessions(self) -> None:
        with self._sessions_lock:
            self._evict_sessions_locked()

    def prepare(self, handle: Handle, opts: RequestOptions) -> None:
        """Point the connection at the request's database and settings."""
        try:
            self._use_database(handle, opts.database)
            self._apply_settings(handle, opts.engine_settings)
        except ClickHouseError:
            raise
        except Exception as exc:
            handle.discard = True  # a half-applied SET leaves the state unknown
            raise error_from_engine(exc) from exc

    def _use_database(self, handle: Handle, requested: str | None) -> None:
        target = requested or handle.session_database or self.default_database
        if handle.database == target:
            return
        try:
            handle.conn.query(f"USE {quote_identifier(target)}", "TabSeparated")
        except Exception as exc:
            error = error_from_engine(exc)
            # The configured database may have been dropped; ClickHouse's 'default' is
            # always there, and an implicit database should not fail every request.
            if requested or error.code != UNKNOWN_DATABASE or target == "default":
                raise error from exc
            target = "default"
            handle.conn.query("USE default", "TabSeparated")
        handle.database = target

    @staticmethod
    def _apply_settings(handle: Handle, wanted: Mapping[str, str]) -> None:
        if wanted == handle.applied:
            return
        assignments = [f"{k} = {quote_value(v)}" for k, v in wanted.items() if handle.applied.get(k) != v]
        assignments += [f"{k} = DEFAULT" for k in handle.applied if k not in wanted]
        if assignments:
            handle.conn.query("SET " + ", ".join(assignments), "TabSeparated")
        handle.applied = dict(wanted)

    def after_control_statement(self, handle: Handle, keyword: str) -> None:
        """Keep track of USE/SET/temporary tables: sessions keep them, the pool may not."""
        if handle.session_id is None:
            handle.discard = True  # a pooled connection must not leak state to others
            return
        if keyword == "USE":
            current = handle.conn.query("SELECT currentDatabase()", "TabSeparated").bytes()
            handle.database = handle.session_database = current.decode().strip()
        elif keyword == "SET":
            # The session's own SET may have overwritten URL-applied values: re-apply
            # them before the next query, as URL settings win for the query they ride on.
            handle.applied = dict.fromkeys(handle.applied)

    def close(self) -> None:
        """Close every idle connection, then the engine."""
        with self._pool_lock:
            pooled, self._pool = self._pool, []
        with self._sessions_lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for handle in pooled + sessions:
            if handle.lock.acquire(timeout=1.0):
                handle.close()
        self._primary.close()


# --------------------------------------------------------------------------- execution


@dataclass
class Response:
    status: int = 200
    body: bytes | memoryview = b""
    headers: dict[str, str] = field(default_factory=dict)
    keepalive: Any = None  # holds the chdb result whose buffer ``body`` views


def _summary(**values: int | float) -> str:
    """X-ClickHouse-Summary: ClickHouse sends every number as a string."""
    keys = (
        "read_rows",
        "read_bytes",
        "written_rows",
        "written_bytes",
        "total_rows_to_read",
        "result_rows",
        "result_bytes",
        "elapsed_ns",
    )
    return json.dumps({k: str(int(values.get(k, 0))) for k in keys}, separators=(",", ":"))


def _result_summary(result: Any) -> str:
    return _summary(
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


def run_query(engine: Engine, handle: Handle, sql: bytes, opts: RequestOptions, method: str) -> Response:
    """Execute a complete statement and return its materialised result."""
    text = _statement_text(sql)
    normalized = normalize_sql(sql)
    if not normalized.strip(" ;"):
        raise ClickHouseError.make(SYNTAX_ERROR, "Empty query")
    verdict = handle.classify(text)
    _check_allowed(normalized, verdict, opts.readonly, method)
    engine.prepare(handle, opts)
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
    response = Response(body=body, keepalive=(result, wrapper))
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
) -> Response:
    """Stream an ``INSERT ... FORMAT`` body into chdb without holding it in memory."""
    statement = _statement_text(split.statement)
    normalized = normalize_sql(split.statement)
    _check_allowed(normalized, handle.classify(statement), opts.readonly, method)
    if method == "GET":
        raise ClickHouseError.make(READONLY, "Cannot execute INSERT over HTTP GET")
    engine.prepare(handle, opts)
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
    response = Response()
    response.headers["X-ClickHouse-Summary"] = _summary(
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


# --------------------------------------------------------------------------- HTTP server


class ClickHouseHTTPServer(ThreadingHTTPServer):
    """Threaded HTTP server that knows which connections are mid-request, so a
    shutdown can let those finish while closing the idle keep-alive ones."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], engine: Engine, user: str, password: str) -> None:
        self.engine = engine
        self.user = user
        self.password = password
        self.display_name = socket.gethostname()
        self.stopping = False
        self._state = threading.Condition()
        self._connections: dict[socket.socket, bool] = {}  # socket -> busy
        super().__init__(address, ClickHouseRequestHandler)

    def track(self, sock: socket.socket, busy: bool) -> bool:
        """Record a connection's state; False means the server is stopping."""
        with self._state:
            self._connections[sock] = busy
            self._state.notify_all()
            return not self.stopping

    def forget(self, sock: socket.socket) -> None:
        with self._state:
            self._connections.pop(sock, None)
            self._state.notify_all()

    def drain(self, timeout: float) -> int:
        """Stop keep-alive connections and wait for in-flight requests; returns how
        many were still running when the timeout hit."""
        with self._state:
            self.stopping = True
            for sock, busy in self._connections.items():
                if not busy:
                    _shutdown_socket(sock)
            deadline = time.monotonic() + timeout
            while any(self._connections.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._state.wait(remaining)
            return sum(self._connections.values())


def _shutdown_socket(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class ClickHouseRequestHandler(BaseHTTPRequestHandler):
    """One HTTP/1.1 keep-alive connection."""

    protocol_version = "HTTP/1.1"
    server_version = "chdb-http"
    timeout = KEEP_ALIVE_TIMEOUT_S
    server: ClickHouseHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, busy=False)

    def finish(self) -> None:
        self.server.forget(self.connection)
        with suppress(OSError):
            super().finish()

    def handle_one_request(self) -> None:
        # Busy from the first byte of a request, so shutdown never cuts one in half.
        try:
            self.rfile.peek(1)
        except (OSError, ValueError):
            self.close_connection = True
            return
        if not self.server.track(self.connection, busy=True):
            self.close_connection = True
        try:
            super().handle_one_request()
        finally:
            if not self.server.track(self.connection, busy=False):
                self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Per-request access logging is deliberately off."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def _serve(self, method: str) -> None:
        query_id = ""
        body: RequestBody | None = None
        try:
            url = urlsplit(self.path)
            params = parse_qsl(url.query, keep_blank_values=True)
            query_id = dict(params).get("query_id") or str(uuid.uuid4())
            if url.path in ("/ping", "/replicas_status"):
                response = Response(body=b"Ok.\n", headers={"Content-Type": "text/html; charset=UTF-8"})
            elif url.path not in ("", "/"):
                response = Response(404, f"There is no handle {url.path}\n".encode())
            else:
                body = RequestBody(self.rfile, self.headers)
                response = self._query(method, params, body)
        except BadRequest as exc:
            LOG.warning("malformed HTTP request from %s: %s", self.client_address[0], exc)
            self.close_connection = True
            response = Response(400, f"Bad request: {exc}\n".encode())
        except ClickHouseError as exc:
            response = self._error_response(exc, body)
        except Exception as exc:  # a bug here must not kill the connection thread silently
            LOG.exception("internal error while serving a request")
            error = ClickHouseError.make(UNKNOWN_EXCEPTION, f"Internal server error: {exc!r}")
            response = self._error_response(error, body)
        self._send(response, query_id, method)

    def _error_response(self, exc: ClickHouseError, body: RequestBody | None) -> Response:
        if exc.code != AUTHENTICATION_FAILED:
            LOG.info("query failed: %s", exc.message.splitlines()[0][:300])
        else:
            LOG.warning("authentication failed from %s", self.client_address[0])
        if body is not None:
            try:
                body.drain()
            except (BadRequest, OSError):
                self.close_connection = True
        return Response(
            exc.status,
            exc.body(self.server.engine.version),
            {"X-ClickHouse-Exception-Code": str(exc.code), "Content-Type": "text/plain; charset=UTF-8"},
        )

    def _query(self, method: str, params: list[tuple[str, str]], body: RequestBody) -> Response:
        server = self.server
        if body.maybe_empty and not any(key == "query" for key, _ in params):
            return Response(body=b"Ok.\n", headers={"Content-Type": "text/html; charset=UTF-8"})
        check_credentials(request_credentials(self.headers, dict(params)), server.user, server.password)
        if "multipart/form-data" in self.headers.get("Content-Type", ""):
            raise ClickHouseError.make(
                NOT_IMPLEMENTED, "multipart/form-data requests (external data) are not supported"
            )
        opts = parse_options(params)
        opts.database = opts.database or self.headers.get("X-ClickHouse-Database") or None
        opts.default_format = opts.default_format or self.headers.get("X-ClickHouse-Format") or None
        chunks = decode_body(body.chunks, self.headers.get("Content-Encoding", ""))
        prefix = (opts.query + "\n").encode() if opts.query else b""
        head, split = read_statement(prefix, chunks)
        with server.engine.borrow(opts) as handle:
            if split is not None:
                response = run_insert(server.engine, handle, head, split, chunks, opts, method)
            else:
                response = run_query(server.engine, handle, head, opts, method)
        self._maybe_compress(response, opts)
        return response

    def _maybe_compress(self, response: Response, opts: RequestOptions) -> None:
        accept = self.headers.get("Accept-Encoding", "")
        if not accept or not opts.enable_http_compression or len(response.body) < MIN_COMPRESS_BYTES:
            return
        encoding = choose_response_encoding(accept)
        if encoding is None:
            return
        response.body = compress_body(response.body, encoding, opts.zlib_level)
        response.keepalive = None
        response.headers["Content-Encoding"] = encoding

    def _send(self, response: Response, query_id: str, method: str) -> None:
        server = self.server
        self.send_response(response.status)
        headers = {
            "X-ClickHouse-Server-Display-Name": server.display_name,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": server.engine.timezone,
            "Content-Type": "text/plain; charset=UTF-8",
            **response.headers,
            "Content-Length": str(len(response.body)),
        }
        if response.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="ClickHouse server HTTP API"'
        if self.close_connection or server.stopping:
            headers["Connection"] = "close"
            self.close_connection = True
        else:
            headers["Keep-Alive"] = f"timeout={KEEP_ALIVE_TIMEOUT_S}"
        for name, value in headers.items():
            self.send_header(name, value)
        body = response.body if method != "HEAD" else b""
        if len(body) <= SINGLE_WRITE_LIMIT:
            # one write for small responses: headers and body in the same segment
            self._headers_buffer.append(b"\r\n")
            self._headers_buffer.append(bytes(body))
            self.flush_headers()
        else:
            self.end_headers()
            self.wfile.write(body)


# --------------------------------------------------------------------------- process


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m engagement_platform.local_stack.clickhouse_server",
        description="Serve the ClickHouse HTTP interface from an embedded chdb engine.",
    )
    parser.add_argument("--data-dir", required=True, type=Path, help="chdb data directory")
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        help="seconds to let in-flight requests finish on SIGTERM/SIGINT (default 30)",
    )
    args = parser.parse_args(argv)
    if "?" in str(args.data_dir):
        parser.error("--data-dir must not contain '?' (chdb reads it as connection options)")
    return args


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s clickhouse-server %(levelname)s %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False


def _fail(message: str, code: int = 1) -> NoReturn:
    LOG.error(message)
    sys.exit(code)


def _session_reaper(engine: Engine, stop: threading.Event) -> None:
    while not stop.wait(5.0):
        try:
            engine.expire_sessions()
        except Exception:
            LOG.exception("session cleanup failed")


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    _configure_logging()
    try:
        cfg = ep_settings.load()
    except ep_settings.SettingsError as exc:
        _fail(f"bad configuration: {exc}", 2)
    data_dir = args.data_dir.expanduser().resolve()
    LOG.info("starting: chdb %s, data dir %s", chdb.__version__, data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        engine = Engine(data_dir, cfg.clickhouse_database)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else repr(exc)
        _fail(f"cannot open chdb at {data_dir} (is another process using it?): {reason}")
    if engine.timezone not in ("UTC", "Etc/UTC", "Etc/UCT", "UCT", "Universal", "Zulu", "GMT"):
        LOG.warning("engine timezone is %s, not UTC", engine.timezone)
    try:
        server = ClickHouseHTTPServer(
            (LISTEN_HOST, cfg.clickhouse_port), engine, cfg.clickhouse_user, cfg.clickhouse_password
        )
    except OSError as exc:
        engine.close()
        _fail(f"cannot listen on {LISTEN_HOST}:{cfg.clickhouse_port}: {exc}")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="http-accept", daemon=True
    ).start()
    threading.Thread(target=_session_reaper, args=(engine, stop), name="reaper", daemon=True).start()
    LOG.info(
        "listening on http://%s:%d (ClickHouse %s, database %s)",
        LISTEN_HOST,
        cfg.clickhouse_port,
        engine.version,
        cfg.clickhouse_database,
    )
    while not stop.wait(0.2):
        pass
    LOG.info("shutting down: finishing in-flight requests")
    server.shutdown()
    still_running = server.drain(args.shutdown_timeout)
    server.server_close()
    if still_running:
        LOG.warning(
            "%d request(s) still running after %.0fs; leaving them", still_running, args.shutdown_timeout
        )
    else:
        engine.close()
    LOG.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
