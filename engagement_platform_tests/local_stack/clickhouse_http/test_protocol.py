"""ClickHouse's HTTP conventions (options, credentials, encodings, errors): pure units."""

from __future__ import annotations

import base64

import lz4.frame
import pytest

from engagement_platform.local_stack.clickhouse_http.protocol import (
    NOT_IMPLEMENTED,
    ClickHouseError,
    decode_body,
    error_from_engine,
    parse_options,
    request_credentials,
)


def test_parse_options_sorts_parameters() -> None:
    opts = parse_options(
        [
            ("query", "SELECT 1"),
            ("database", "db"),
            ("param_n", "5"),
            ("max_threads", "2"),
            ("session_id", "s"),
            ("wait_end_of_query", "1"),
            ("send_progress_in_http_headers", "1"),
            ("enable_http_compression", "0"),
        ]
    )
    assert (opts.query, opts.database, opts.session_id) == ("SELECT 1", "db", "s")
    assert opts.query_params == {"n": "5"} and opts.engine_settings == {"max_threads": "2"}
    assert opts.enable_http_compression is False
    with pytest.raises(ClickHouseError) as excinfo:
        parse_options([("decompress", "1")])
    assert excinfo.value.code == NOT_IMPLEMENTED


def test_credentials_precedence() -> None:
    basic = "Basic " + base64.b64encode(b"u:p:w").decode()
    assert request_credentials({"Authorization": basic}, {}) == ("u", "p:w")
    assert request_credentials({"X-ClickHouse-User": "x", "X-ClickHouse-Key": "k"}, {}) == ("x", "k")
    assert request_credentials({}, {"user": "q", "password": "r"}) == ("q", "r")
    assert request_credentials({}, {}) is None


def test_decode_body_handles_concatenated_lz4_frames() -> None:
    body = lz4.frame.compress(b"INSERT INTO t FORMAT CSV\n1\n") + lz4.frame.compress(b"2\n" * 1000)
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    assert b"".join(decode_body(iter(pieces), "lz4")) == b"INSERT INTO t FORMAT CSV\n1\n" + b"2\n" * 1000
    with pytest.raises(ClickHouseError):
        list(decode_body(iter([body[:-3]]), "lz4"))


def test_error_from_engine_strips_chdb_prefixes() -> None:
    err = error_from_engine(
        RuntimeError("Streaming insert finish failed: Code: 33. DB::Exception: x. (CANNOT_READ_ALL_DATA)")
    )
    assert err.code == 33 and err.message.startswith("Code: 33.") and err.status == 500
    assert error_from_engine(RuntimeError("Code: 60. DB::Exception: y. (UNKNOWN_TABLE)")).status == 404
