"""Pure tests of clickhouse_ddl/'s files and how they are split into statements (naming and
discovery: engagement_platform_tests/migrations/test_files.py)."""

from __future__ import annotations

import pytest

from engagement_platform.migrations import files
from engagement_platform.warehouse import ddl
from engagement_platform_tests.harness import ddl_statements


def test_files_are_ordered_and_filtered_by_mode() -> None:
    local = [m.path.name for m in files.clickhouse_migrations("local")]
    compose = [m.path.name for m in files.clickhouse_migrations("compose")]
    assert local[0] == "010_queue.local.sql" and compose[0] == "010_queue.compose.sql"
    assert not any(".compose." in n for n in local) and not any(".local." in n for n in compose)
    # everything after the queue is identical in both modes
    assert local[1:] == compose[1:]
    assert "090_consume.sql" in local  # the view that starts consumption


def test_every_statement_can_run_twice() -> None:
    """ClickHouse has no transactions: a file that failed half-way runs again whole. So creations
    say IF NOT EXISTS, drops IF EXISTS, and anything else (rebuilds, swaps, column
    materialization) appears only after 090, written to be repeatable. The first versions being
    no-ops where they exist is also what lets a database set up before migrations existed
    upgrade in place."""
    for mode in files.MODES:
        for migration, statement in ddl_statements(mode):
            code = " ".join(ddl.strip_comments(statement).split())
            head = code.split(" ", 1)[0].upper()
            where = f"{migration.label}: {code[:80]}"
            if head == "CREATE":
                assert "IF NOT EXISTS" in code, where
            elif head == "DROP":
                assert code.upper().startswith(("DROP VIEW IF EXISTS", "DROP TABLE IF EXISTS")), where
            else:
                assert migration.version >= 100, where
            assert code.upper().count("ADD COLUMN") == code.upper().count("ADD COLUMN IF NOT EXISTS"), where
            assert code.upper().count("DROP COLUMN") == code.upper().count("DROP COLUMN IF EXISTS"), where


def test_the_minute_rollup_migration_writes_one_rollup_everywhere() -> None:
    """110 states the rollup's SELECT three times (temporary view, history rebuild, final view):
    a difference between them would count the history and the live events differently."""
    [path] = [m.path for m in files.clickhouse_migrations("local") if m.version == 110]
    selects = [s[s.index("SELECT") :] for s in ddl.split_statements(path.read_text()) if "GROUP BY" in s]
    assert len(selects) == 3 and len(set(selects)) == 1


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
    (statement,) = [s for m, s in ddl_statements("compose") if m.path.name.endswith(".compose.sql")]
    for setting in (
        "kafka_broker_list = 'kafka:29092'",
        "kafka_topic_list = 'engagement_enriched'",
        "kafka_format = 'RawBLOB'",
        "kafka_handle_error_mode = 'stream'",
        "kafka_num_consumers = 1",
    ):
        assert setting in statement
    assert "ENGINE = Kafka" in statement


def test_the_title_rollups_backfill_history_with_the_select_of_their_views() -> None:
    """140 states each rollup's SELECT twice (its view, the history insert): a difference would
    count history and live events differently."""
    [path] = [m.path for m in files.clickhouse_migrations("local") if m.version == 140]
    statements = [" ".join(ddl.strip_comments(s).split()) for s in ddl.split_statements(path.read_text())]
    views = {
        s.split(" TO ")[1].split()[0]: s[s.index(" AS SELECT") + 4 :] for s in statements if " VIEW " in s
    }
    inserts = {s.split()[2]: s[s.index("SELECT") :] for s in statements if s.startswith("INSERT INTO")}
    assert len(views) == 5 and views == inserts
