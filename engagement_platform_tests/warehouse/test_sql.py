"""``engagement-platform sql`` against a real ClickHouse HTTP server, as a user runs it."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from engagement_platform_tests.harness import CLI, free_ports
from engagement_platform_tests.local_stack.clickhouse_http.server import (
    DATABASE,
    PASSWORD,
    USER,
    Server,
    http,
    running_server,
)

QUERY = "SELECT id, name, score FROM people ORDER BY id"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("sqlcli")) as srv:
        for statement in (
            b"CREATE TABLE people (id UInt64, name String, score Nullable(Float64)) "
            b"ENGINE = MergeTree ORDER BY id",
            b"INSERT INTO people VALUES (1, 'ada', 9.5), (2, 'grace \"g\", hopper', NULL), (3, 'linus', 7)",
        ):
            status, _, body = http(srv, "/", statement)
            assert status == 200, body
        yield srv


def sql(srv: Server, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "CLICKHOUSE_HOST": "127.0.0.1",
        "CLICKHOUSE_PORT": str(srv.port),
        "CLICKHOUSE_USER": USER,
        "CLICKHOUSE_PASSWORD": PASSWORD,
        "CLICKHOUSE_DATABASE": DATABASE,
        **env,
    }
    return subprocess.run(
        [*CLI, "sql", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


def one_error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_prints_a_table(server: Server) -> None:
    result = sql(server, QUERY)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "id" in line and "name" in line)
    assert "score" in header
    body = "\n".join(lines)
    for row in (("1", "ada", "9.5"), ("2", 'grace "g", hopper', "NULL"), ("3", "linus", "7")):
        assert any(all(cell in line for cell in row) for line in lines), body
    assert "3 row(s)" in body


def test_csv_is_clickhouse_csv_with_a_header(server: Server) -> None:
    result = sql(server, QUERY, "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert list(csv.reader(io.StringIO(result.stdout))) == [
        ["id", "name", "score"],
        ["1", "ada", "9.5"],
        ["2", 'grace "g", hopper', "\\N"],
        ["3", "linus", "7"],
    ]


def test_json_is_one_object_per_row(server: Server) -> None:
    result = sql(server, QUERY, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"id": 1, "name": "ada", "score": 9.5},
        {"id": 2, "name": 'grace "g", hopper', "score": None},
        {"id": 3, "name": "linus", "score": 7},
    ]


def test_reads_the_query_from_stdin(server: Server) -> None:
    assert sql(server, "-", "--format", "csv", stdin="SELECT 40 + 2 AS answer").stdout == '"answer"\n42\n'
    assert sql(server, "--format", "csv", stdin="SELECT count() FROM people\n").stdout == '"count()"\n3\n'


def test_a_statement_without_output_runs_with_admin(server: Server) -> None:
    result = sql(server, "--admin", "CREATE TABLE IF NOT EXISTS scratch (a UInt8) ENGINE = Memory")
    assert (result.returncode, result.stdout.strip()) == (0, "Ok.")
    assert http(server, "/?query=EXISTS%20TABLE%20scratch")[2] == b"1\n"


@pytest.mark.parametrize(
    "statement",
    ["DROP TABLE people", "INSERT INTO people VALUES (9, 'x', 1)", "ALTER TABLE people DELETE WHERE 1"],
)
def test_sql_is_read_only_by_default_and_refuses_writes_in_one_line(server: Server, statement: str) -> None:
    line = one_error_line(sql(server, statement), 1)
    assert line.startswith("engagement-platform: Code: 164. DB::Exception:")
    assert "(READONLY)" in line and "--admin" in line
    assert sql(server, "--format", "csv", "SELECT count() FROM people").stdout == '"count()"\n3\n'


def test_a_bad_query_fails_with_clickhouse_message(server: Server) -> None:
    line = one_error_line(sql(server, "SELEC 1"), 1)
    assert line.startswith("engagement-platform: Code: 62. DB::Exception: Syntax error")
    line = one_error_line(sql(server, "SELECT * FROM no_such_table"), 1)
    assert "UNKNOWN_TABLE" in line and "no_such_table" in line and "(version" not in line


def test_wrong_password_and_no_server_fail_cleanly(server: Server) -> None:
    line = one_error_line(sql(server, "SELECT 1", CLICKHOUSE_READER_PASSWORD="wrong"), 1)
    assert "Code: 516" in line and "AUTHENTICATION_FAILED" in line
    (closed_port,) = free_ports(1)
    line = one_error_line(sql(server, "SELECT 1", CLICKHOUSE_PORT=str(closed_port)), 1)
    assert line.startswith(
        f"engagement-platform: clickhouse is not reachable at http://127.0.0.1:{closed_port}"
    )


@pytest.mark.parametrize("args", [("--format", "xml", "SELECT 1"), ("SELECT 1", "extra"), ("   ",)])
def test_bad_arguments_exit_2(server: Server, args: tuple[str, ...]) -> None:
    assert one_error_line(sql(server, *args), 2).startswith("engagement-platform")


def test_the_command_module_loads_only_when_it_runs() -> None:
    probe = (
        "import sys; from engagement_platform import cli; cli.build_parser(); "
        "print('engagement_platform.warehouse.sql' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr
