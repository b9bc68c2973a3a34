"""The parse view's typed fast path (clickhouse_ddl/130_parse_fast_path.sql) on a real ClickHouse.

One corpus goes through the real chain twice, each in a database of its own: the schema as it
was before the fast path (versions up to 120: every message through the per-field checks) and
the current one. Each error reason of the checks has a bad message; each must land in
engagement_enriched_errors with the same reason in both, and every valid message as the same
typed row, once under FINAL though it was sent twice. A probe view on the fast path's Null
table records which messages took it, so the tests also show that the enricher's records do.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from engagement_platform.migrations import files
from engagement_platform.streaming import enrich
from engagement_platform.warehouse import ddl
from engagement_platform_tests.defs.warehouse.helpers import content, enriched, event, fresh_database, raw
from engagement_platform_tests.harness import StackHandle

FAST_PATH = 130
AT = "2026-11-29T19:46:13.300Z"  # enriched_at
COLUMNS = (
    "event_id, content_id, user_id, event_type, event_ts, device, duration_ms, engagement_seconds, "
    "engagement_pct, content_type, title, slug, length_seconds, publish_ts, source_ts, enriched_at, "
    "content_missing"
)


def without(field: str, id_: int) -> bytes:
    return raw({k: v for k, v in enriched(id_).items() if k != field})


def swapped(id_: int, field: str, text: str) -> bytes:
    """The enricher's bytes with one field's JSON text replaced verbatim (a number's exact text)."""
    record = enriched(id_)
    before = f'"{field}":'.encode() + orjson.dumps(record[field])
    assert before in raw(record)
    return raw(record).replace(before, f'"{field}":{text}'.encode(), 1)


# One message per error reason of the checks (and a few more of the trickiest), each with its own
# event id. The messages that deviate only in one value keep the enricher's exact shape
# everywhere else: the fast path must still refuse them.
REASONS: list[tuple[bytes, str]] = [
    (b"{not json", "bad_json"),
    (raw(enriched(100))[:-1] + b',"extra":}', "bad_json"),  # the fast shape, broken after it
    (b"[1, 2]", "wrong_type: message must be a JSON object"),
    (without("event_id", 102), "missing_field: event_id"),
    (raw(enriched(103, event_id="103")), "wrong_type: event_id"),
    (raw(enriched(105, event_id=-105)), "out_of_range: event_id"),
    (swapped(106, "event_id", str(2**63)), "out_of_range: event_id"),
    (without("content_id", 107), "missing_field: content_id"),
    (raw(enriched(108, content_id="not-a-uuid")), "bad_uuid: content_id"),
    (raw(enriched(109, user_id=42)), "bad_uuid: user_id"),
    (raw(enriched(110, user_id="nope")), "bad_uuid: user_id"),
    (without("event_type", 111), "missing_field: event_type"),
    (raw(enriched(112, event_type="Play")), "unknown_event_type"),
    (raw(enriched(113, event_type="x" * 33)), "unknown_event_type"),
    (without("event_ts", 114), "missing_field: event_ts"),
    (raw(enriched(115, event_ts="2026-02-30T19:46:13.123Z")), "bad_timestamp: event_ts"),
    (raw(enriched(116, event_ts="12")), "bad_timestamp: event_ts"),
    (raw(enriched(117, device=7)), "wrong_type: device"),
    (raw(enriched(118, duration_ms=1.5)), "wrong_type: duration_ms"),
    (raw(enriched(120, duration_ms=-5)), "negative_duration"),
    (raw(enriched(121, engagement_seconds="1.5")), "wrong_type: engagement_seconds"),
    (raw(enriched(122, engagement_pct=True)), "wrong_type: engagement_pct"),
    (raw(enriched(123, content_type=["podcast"])), "wrong_type: content_type"),
    (raw(enriched(124, title=5)), "wrong_type: title"),
    (raw(enriched(125, slug={"a": 1})), "wrong_type: slug"),
    (raw(enriched(126, length_seconds="300")), "wrong_type: length_seconds"),
    (raw(enriched(127, length_seconds=0)), "out_of_range: length_seconds"),
    (raw(enriched(128, length_seconds=2**32)), "out_of_range: length_seconds"),
    (raw(enriched(129, publish_ts="soon")), "bad_timestamp: publish_ts"),
    (raw(enriched(130, source_ts=1764445573300)), "bad_timestamp: source_ts"),
    (without("enriched_at", 131), "missing_field: enriched_at"),
    (raw(enriched(132, enriched_at="2026-13-01T00:00:00.000Z")), "bad_timestamp: enriched_at"),
    (without("content_missing", 133), "missing_field: content_missing"),
    (raw(enriched(134, content_missing=0)), "wrong_type: content_missing"),
]


def valid_messages() -> tuple[list[bytes], list[bytes]]:
    """Valid messages: those the enricher writes (which must take the fast path), then others the
    checks accept that deviate from its bytes (which need not)."""
    written = [
        raw(enrich.enrich(event(1), content(), "2026-11-29T19:46:13.300Z")),
        raw(
            enrich.enrich(
                event(2, "click", duration_ms=None, user_id=None), content(None), "2026-11-29T19:46:14.000Z"
            )
        ),
        raw(enrich.enrich(event(3, "finish", duration_ms=300_000), None, "2026-11-29T19:46:15.000Z")),
        raw(
            enrich.enrich(event(4, duration_ms=56_000), content(200), "2026-11-29T19:46:16.000Z")
        ),  # 56.0, 28.0
        raw(enriched(5, event_type="quiz_answer_2", title="Ünïcødé — ✓", device=None)),
        raw(enriched(0)),
        raw(enriched(999_999_999_999_999_999)),  # 18 digits
        raw(enriched(8, length_seconds=4_294_967_295)),
        raw(enriched(9) | {"app_version": "7.1"}),  # a column enrich carries verbatim
    ]
    others = [
        raw(enriched(2**63 - 1)),  # 19 digits, still an Int64
        raw(enriched(21, title='He said "hi"\\ \u0001')),  # escaped
        swapped(22, "engagement_seconds", "1"),  # an integer where the enricher writes 1.0
        swapped(23, "engagement_seconds", "1.5e0"),
        raw(enriched(29, engagement_pct=1e-05)),  # orjson: 1e-05
        # the checks read values from ClickHouse's raw text of each field, which writes a double
        # that holds an integer without its point: today they take these as integers
        swapped(30, "event_id", "30.0"),
        swapped(31, "duration_ms", "1500.0"),
        orjson.dumps(enriched(24), option=orjson.OPT_SORT_KEYS),  # other key order
        orjson.dumps(enriched(25), option=orjson.OPT_INDENT_2),  # whitespace
        raw(enriched(26, event_ts="2026-11-29 19:46:13+01:00")),
        raw(enriched(27, content_id=enriched(27)["content_id"].upper())),
        raw(enriched(28))[:-1] + b',"event_id":99}',  # a duplicate key: the first one counts
    ]
    return written, others


def reasons_in_the_checks() -> set[str]:
    """Every reason the current checks can give, read from their SQL (the checked view)."""
    [path] = [m.path for m in files.clickhouse_migrations("local") if m.version == FAST_PATH]
    [view] = [s for s in ddl.split_statements(path.read_text()) if "engagement_enriched_checked_mv TO" in s]
    checks = ddl.strip_comments(view[view.index("multiIf(") : view.index(") AS reason")])
    return set(re.findall(r"'([^']+)',$", checks, re.M))  # multiIf's values: the last literal of a line


def old_schema(directory: Path) -> Path:
    """The versions before the fast path, for the database every message is compared with."""
    for m in files.clickhouse_migrations("local"):
        if m.version < FAST_PATH:
            shutil.copy(m.path, directory / m.path.name)
    return directory


def probe(client: Client) -> None:
    """Record which messages the fast path takes (a Memory table fed from its Null table)."""
    client.command("CREATE TABLE fast_probe (raw String, fast Bool) ENGINE = Memory")
    client.command(
        "CREATE MATERIALIZED VIEW fast_probe_mv TO fast_probe AS "
        "SELECT raw, fast FROM engagement_enriched_shaped"
    )


class Loaded:
    """The corpus loaded into one database: what the tests read back."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def errors(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for message, reason in self.client.query(f"SELECT raw, reason FROM {ddl.ERRORS}").result_rows:
            found.setdefault(message, []).append(reason)
        return found

    def final(self) -> list[tuple[Any, ...]]:
        return self.client.query(f"SELECT {COLUMNS} FROM {ddl.ENRICHED} FINAL ORDER BY event_id").result_rows


@pytest.fixture(scope="module")
def loaded(stack: StackHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Loaded, Loaded]]:
    """(before the fast path, now), each loaded with the bad messages once and the valid ones
    twice (a replay), in two inserts."""
    written, others = valid_messages()
    bad = [m for m, _ in REASONS]
    old_dir = old_schema(tmp_path_factory.mktemp("before_fast_path"))
    with (
        fresh_database(stack.settings, "parse_old", old_dir) as (_old_name, old),
        fresh_database(stack.settings, "parse_new") as (_new_name, new),
    ):
        probe(new)
        for client in (old, new):
            ddl.insert_raw(client, ddl.QUEUE, bad + written + others)
            ddl.insert_raw(client, ddl.QUEUE, (written + others)[::-1])
        yield Loaded(old), Loaded(new)


def test_each_reason_of_the_checks_has_a_bad_message_here() -> None:
    assert reasons_in_the_checks() == {reason for _, reason in REASONS}


@pytest.mark.parametrize(("message", "reason"), REASONS, ids=[f"{i}-{r}" for i, (_, r) in enumerate(REASONS)])
def test_a_bad_message_keeps_its_reason(loaded: tuple[Loaded, Loaded], message: bytes, reason: str) -> None:
    old, new = loaded
    text = message.decode(errors="replace")
    assert new.errors()[text] == [reason]
    assert old.errors()[text] == [reason]


def test_nothing_else_is_an_error_and_nothing_is_lost(loaded: tuple[Loaded, Loaded]) -> None:
    old, new = loaded
    assert sorted(new.errors()) == sorted(old.errors())
    assert sum(len(r) for r in new.errors().values()) == len(REASONS)


def test_valid_messages_land_typed_once_as_before(loaded: tuple[Loaded, Loaded]) -> None:
    old, new = loaded
    written, others = valid_messages()
    assert not {m.decode() for m in written + others} & set(new.errors())
    rows = new.final()
    assert rows == old.final()
    assert len(rows) == len(written) + len(others)
    by_id = {row[0]: row for row in rows}
    # the enricher's values, typed
    first = enrich.enrich(event(1), content(), AT)
    assert enrich.format_utc_ms(by_id[1][4]) == first["event_ts"]
    assert (str(by_id[1][1]), by_id[1][6], by_id[1][8], by_id[1][12]) == (
        first["content_id"],
        first["duration_ms"],
        first["engagement_pct"],
        first["length_seconds"],
    )
    assert by_id[2][2] is None and by_id[2][6] is None and by_id[2][12] is None
    assert by_id[3][16] is True and by_id[3][10] is None
    assert by_id[4][7] == 56.0 and by_id[4][8] == 28.0
    assert by_id[5][3] == "quiz_answer_2" and by_id[5][10] == "Ünïcødé — ✓"
    assert by_id[8][12] == 4_294_967_295 and by_id[29][8] == 1e-05
    assert by_id[21][10] == 'He said "hi"\\ \u0001'
    assert by_id[28][0] == 28 and by_id[30][0] == 30 and by_id[31][6] == 1500
    # sent twice, kept once
    assert new.client.command(f"SELECT count() FROM {ddl.ENRICHED}") == 2 * len(rows)


def test_the_enrichers_records_take_the_fast_path_and_bad_ones_never(loaded: tuple[Loaded, Loaded]) -> None:
    _old, new = loaded
    written, others = valid_messages()
    fast = dict(new.client.query("SELECT raw, fast FROM fast_probe").result_rows)
    assert all(fast[m.decode()] for m in written), [m for m in written if not fast[m.decode()]]
    assert not any(fast[m.decode(errors="replace")] for m, _ in REASONS)
    # an escaped string, another key order, whitespace, an integral double: the checks decide
    by_id = {orjson.loads(m)["event_id"]: fast[m.decode()] for m in others}
    assert [by_id[i] for i in (21, 24, 25, 30, 31)] == [False] * 5
