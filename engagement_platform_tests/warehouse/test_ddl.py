"""Pure tests of how clickhouse_ddl/ is found, ordered and split into statements."""

from __future__ import annotations

from pathlib import Path

import pytest

from engagement_platform.warehouse import ddl


def test_files_are_ordered_and_filtered_by_mode() -> None:
    local = [f.name for f in ddl.ddl_files("local")]
    compose = [f.name for f in ddl.ddl_files("compose")]
    assert local[0] == "010_queue.local.sql" and compose[0] == "010_queue.compose.sql"
    assert not any(".compose." in n for n in local) and not any(".local." in n for n in compose)
    # everything after the queue is identical in both modes
    assert local[1:] == compose[1:]
    # the view that starts consumption comes after every table of the first schema; later
    # versions (100 on) change a pipeline that already runs
    assert [n for n in local if n < "100"][-1] == "090_consume.sql"
    assert [f.order for f in ddl.ddl_files("local")] == sorted(f.order for f in ddl.ddl_files("local"))


def test_every_statement_is_safe_to_run_twice() -> None:
    """Creations say IF NOT EXISTS and drops IF EXISTS; anything else (rebuilds, swaps, column
    materialization) only in the migrations after 090, which the schema tests apply twice."""
    for mode in ddl.MODES:
        for ddl_file, statement in ddl.statements(mode):
            code = " ".join(ddl._strip_comments(statement).split())
            head = code.split(" ", 1)[0].upper()
            where = f"{ddl_file.name}: {code[:80]}"
            if head == "CREATE":
                assert "IF NOT EXISTS" in code, where
            elif head == "DROP":
                assert code.upper().startswith(("DROP VIEW IF EXISTS", "DROP TABLE IF EXISTS")), where
            else:
                assert ddl_file.order >= 100, where
            assert code.upper().count("ADD COLUMN") == code.upper().count("ADD COLUMN IF NOT EXISTS"), where
            assert code.upper().count("DROP COLUMN") == code.upper().count("DROP COLUMN IF EXISTS"), where


def test_the_minute_rollup_migration_writes_one_rollup_everywhere() -> None:
    """110 states the rollup's SELECT three times (temporary view, history rebuild, final view):
    a difference between them would count the history and the live events differently."""
    [path] = [f.path for f in ddl.ddl_files("local") if f.order == 110]
    selects = [s[s.index("SELECT") :] for s in ddl.split_statements(path.read_text()) if "GROUP BY" in s]
    assert len(selects) == 3 and len(set(selects)) == 1


def test_misnamed_file_is_an_error_not_silently_skipped(tmp_path: Path) -> None:
    (tmp_path / "010_ok.sql").write_text("SELECT 1;")
    (tmp_path / "queue.sql").write_text("SELECT 1;")
    with pytest.raises(ddl.DdlError, match="queue.sql"):
        ddl.ddl_files("local", tmp_path)


def test_numeric_order_not_lexicographic(tmp_path: Path) -> None:
    for name in ("100_c.sql", "20_b.sql", "3_a.local.sql", "3_a.compose.sql", "notes.txt"):
        (tmp_path / name).write_text("SELECT 1;")
    assert [f.name for f in ddl.ddl_files("local", tmp_path)] == ["3_a.local.sql", "20_b.sql", "100_c.sql"]
    with pytest.raises(ddl.DdlError):
        ddl.ddl_files("production", tmp_path)


def test_split_keeps_semicolons_inside_quotes_and_comments() -> None:
    sql = """
    -- a comment; with a semicolon
    CREATE TABLE a (x String DEFAULT 'a;b') ENGINE = Null;
    /* block; comment */
    SELECT 'it''s; fine', "odd;name", `q;q`, 'esc\\';' ;
    -- trailing comment only
    """
    statements = ddl.split_statements(sql)
    assert len(statements) == 2
    assert statements[0].endswith("ENGINE = Null")
    assert "'a;b'" in statements[0]
    assert statements[1].startswith("/* block; comment */")
    assert "'esc\\';'" in statements[1]


def test_split_rejects_unterminated_quote() -> None:
    with pytest.raises(ddl.DdlError):
        ddl.split_statements("SELECT 'oops;")


def test_compose_queue_reads_the_enriched_topic_as_raw_blobs() -> None:
    (statement,) = [s for f, s in ddl.statements("compose") if f.mode == "compose"]
    for setting in (
        "kafka_broker_list = 'kafka:29092'",
        "kafka_topic_list = 'engagement_enriched'",
        "kafka_format = 'RawBLOB'",
        "kafka_handle_error_mode = 'stream'",
        "kafka_num_consumers = 1",
    ):
        assert setting in statement
    assert "ENGINE = Kafka" in statement
