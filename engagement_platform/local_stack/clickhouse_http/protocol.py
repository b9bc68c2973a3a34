"""ClickHouse's HTTP conventions, as plain functions of a request's parts.

Everything here is what a real ClickHouse server does with URL parameters, credentials,
error codes, output formats and Content-Encoding, kept free of any HTTP server or engine
so it can be tested as units and reused by whichever transport serves it.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import lz4.frame

_zstd: Any
try:  # zstd is optional: clickhouse-connect only uses it when asked for explicitly
    from backports import zstd

    _zstd = zstd
except ImportError:  # pragma: no cover - depends on the environment
    _zstd = None

DEFAULT_SESSION_TIMEOUT_S = 60.0
MAX_SESSION_TIMEOUT_S = 3600.0
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
ACCESS_DENIED = 497
CANNOT_READ_ALL_DATA = 33

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
    ACCESS_DENIED: "ACCESS_DENIED",
    CANNOT_READ_ALL_DATA: "CANNOT_READ_ALL_DATA",
    UNKNOWN_EXCEPTION: "UNKNOWN_EXCEPTION",
}

# ClickHouse's exceptionCodeToHTTPStatus, for the codes a client can plausibly cause.
# 503 is deliberately never used: clickhouse-connect retries it.
_HTTP_400 = frozenset({6, 8, 15, 25, 26, 27, 36, 38, 41, 44, 53, 62, 72, 117, 167, 168, 223, 321, 376, 441})
_HTTP_404 = frozenset({46, 47, 50, 56, 60, 63, 73, 81, 115, 336, 372})
_HTTP_403 = frozenset({164, 497, 516})
_HTTP_501 = frozenset({48})

_CODE_RE = re.compile(r"Code: (\d+)\.")
_SETTING_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


def request_options(params: Iterable[tuple[str, str]], headers: Mapping[str, str]) -> RequestOptions:
    """A query request's options: URL parameters first, then ClickHouse's header fallbacks."""
    if "multipart/form-data" in headers.get("Content-Type", ""):
        raise ClickHouseError.make(
            NOT_IMPLEMENTED, "multipart/form-data requests (external data) are not supported"
        )
    opts = parse_options(params)
    opts.database = opts.database or headers.get("X-ClickHouse-Database") or None
    opts.default_format = opts.default_format or headers.get("X-ClickHouse-Format") or None
    return opts


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


@dataclass(frozen=True)
class Account:
    """A user the server lets in, and what it may do: ``owner`` anything, ``writer`` insert into
    the queue table only, ``reader`` read only (ClickHouse's ``readonly=1``)."""

    user: str
    password: str = field(repr=False)
    role: str = "owner"
    table: str = ""  # a writer's one table, in whichever database (tests use scratch ones)


def authenticate(presented: tuple[str, str] | None, accounts: Iterable[Account]) -> Account:
    """The account whose user and password were presented; else what real ClickHouse does:
    401 with nothing presented, 403 if wrong. Every account is compared, in constant time."""
    given_user, given_password = presented if presented is not None else ("default", "")
    found: Account | None = None
    for account in accounts:
        ok_user = hmac.compare_digest(given_user.encode(), account.user.encode())
        ok_password = hmac.compare_digest(given_password.encode(), account.password.encode())
        if ok_user and ok_password and found is None:  # the first listed wins: the owner
            found = account
    if found is not None:
        return found
    raise ClickHouseError.make(
        AUTHENTICATION_FAILED,
        f"{given_user or 'default'}: Authentication failed: password is incorrect, "
        "or there is no user with such name",
        status=401 if presented is None else 403,
    )


def check_credentials(presented: tuple[str, str] | None, user: str, password: str) -> None:
    """Reject what real ClickHouse would, for a server with the one user ``user``."""
    authenticate(presented, [Account(user, password)])


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


def summary_header(**values: int | float) -> str:
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
