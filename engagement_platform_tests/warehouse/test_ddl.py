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


def test_the_first_versions_are_idempotent() -> None:
    # what lets a database set up before migrations existed upgrade in place: there, these
    # versions are pending and run again as no-ops (later files need not be idempotent)
    for mode in files.MODES:
        for migration, statement in ddl_statements(mode, up_to=90):
            code = "\n".join(line for line in statement.splitlines() if not line.lstrip().startswith("--"))
            assert "IF NOT EXISTS" in code, f"{migration.label}: {code[:80]}"


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
