"""The chdb-backed ClickHouse HTTP server, exercised with the real clickhouse-connect client.

The server runs as a real subprocess (as the stack supervisor runs it), and the client
calls run in further subprocesses, because the whole point of the server is that other
processes can reach an engine only one process may open.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lz4.frame
import pytest

from engagement_platform.local_stack.clickhouse_http import protocol, sql_scan

USER = "default"
PASSWORD = "s3cret-test"
DATABASE = "engagement"
MODULE = "engagement_platform.local_stack.clickhouse_http"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    port: int
    data_dir: Path
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", MODULE, "--data-dir", str(self.data_dir)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                if http(self, "/ping", auth=False)[2] == b"Ok.\n":
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not come up:\n{self.log_path.read_text()}")

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("chserver")
    env = dict(os.environ)
    env.update(
        CLICKHOUSE_PORT=str(_free_port()),
        CLICKHOUSE_USER=USER,
        CLICKHOUSE_PASSWORD=PASSWORD,
        CLICKHOUSE_DATABASE=DATABASE,
        EP_HOME=str(root / "home"),
    )
    srv = Server(int(env["CLICKHOUSE_PORT"]), root / "data", env, root / "server.log")
    srv.start()
    try:
        yield srv
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.stop()


def http(
    srv: Server,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    auth: bool | tuple[str, str] = True,
) -> tuple[int, dict[str, str], bytes]:
    """A raw HTTP call, for what the client library hides (status, headers)."""
    request = urllib.request.Request(f"http://127.0.0.1:{srv.port}{path}", data=body)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    if auth:
        user, password = auth if isinstance(auth, tuple) else (USER, PASSWORD)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


CLIENT_PRELUDE = """
import json, sys
import clickhouse_connect
from clickhouse_connect.driver.exceptions import DatabaseError
ARGS = json.loads(sys.argv[1])
def connect(**kw):
    opts = dict(host="127.0.0.1", port=ARGS["port"], username=ARGS["user"], password=ARGS["password"])
    opts.update(kw)
    return clickhouse_connect.get_client(**opts)
def emit(value):
    print("RESULT " + json.dumps(value, default=str))
