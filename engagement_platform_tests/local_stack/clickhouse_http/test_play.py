"""``/play``: the page loads without credentials; its queries are checked like any client's."""

from __future__ import annotations

import json

from engagement_platform_tests.local_stack.clickhouse_http.server import PASSWORD, USER, Server, http

# what the page's script sends: POST / with Basic auth and the SQL as the body
PAGE_QUERY = "/?default_format=JSONCompact"


def test_play_page_loads_without_credentials(server: Server) -> None:
    status, headers, body = http(server, "/play", auth=False)
    content_type = {name.lower(): value for name, value in headers.items()}["content-type"]
    assert status == 200 and content_type.startswith("text/html")
    page = body.decode()
    assert '<textarea id="query"' in page and 'id="password"' in page and "<button" in page
    assert "JSONCompact" in page and "Authorization" in page
    assert "://" not in page  # nothing fetched from elsewhere: these machines have no internet


def test_a_query_as_the_page_sends_it_returns_rows(server: Server) -> None:
    sql = b"SELECT number AS n, toString(number * 2) AS s, NULL AS z FROM numbers(3)"
    status, headers, body = http(server, PAGE_QUERY, sql, auth=(USER, PASSWORD))
    assert status == 200 and headers["X-ClickHouse-Format"] == "JSONCompact"
    result = json.loads(body)
    assert [c["name"] for c in result["meta"]] == ["n", "s", "z"]
    assert result["data"] == [[0, "0", None], [1, "2", None], [2, "4", None]]
    assert result["rows"] == 3


def test_the_page_gets_clickhouse_errors_as_text(server: Server) -> None:
    status, headers, body = http(server, PAGE_QUERY, b"SELECT * FROM no_such_table", auth=(USER, PASSWORD))
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "60"
    assert body.startswith(b"Code: 60. DB::Exception:") and b"no_such_table" in body


def test_a_wrong_password_from_the_page_is_refused(server: Server) -> None:
    status, headers, body = http(server, PAGE_QUERY, b"SELECT 1", auth=(USER, "wrong"))
    assert status == 403 and headers["X-ClickHouse-Exception-Code"] == "516"
    assert b"AUTHENTICATION_FAILED" in body
    status, headers, _ = http(server, PAGE_QUERY, b"SELECT 1", auth=False)
    assert status == 401 and headers["X-ClickHouse-Exception-Code"] == "516"
