"""Routing a statement from its first bytes, and the Kafka-engine refusal: pure units."""

from __future__ import annotations

import pytest

from engagement_platform.local_stack.clickhouse_http.sql_scan import (
    NOT_A_DATA_INSERT,
    InsertSplit,
    creates_kafka_table,
    first_keyword,
    insert_target,
    normalize_sql,
    split_insert,
    trailing_format,
)


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
    split = split_insert(sql, final=True)
    assert isinstance(split, InsertSplit)
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
    assert split_insert(sql, final=True) == NOT_A_DATA_INSERT


def test_split_insert_waits_for_more_input_at_a_boundary() -> None:
    assert split_insert(b"INSERT INTO t FORM", final=False) is None
    assert split_insert(b"INSERT INTO t FORMAT Native", final=False) is None  # newline may follow
    assert split_insert(b"INSERT INTO t VALUES (", final=False) == NOT_A_DATA_INSERT


def test_kafka_detection_ignores_strings_and_comments_but_not_quoting() -> None:
    assert creates_kafka_table(normalize_sql(b"CREATE TABLE k (a Int8) ENGINE=Kafka()"))
    assert creates_kafka_table(normalize_sql(b"CREATE TABLE k (a Int8) ENGINE /* x */ = `Kafka`"))
    assert not creates_kafka_table(normalize_sql(b"SELECT 'ENGINE = Kafka'"))
    assert not creates_kafka_table(normalize_sql(b"SELECT 1 -- ENGINE = Kafka"))


def test_trailing_format_and_first_keyword() -> None:
    assert trailing_format(normalize_sql(b"SELECT 1\n FORMAT Native")) == "Native"
    assert trailing_format(normalize_sql(b"SELECT 1 FORMAT JSON SETTINGS max_threads=1;")) == "JSON"
    assert trailing_format(normalize_sql(b"SELECT 'FORMAT CSV'")) is None
    assert first_keyword(normalize_sql(b"/* hi */ (select 1)")) == "SELECT"


@pytest.mark.parametrize(
    ("statement", "target"),
    [
        (b"INSERT INTO q (raw) FORMAT RowBinary", (None, "q")),
        (b'insert into TABLE `db`."q x" VALUES (1)', ("db", "q x")),
        (b"/* c */ INSERT INTO db . q SELECT 1", ("db", "q")),
        (b"INSERT INTO FUNCTION file('x') VALUES (1)", None),
        (b"SELECT 1", None),
        (b"INSERT q VALUES (1)", None),
    ],
)
def test_insert_target_names_the_table_an_insert_writes(
    statement: bytes, target: tuple[str | None, str] | None
) -> None:
    assert insert_target(statement) == target