"""


def client_process(srv: Server, code: str, **args: object) -> subprocess.Popen[str]:
    """Start a separate client process running ``code`` against the server."""
    payload = {"port": srv.port, "user": USER, "password": PASSWORD, **args}
    script = CLIENT_PRELUDE + textwrap.dedent(code)
    return subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(payload)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def collect(proc: subprocess.Popen[str]) -> object:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"client failed:\n{out}\n{err}"
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert lines, f"client printed no result:\n{out}\n{err}"
    return json.loads(lines[-1][len("RESULT ") :])


def run_client(srv: Server, code: str, **args: object) -> object:
    return collect(client_process(srv, code, **args))


# --------------------------------------------------------------------------- end to end


def test_ping_needs_no_credentials(server: Server) -> None:
    assert http(server, "/ping", auth=False)[::2] == (200, b"Ok.\n")
    assert http(server, "/", auth=False)[::2] == (200, b"Ok.\n")


def test_insert_df_and_query_df_round_trip_from_another_process(server: Server) -> None:
    result = run_client(
        server,
        """
        import numpy as np, pandas as pd
        client = connect()
        client.command("DROP TABLE IF EXISTS events")
        client.command(
            "CREATE TABLE events (id UInt64, name String, ts DateTime, score Float64,"
            " kind LowCardinality(String), maybe Nullable(Int32)) ENGINE = MergeTree ORDER BY id"
        )
        n = 100_000
        ids = np.arange(n, dtype=np.uint64)
        df = pd.DataFrame({
            "id": ids,
            "name": [f"user-{i}" for i in range(n)],
            "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(ids.astype("int64"), unit="s"),
            "score": ids / 7,
            "kind": np.where(ids % 3 == 0, "view", "click"),
            "maybe": pd.array([None if i % 10 == 0 else i for i in range(n)], dtype="Int32"),
        })
        summary = client.insert_df("events", df)
        back = client.query_df("SELECT * FROM events ORDER BY id")
        same = {
            col: bool((back[col].astype(object).values == df[col].astype(object).values).all())
            for col in ["id", "name", "ts", "score", "kind"]
        }
        same["maybe"] = bool(back["maybe"].isna().equals(df["maybe"].isna()))
        emit({"written": summary.written_rows, "rows": len(back), "same": same})
        """,
    )
    assert result == {
        "written": 100_000,
        "rows": 100_000,
        "same": dict.fromkeys(["id", "name", "ts", "score", "kind", "maybe"], True),
    }


def test_server_side_parameters_and_command(server: Server) -> None:
    result = run_client(
        server,
        """
        client = connect()
        rows = client.query(
            "SELECT {n:UInt32} * 2 AS twice, {s:String} AS s", parameters={"n": 21, "s": "it's"}
        )
        emit({
            "rows": rows.result_rows,
            "count": client.command("SELECT count() FROM numbers({k:UInt32})", parameters={"k": 5}),
            "db": client.command("SELECT currentDatabase()"),
            "arrow_rows": client.query_arrow("SELECT number FROM numbers(3)").num_rows,
        })
        """,
    )
    assert result == {"rows": [[42, "it's"]], "count": 5, "db": DATABASE, "arrow_rows": 3}


def test_lz4_insert_and_query_round_trip(server: Server) -> None:
    result = run_client(
        server,
        """
        client = connect(compress="lz4")
        client.command(
            "CREATE TABLE IF NOT EXISTS lz (id UInt32, payload String) ENGINE = MergeTree ORDER BY id"
        )
        client.command("TRUNCATE TABLE lz")
        rows = [[i, "x" * (i % 50)] for i in range(20_000)]
        client.insert("lz", rows, column_names=["id", "payload"])
        back = client.query("SELECT id, payload FROM lz ORDER BY id").result_rows
        emit({"compression": client.compression, "same": [list(r) for r in back] == rows})
        """,
    )
    assert result == {"compression": "lz4", "same": True}
    # the response really is lz4 when asked for
    status, headers, body = http(
        server, "/?query=SELECT%20number%20FROM%20numbers(1000)", headers={"Accept-Encoding": "lz4"}
    )
    assert status == 200 and headers["Content-Encoding"] == "lz4"
    assert lz4.frame.decompress(body).split() == [str(i).encode() for i in range(1000)]


def test_errors_surface_as_database_error(server: Server) -> None:
    result = run_client(
        server,
        """
        client = connect()
        try:
            client.query("SELECT * FROM no_such_table")
        except DatabaseError as exc:
            emit({"code": exc.code, "text": str(exc)})
        """,
    )
    assert result["code"] == 60
    assert "UNKNOWN_TABLE" in result["text"] and "no_such_table" in result["text"]
    status, headers, body = http(server, "/", b"SELEC 1")
    assert status == 400 and headers["X-ClickHouse-Exception-Code"] == "62"
    assert body.startswith(b"Code: 62. DB::Exception: Syntax error")


def test_bad_password_is_rejected(server: Server) -> None:
    result = run_client(
        server,
        """
        try:
            connect(password="wrong")
            emit("connected")
        except DatabaseError as exc:
            emit({"code": exc.code, "text": str(exc)})
        """,
    )
    assert result["code"] == 516 and "AUTHENTICATION_FAILED" in result["text"]
    assert http(server, "/?query=SELECT%201", auth=(USER, "wrong"))[0] == 403
    assert http(server, "/?query=SELECT%201", auth=False)[0] == 401
    ok = http(
        server,
        "/?query=SELECT%201",
        auth=False,
        headers={"X-ClickHouse-User": USER, "X-ClickHouse-Key": PASSWORD},
    )
    assert ok[::2] == (200, b"1\n")


def test_kafka_engine_is_refused_and_engine_stays_healthy(server: Server) -> None:
    ddl = (
        b"CREATE TABLE k (a UInt8) ENGINE = Kafka SETTINGS kafka_broker_list = 'x:1', kafka_topic_list = 't'"
    )
    status, headers, body = http(server, "/", ddl)
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "344"
    assert b"Kafka" in body
    assert http(server, "/?query=EXISTS%20TABLE%20k")[2] == b"0\n"
    # a string that merely mentions it is fine
    assert http(server, "/", b"SELECT 'ENGINE = Kafka'")[2] == b"ENGINE = Kafka\n"


def test_url_settings_readonly_get_and_formats(server: Server) -> None:
    status, headers, body = http(server, "/?query=SELECT%20getSetting('max_threads')&max_threads=1")
    assert (status, body) == (200, b"1\n")
    status, headers, body = http(server, "/?query=SELECT%201&default_format=JSONEachRow")
    assert headers["X-ClickHouse-Format"] == "JSONEachRow" and json.loads(body) == {"1": 1}
    status, headers, _ = http(server, "/?query=SELECT%201&no_such_setting=1")
    assert headers["X-ClickHouse-Exception-Code"] == "115"
    status, headers, _ = http(server, "/?query=CREATE%20TABLE%20ro%20(a%20UInt8)%20ENGINE%3DMemory")
    assert status == 403 and headers["X-ClickHouse-Exception-Code"] == "164"
    # query split between the URL and the body, the way ClickHouse concatenates them
    status, _, body = http(server, "/?query=SELECT%201%20%2B", b"1 FORMAT CSV")
    assert (status, body) == (200, b"2\n")


def test_two_client_processes_insert_and_query_concurrently(server: Server) -> None:
    run_client(
        server,
        """
        client = connect()
        client.command("DROP TABLE IF EXISTS conc")
        client.command("CREATE TABLE conc (worker UInt8, i UInt32) ENGINE = MergeTree ORDER BY (worker, i)")
        emit("ok")
        """,
    )
    worker = """
        client = connect()
        w, batches, size = ARGS["worker"], 20, 5_000
        seen = []
        for b in range(batches):
            client.insert("conc", [[w, b * size + j] for j in range(size)], column_names=["worker", "i"])
            count = "SELECT count() FROM conc WHERE worker = {w:UInt8}"
            seen.append(client.command(count, parameters={"w": w}))
        emit({"seen": seen})
    """
    procs = [client_process(server, worker, worker=w) for w in (1, 2)]
    results = [collect(p) for p in procs]
    for result in results:
        assert result["seen"] == [5_000 * (b + 1) for b in range(20)]
    totals = http(
        server,
        "/",
        b"SELECT worker, count(), uniqExact(i) FROM conc GROUP BY worker ORDER BY worker",
    )
    assert totals[2] == b"1\t100000\t100000\n2\t100000\t100000\n"


def test_data_survives_a_restart(server: Server) -> None:
    assert (
        http(server, "/", b"CREATE TABLE IF NOT EXISTS durable (a UInt32) ENGINE = MergeTree ORDER BY a")[0]
        == 200
    )
    assert http(server, "/", b"INSERT INTO durable SELECT number FROM numbers(1234)")[0] == 200
    assert server.stop() == 0
    log = server.log_path.read_text()
    assert "shutting down" in log and "stopped" in log
    server.start()
    assert http(server, "/?query=SELECT%20count()%20FROM%20durable")[2] == b"1234\n"


def test_bad_arguments_exit_2() -> None:
    proc = subprocess.run([sys.executable, "-m", MODULE], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--data-dir" in proc.stderr


# --------------------------------------------------------------------------- unit


@pytest.mark.parametrize(
    ("sql", "statement", "fmt", "data"),
    [
        (b"INSERT INTO t (a, b) FORMAT Native\n\x02\x01", b"INSERT INTO t (a, b)", "Native", b"\x02\x01"),
        (b"insert into `db`.`t` format CSV  \r\n1,2\n", b"insert into `db`.`t`", "CSV", b"1,2\n"),
        (b"INSERT INTO format FORMAT TSV\n1", b"INSERT INTO format", "TSV", b"1"),
        (
            b"INSERT INTO t SETTINGS format_csv_delimiter = ';' FORMAT CSV\n1;2",
            b"INSERT INTO t SETTINGS format_csv_delimiter = ';'",
            "CSV",
            b"1;2",
        ),
        (
            b'-- c\nINSERT /* FORMAT x */ INTO t FORMAT JSONEachRow {"a":1}',
            b"-- c\nINSERT /* FORMAT x */ INTO t",
            "JSONEachRow",
            b'{"a":1}',
        ),
    ],
)
def test_split_insert_finds_inline_data(sql: bytes, statement: bytes, fmt: str, data: bytes) -> None:
    split = sql_scan.split_insert(sql, final=True)
    assert isinstance(split, sql_scan.InsertSplit)
    assert (split.statement, split.format_name, sql[split.data_offset :]) == (statement, fmt, data)


@pytest.mark.parametrize(
    "sql",
    [
        b"SELECT 1 FORMAT Native",
        b"INSERT INTO t VALUES (1)",
        b"INSERT INTO t SELECT * FROM s",
        b"INSERT INTO t FROM INFILE 'f' FORMAT CSV",
        b"CREATE TABLE t (format String) ENGINE = Memory",
    ],
)
def test_split_insert_leaves_whole_statements_alone(sql: bytes) -> None:
    assert sql_scan.split_insert(sql, final=True) == sql_scan.NOT_A_DATA_INSERT


def test_split_insert_waits_for_more_input_at_a_boundary() -> None:
    assert sql_scan.split_insert(b"INSERT INTO t FORM", final=False) is None
    assert sql_scan.split_insert(b"INSERT INTO t FORMAT Native", final=False) is None  # newline may follow
    assert sql_scan.split_insert(b"INSERT INTO t VALUES (", final=False) == sql_scan.NOT_A_DATA_INSERT


def test_kafka_detection_ignores_strings_and_comments_but_not_quoting() -> None:
    assert sql_scan.creates_kafka_table(sql_scan.normalize_sql(b"CREATE TABLE k (a Int8) ENGINE=Kafka()"))
    assert sql_scan.creates_kafka_table(sql_scan.normalize_sql(b"CREATE TABLE k (a Int8) ENGINE /* x */ = `Kafka`"))
    assert not sql_scan.creates_kafka_table(sql_scan.normalize_sql(b"SELECT 'ENGINE = Kafka'"))
    assert not sql_scan.creates_kafka_table(sql_scan.normalize_sql(b"SELECT 1 -- ENGINE = Kafka"))


def test_trailing_format_and_first_keyword() -> None:
    assert sql_scan.trailing_format(sql_scan.normalize_sql(b"SELECT 1\n FORMAT Native")) == "Native"
    assert sql_scan.trailing_format(sql_scan.normalize_sql(b"SELECT 1 FORMAT JSON SETTINGS max_threads=1;")) == "JSON"
    assert sql_scan.trailing_format(sql_scan.normalize_sql(b"SELECT 'FORMAT CSV'")) is None
    assert sql_scan.first_keyword(sql_scan.normalize_sql(b"/* hi */ (select 1)")) == "SELECT"


def test_parse_options_sorts_parameters() -> None:
    opts = protocol.parse_options(
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
    with pytest.raises(protocol.ClickHouseError) as excinfo:
        protocol.parse_options([("decompress", "1")])
    assert excinfo.value.code == protocol.NOT_IMPLEMENTED


def test_credentials_precedence() -> None:
    basic = "Basic " + base64.b64encode(b"u:p:w").decode()
    assert protocol.request_credentials({"Authorization": basic}, {}) == ("u", "p:w")
    assert protocol.request_credentials({"X-ClickHouse-User": "x", "X-ClickHouse-Key": "k"}, {}) == ("x", "k")
    assert protocol.request_credentials({}, {"user": "q", "password": "r"}) == ("q", "r")
    assert protocol.request_credentials({}, {}) is None


def test_decode_body_handles_concatenated_lz4_frames() -> None:
    body = lz4.frame.compress(b"INSERT INTO t FORMAT CSV\n1\n") + lz4.frame.compress(b"2\n" * 1000)
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    assert b"".join(protocol.decode_body(iter(pieces), "lz4")) == b"INSERT INTO t FORMAT CSV\n1\n" + b"2\n" * 1000
    with pytest.raises(protocol.ClickHouseError):
        list(protocol.decode_body(iter([body[:-3]]), "lz4"))


def test_error_from_engine_strips_chdb_prefixes() -> None:
    err = protocol.error_from_engine(
        RuntimeError("Streaming insert finish failed: Code: 33. DB::Exception: x. (CANNOT_READ_ALL_DATA)")
    )
    assert err.code == 33 and err.message.startswith("Code: 33.") and err.status == 500
    assert protocol.error_from_engine(RuntimeError("Code: 60. DB::Exception: y. (UNKNOWN_TABLE)")).status == 404
