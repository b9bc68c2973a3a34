"""The server end to end, exercised with the real clickhouse-connect client from other processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import lz4.frame

from engagement_platform_tests.local_stack.clickhouse_http.server import (
    DATABASE,
    MODULE,
    PASSWORD,
    USER,
    Server,
    client_process,
    collect,
    http,
    run_client,
    running_server,
)


def test_ping_needs_no_credentials(server: Server) -> None:
    assert http(server, "/ping", auth=False)[::2] == (200, b"Ok.\n")
    assert http(server, "/", auth=False)[::2] == (200, b"Ok.\n")


def test_probes_carry_clickhouse_headers_and_unknown_paths_are_404(server: Server) -> None:
    status, headers, body = http(server, "/ping", auth=False)
    assert (status, body) == (200, b"Ok.\n") and headers["X-ClickHouse-Timezone"]
    assert http(server, "/replicas_status", auth=False)[::2] == (200, b"Ok.\n")
    assert http(server, "/nope", auth=False)[::2] == (404, b"There is no handle /nope\n")


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


def test_sigterm_lets_an_in_flight_query_finish(tmp_path: Path) -> None:
    with running_server(tmp_path) as srv:
        client = client_process(srv, 'emit(connect().command("SELECT sleep(1.5) + 42 AS in_flight_marker"))')
        running = b"SELECT count() FROM system.processes WHERE query LIKE '%in_flight_%marker%'"
        deadline = time.monotonic() + 60
        while http(srv, "/", running)[2] != b"2\n":  # the client's query, and this one
            assert time.monotonic() < deadline and client.poll() is None, "the query never ran"
        assert srv.stop() == 0
        assert collect(client) == 42
        log = srv.log_path.read_text()
        assert "shutting down" in log and "stopped" in log and "still running" not in log


def test_bad_arguments_exit_2() -> None:
    proc = subprocess.run([sys.executable, "-m", MODULE], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--data-dir" in proc.stderr
