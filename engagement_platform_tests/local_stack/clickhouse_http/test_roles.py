"""The local server's users (issue 20): the reader is ClickHouse's ``readonly=1``, the bridge's
writer inserts into the queue table and nothing else; each refusal is ClickHouse's own error."""

from __future__ import annotations

import urllib.parse

import pytest

from engagement_platform.settings import default
from engagement_platform_tests.local_stack.clickhouse_http.server import DATABASE, Server, http, run_client

READER = (str(default("CLICKHOUSE_READER_USER")), str(default("CLICKHOUSE_READER_PASSWORD")))
WRITER = (str(default("CLICKHOUSE_WRITER_USER")), str(default("CLICKHOUSE_WRITER_PASSWORD")))


def sql(
    server: Server, query: str, auth: bool | tuple[str, str] = True, **params: str
) -> tuple[int, str, str]:
    """POST ``query`` as ``auth``: (status, exception code or '', body)."""
    url = "/?" + urllib.parse.urlencode({"database": DATABASE, **params})
    status, headers, body = http(server, url, body=query.encode(), auth=auth)
    return status, headers.get("X-ClickHouse-Exception-Code", ""), body.decode()


@pytest.fixture(scope="module", autouse=True)
def tables(server: Server) -> None:
    """The queue and the table behind it, made by the owner."""
    for statement in (
        "CREATE TABLE IF NOT EXISTS engagement_enriched_queue (raw String) ENGINE = Null",
        "CREATE TABLE IF NOT EXISTS engagement_enriched (raw String) ENGINE = MergeTree ORDER BY raw",
        "CREATE MATERIALIZED VIEW IF NOT EXISTS roles_consume TO engagement_enriched "
        "AS SELECT raw FROM engagement_enriched_queue",
    ):
        assert sql(server, statement)[0] == 200


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE engagement_enriched",
        "INSERT INTO engagement_enriched VALUES ('x')",
        "ALTER TABLE engagement_enriched DELETE WHERE 1",
        "DROP TABLE engagement_enriched SETTINGS readonly = 0",
        "SELECT count() FROM engagement_enriched SETTINGS readonly = 0",
        "SET readonly = 0",
        "SELECT * FROM file('/etc/hostname', 'LineAsString')",
    ],
)
def test_the_reader_cannot_drop_insert_or_alter(server: Server, statement: str) -> None:
    assert sql(server, "SELECT count() FROM engagement_enriched", auth=READER)[0] == 200  # it reads
    status, code, body = sql(server, statement, auth=READER)
    assert (status, code) == (403, "164"), body
    assert "readonly" in body and "(READONLY)" in body
    status, code, body = sql(server, statement, auth=READER, readonly="0")  # nor from the URL
    assert code == "164", body
    assert sql(server, "EXISTS TABLE engagement_enriched")[2].strip() == "1"


def test_the_reader_cannot_insert_a_streamed_body(server: Server) -> None:
    status, code, body = sql(server, "INSERT INTO engagement_enriched FORMAT TSV\nx\n", auth=READER)
    assert (status, code) == (403, "164"), body


def test_the_writer_inserts_into_the_queue_with_the_bridges_client(server: Server) -> None:
    result = run_client(
        server,
        """
        from engagement_platform.warehouse import ddl
        client = connect(database=ARGS["database"])
        emit(ddl.insert_raw(client, ddl.QUEUE, [b'{"a": 1}', b'{"a": 2}']))
        """,
        user=WRITER[0],
        password=WRITER[1],
        database=DATABASE,
    )
    assert result == 2
    assert sql(server, "SELECT count() FROM engagement_enriched WHERE raw LIKE '{%'")[2].strip() == "2"


@pytest.mark.parametrize(
    ("statement", "grant"),
    [
        ("SELECT * FROM engagement_enriched", f"SELECT ON {DATABASE}.engagement_enriched"),
        (f"SELECT count() FROM {DATABASE}.engagement_enriched FORMAT JSON", "SELECT ON"),
        ("SELECT 1 WHERE 1 IN (SELECT count() FROM engagement_enriched)", "SELECT ON"),
        ("SELECT * FROM numbers(3)", "CREATE TEMPORARY TABLE"),
        ("DROP TABLE engagement_enriched", "DROP TABLE ON"),
        ("DROP TABLE engagement_enriched_queue", "DROP TABLE ON"),
        ("TRUNCATE TABLE engagement_enriched", "TRUNCATE TABLE ON"),
        ("INSERT INTO engagement_enriched VALUES ('x')", f"INSERT ON {DATABASE}.engagement_enriched"),
        ("INSERT INTO engagement_enriched FORMAT TSV\nx\n", "INSERT ON"),
        ("INSERT INTO engagement_enriched_queue SELECT raw FROM engagement_enriched", "SELECT ON"),
        ("INSERT INTO FUNCTION file('x.tsv', 'TSV', 'raw String') VALUES ('x')", "INSERT ON"),
        ("SHOW CREATE TABLE engagement_enriched", "SHOW ON"),
    ],
)
def test_the_bridge_cannot_select_from_engagement_enriched_or_drop_anything(
    server: Server, statement: str, grant: str
) -> None:
    status, code, body = sql(server, statement, auth=WRITER)
    assert (status, code) == (403, "497"), body
    assert "Not enough privileges" in body and grant in body and "(ACCESS_DENIED)" in body
    assert sql(server, "EXISTS TABLE engagement_enriched")[2].strip() == "1"


def test_a_wrong_password_for_a_role_is_refused(server: Server) -> None:
    status, code, _ = sql(server, "SELECT 1", auth=(READER[0], "wrong"))
    assert (status, code) == (403, "516")
