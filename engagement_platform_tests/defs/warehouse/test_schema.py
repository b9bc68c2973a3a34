"""The schema on a real ClickHouse: idempotent, compose DDL valid, views parse, route and deduplicate.

Compose mode's queue is a Kafka-engine table, which the local engine must never create; it
is syntax-checked with formatQuery, and everything behind it is exercised through the
local Null queue, which is the same SQL in both modes.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, date, datetime

import dagster as dg
import pytest

from engagement_platform.defs.warehouse import assets
from engagement_platform.migrations import clickhouse as migrations
from engagement_platform.migrations import files
from engagement_platform.streaming import enrich
from engagement_platform.warehouse import ddl, rollup
from engagement_platform_tests.defs.warehouse.helpers import (
    CONTENT_ID,
    content,
    count,
    enriched,
    event,
    fresh_database,
    raw,
    resource,
)
from engagement_platform_tests.harness import ddl_statements


@pytest.fixture
def db(wh_stack):  # type: ignore[no-untyped-def]
    with fresh_database(wh_stack.settings) as (name, client):
        yield client


def test_schema_asset_creates_database_and_applying_twice_changes_nothing(wh_stack) -> None:
    settings = wh_stack.settings
    name = f"schema_{uuid.uuid4().hex[:8]}"
    res = resource(settings, name)
    try:
        first = dg.materialize([assets.clickhouse_schema], resources={"clickhouse": res})
        assert first.success
        meta = first.asset_materializations_for_node("clickhouse__schema")[0].metadata
        assert meta["database_created"].value is True
        engines = meta["tables"].value
        assert engines["engagement_enriched_queue"] == "Null"
        assert engines["engagement_enriched"] == "ReplacingMergeTree"
        assert engines["content_engagement_minute"] == "AggregatingMergeTree"
        assert engines["engagement_enriched_errors"] == "MergeTree"
        client = res.client()
        try:
            before = ddl.tables(client, name)
            second = dg.materialize([assets.clickhouse_schema], resources={"clickhouse": res})
            assert second.success
            meta2 = second.asset_materializations_for_node("clickhouse__schema")[0].metadata
            assert meta2["database_created"].value is False
            assert meta2["applied_this_run"].value == [] and meta2["pending"].value == 0
            assert meta2["versions"].value == meta["versions"].value == meta["applied_this_run"].value
            after = ddl.tables(client, name)
        finally:
            client.close()
        assert {k: v["create"] for k, v in before.items()} == {k: v["create"] for k, v in after.items()}
        assert len(after) == len(engines)
    finally:
        admin = res.client(database="default")
        admin.command("DROP DATABASE IF EXISTS {db:Identifier}", parameters={"db": name})
        admin.close()


def test_compose_ddl_parses_and_declares_the_same_columns_as_local(db) -> None:
    compose = [s for m, s in ddl_statements("compose") if m.path.name.endswith(".compose.sql")]
    local = [s for m, s in ddl_statements("local") if m.path.name.endswith(".local.sql")]
    assert len(compose) == len(local) == 1
    formatted_compose = db.command("SELECT formatQuery({q:String})", parameters={"q": compose[0]})
    formatted_local = db.command("SELECT formatQuery({q:String})", parameters={"q": local[0]})
    assert "ENGINE = Kafka" in formatted_compose
    # identical up to the engine clause: the views behind it see the same columns in both modes
    strip_engine = lambda s: s.split("ENGINE = ")[0]  # noqa: E731
    assert strip_engine(formatted_compose) == strip_engine(formatted_local)
    # and every shared statement parses too (they are executed for real in the other tests)
    for _, statement in ddl_statements("compose"):
        db.command("SELECT formatQuery({q:String})", parameters={"q": statement})


def test_a_valid_record_becomes_a_typed_row_with_the_enrichers_values(db) -> None:
    records = [
        enrich.enrich(event(1), content(), "2026-11-29T19:46:13.300Z"),
        enrich.enrich(
            event(2, "click", duration_ms=None, user_id=None), content(None), "2026-11-29T19:46:14.000Z"
        ),
        enrich.enrich(
            event(3, "finish", duration_ms=299_000), None, "2026-11-29T19:46:15.000Z"
        ),  # content missing
    ]
    ddl.insert_raw(db, ddl.QUEUE, [raw(r) for r in records])
    columns = list(records[0])
    result = db.query(f"SELECT {', '.join(columns)} FROM engagement_enriched FINAL ORDER BY event_id")

    def as_json(value: object) -> object:
        if isinstance(value, datetime):
            return enrich.format_utc_ms(value)
        if isinstance(value, uuid.UUID):
            return str(value)
        return value

    got = [{c: as_json(v) for c, v in zip(columns, row, strict=True)} for row in result.result_rows]
    assert got == records
    assert count(db, "SELECT count() FROM engagement_enriched_errors") == 0


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"{not json", "bad_json"),
        (b"", "bad_json"),
        (b"[1, 2]", "wrong_type: message must be a JSON object"),
        (raw({k: v for k, v in enriched(1).items() if k != "event_id"}), "missing_field: event_id"),
        (raw(enriched(1, event_id="7")), "wrong_type: event_id"),
        (raw(enriched(1, event_id=-1)), "out_of_range: event_id"),
        (raw(enriched(1, content_id="not-a-uuid")), "bad_uuid: content_id"),
        (raw(enriched(1, user_id=42)), "bad_uuid: user_id"),
        (raw(enriched(1, event_type="Play")), "unknown_event_type"),
        (raw(enriched(1, event_type="a-b")), "unknown_event_type"),
        (raw(enriched(1, event_type="x" * 33)), "unknown_event_type"),
        (raw(enriched(1, event_type="")), "unknown_event_type"),
        (raw(enriched(1, event_type="share\n")), "unknown_event_type"),
        (raw(enriched(1, event_type=["play"])), "unknown_event_type"),
        (raw(enriched(1, event_ts="yesterday")), "bad_timestamp: event_ts"),
        (raw(enriched(1, event_ts="12")), "bad_timestamp: event_ts"),
        (raw(enriched(1, duration_ms=1.5)), "wrong_type: duration_ms"),
        (raw(enriched(1, duration_ms=-5)), "negative_duration"),
        (raw(enriched(1, engagement_seconds="1.5")), "wrong_type: engagement_seconds"),
        (raw(enriched(1, length_seconds=0)), "out_of_range: length_seconds"),
        (raw(enriched(1, publish_ts="soon")), "bad_timestamp: publish_ts"),
        (raw(enriched(1, enriched_at=None)), "missing_field: enriched_at"),
        (raw(enriched(1, content_missing="no")), "wrong_type: content_missing"),
    ],
)
def test_a_malformed_message_lands_in_errors_with_its_reason(db, message: bytes, reason: str) -> None:
    ddl.insert_raw(db, ddl.QUEUE, [message, raw(enriched(99))])
    rows = db.query("SELECT raw, reason FROM engagement_enriched_errors").result_rows
    assert rows == [(message.decode(), reason)]
    assert db.query("SELECT event_id FROM engagement_enriched").result_rows == [(99,)]


def test_any_event_type_of_1_to_32_lowercase_letters_digits_or_underscores_is_valid(db) -> None:
    types = ["share", "x" * 32, "a", "quiz_answer_2"]
    ddl.insert_raw(db, ddl.QUEUE, [raw(enriched(i, event_type=t)) for i, t in enumerate(types, 1)])
    rows = db.query("SELECT event_type FROM engagement_enriched FINAL ORDER BY event_id").result_rows
    assert [r[0] for r in rows] == types
    assert count(db, "SELECT count() FROM engagement_enriched_errors") == 0


# the minute rollup read back per (minute, event_type) and per minute, as its readers do
MINUTE_BY_TYPE = """
SELECT minute, event_type, uniqExactMerge(events), uniqExactMerge(unique_users),
       arraySum(mapValues(maxMapMerge(engagement_ms)))
FROM content_engagement_minute GROUP BY minute, event_type ORDER BY minute, event_type
"""
MINUTE_TOTALS = """
SELECT minute, sum(n), uniqExactMerge(users), arraySum(mapValues(maxMapMerge(ms)))
FROM (
    SELECT minute, event_type, uniqExactMerge(events) AS n, uniqExactMergeState(unique_users) AS users,
           maxMapMergeState(engagement_ms) AS ms
    FROM content_engagement_minute GROUP BY minute, event_type
)
GROUP BY minute ORDER BY minute
"""


def test_replaying_messages_changes_no_count(db) -> None:
    types = ["play", "pause", "finish", "click", "share"]  # share: a type the seed never had
    records = [
        enrich.enrich(
            event(
                i,
                types[i % 5],
                event_ts=f"2026-11-29T19:{i % 3:02d}:{i % 60:02d}.{i % 1000:03d}Z",
                duration_ms=None if i % 5 == 3 else i * 100,
                user_id=str(uuid.UUID(int=i % 7 + 1)),
            ),
            content(),
            "2026-11-29T20:00:00.000Z",
        )
        for i in range(1, 501)
    ]
    messages = [raw(r) for r in records]

    def snapshot() -> tuple:
        final = db.query(
            "SELECT count(), uniqExact(event_id), countIf(event_type = 'play'), uniqExact(user_id), "
            "sum(ifNull(duration_ms, 0)) FROM engagement_enriched FINAL"
        ).result_rows[0]
        return final, db.query(MINUTE_BY_TYPE).result_rows, db.query(MINUTE_TOTALS).result_rows

    ddl.insert_raw(db, ddl.QUEUE, messages)
    first = snapshot()
    assert first[0][:2] == (500, 500)
    ddl.insert_raw(db, ddl.QUEUE, messages)  # a whole replay
    ddl.insert_raw(db, ddl.QUEUE, messages[::-1][:200] + messages[:50])  # and partial, out of order
    assert snapshot() == first
    db.command("OPTIMIZE TABLE engagement_enriched FINAL")
    db.command("OPTIMIZE TABLE content_engagement_minute FINAL")
    assert snapshot() == first
    # the minute rollup agrees with FINAL, per minute and type (share included) and per minute
    by_type = db.query(
        "SELECT toStartOfMinute(event_ts) AS m, event_type, count(), uniqExact(user_id), "
        "sum(ifNull(duration_ms, 0)) FROM engagement_enriched FINAL GROUP BY m, event_type ORDER BY ALL"
    ).result_rows
    assert first[1] == by_type
    assert {r[1] for r in by_type} == set(types)
    totals = db.query(
        "SELECT toStartOfMinute(event_ts) AS m, count(), uniqExact(user_id), sum(ifNull(duration_ms, 0)) "
        "FROM engagement_enriched FINAL GROUP BY m ORDER BY m"
    ).result_rows
    assert first[2] == totals
    # the daily rollup, rebuilt from FINAL after the replays, counts each event once
    day = date(2026, 11, 29)
    written = rollup.rebuild_daily(
        db, day, datetime(2026, 11, 29, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)
    )
    assert written == {"rows": 1, "events": 500}
    [(by_type_day,)] = db.query("SELECT events_by_type FROM daily_content_engagement").result_rows
    assert by_type_day == {t: 100 for t in types}


def test_a_copy_with_its_content_wins_over_one_that_timed_out(db) -> None:
    with_content = enrich.enrich(event(7), content(), "2026-11-29T19:46:13.300Z")
    missing_later = enrich.enrich(event(7), None, "2026-11-29T19:50:00.000Z")
    ddl.insert_raw(db, ddl.QUEUE, [raw(with_content)])
    ddl.insert_raw(db, ddl.QUEUE, [raw(missing_later)])
    db.command("OPTIMIZE TABLE engagement_enriched FINAL")
    rows = db.query("SELECT event_id, content_missing, title FROM engagement_enriched").result_rows
    assert rows == [(7, False, "A Test Title")]


def test_daily_rebuild_is_idempotent_and_an_empty_day_clears_the_partition(db) -> None:
    ddl.insert_raw(db, ddl.QUEUE, [raw(enriched(i)) for i in range(1, 11)])
    day, start, end = assets.day_bounds("2026-11-29")
    assert rollup.rebuild_daily(db, day, start, end) == {"rows": 1, "events": 10}
    assert rollup.rebuild_daily(db, day, start, end) == {"rows": 1, "events": 10}
    assert count(db, "SELECT count() FROM daily_content_engagement") == 1
    row = db.query(
        "SELECT toString(content_id), events, events_by_type, unique_users, engagement_seconds, title "
        "FROM daily_content_engagement"
    ).result_rows
    assert row == [(CONTENT_ID, 10, {"play": 10}, 1, 15.0, "A Test Title")]
    db.command("TRUNCATE TABLE engagement_enriched")
    assert rollup.rebuild_daily(db, day, start, end) == {"rows": 0, "events": 0}
    assert count(db, "SELECT count() FROM daily_content_engagement") == 0
    assert (
        count(
            db, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name LIKE '%stage%'"
        )
        == 0
    )


# the daily rollup as versions 010-090 built it (one column per type), to fill a database of then
LEGACY_DAILY = """
INSERT INTO daily_content_engagement
SELECT toDate(event_ts) AS day, content_id, any(content_type), any(title), count() AS events,
       countIf(event_type = 'play'), countIf(event_type = 'pause'), countIf(event_type = 'finish'),
       countIf(event_type = 'click'), uniqExact(user_id), sum(ifNull(duration_ms, 0)) / 1000,
       avgOrNull(engagement_pct), now64(3, 'UTC')
FROM engagement_enriched FINAL GROUP BY day, content_id
"""
LEGACY_TYPES = ("play", "pause", "finish", "click")


def test_a_database_of_the_first_versions_keeps_its_figures_through_the_migrations(
    wh_stack, tmp_path
) -> None:
    for m in files.clickhouse_migrations("local"):
        if m.version < 100:  # the schema as it was before the open vocabulary
            shutil.copy(m.path, tmp_path / m.path.name)
    with fresh_database(wh_stack.settings, "legacy", tmp_path) as (_name, db):
        records = [
            enrich.enrich(
                event(
                    i,
                    LEGACY_TYPES[i % 4],
                    event_ts=f"2026-11-{28 + i % 2}T19:{i % 3:02d}:{i % 60:02d}.000Z",
                    duration_ms=None if i % 4 == 3 else i * 10,
                    content_id=str(uuid.UUID(int=i // 7 % 3 + 1)),
                    user_id=str(uuid.UUID(int=i % 11 + 1)),
                ),
                content(),
                "2026-11-29T20:00:00.000Z",
            )
            for i in range(1, 401)
        ]
        ddl.insert_raw(db, ddl.QUEUE, [raw(r) for r in records])
        db.command(LEGACY_DAILY)
        old_minute = db.query(
            "SELECT minute, toString(content_id), uniqExactMerge(events), uniqExactIfMerge(plays), "
            "uniqExactIfMerge(pauses), uniqExactIfMerge(finishes), uniqExactIfMerge(clicks), "
            "uniqExactMerge(unique_users), arraySum(mapValues(maxMapMerge(engagement_ms))) "
            "FROM content_engagement_minute GROUP BY ALL ORDER BY ALL"
        ).result_rows
        old_daily = db.query(
            "SELECT day, toString(content_id), events, plays, pauses, finishes, clicks, unique_users, "
            "engagement_seconds, built_at FROM daily_content_engagement ORDER BY ALL"
        ).result_rows
        assert len(old_minute) == 18 and len(old_daily) == 6  # 2 days x 3 minutes x 3 contents

        def by_type(counts: tuple) -> dict[str, int]:
            return {t: n for t, n in zip(LEGACY_TYPES, counts, strict=True) if n}

        expected_minute = [(m, c, n, by_type(types), u, ms) for m, c, n, *types, u, ms in old_minute]
        expected_daily = [(*r[:3], by_type(r[3:7]), *r[7:]) for r in old_daily]

        def figures() -> tuple[list, list]:
            minute = db.query(
                "SELECT minute, c, sum(n), CAST(mapFromArrays(groupArray(event_type), groupArray(n)), "
                "'Map(String, UInt64)'), uniqExactMerge(users), arraySum(mapValues(maxMapMerge(ms))) "
                "FROM (SELECT minute, toString(content_id) AS c, event_type, uniqExactMerge(events) AS n, "
                "uniqExactMergeState(unique_users) AS users, maxMapMergeState(engagement_ms) AS ms "
                "FROM content_engagement_minute GROUP BY ALL) GROUP BY minute, c ORDER BY minute, c"
            ).result_rows
            daily = db.query(
                "SELECT day, toString(content_id), events, events_by_type, unique_users, engagement_seconds, "
                "built_at FROM daily_content_engagement ORDER BY ALL"
            ).result_rows
            return minute, daily

        applied, _ = migrations.apply(db, "local", wh_stack.settings.ep_home)  # what the asset runs
        assert [m.version for m in applied] == [
            m.version for m in files.clickhouse_migrations("local") if m.version >= 100
        ]
        assert figures() == (expected_minute, expected_daily)
        columns = {r[0] for r in db.query("DESCRIBE TABLE daily_content_engagement").result_rows}
        assert "events_by_type" in columns and not columns & {"plays", "pauses", "finishes", "clicks"}
        assert migrations.apply(db, "local", wh_stack.settings.ep_home)[0] == []  # nothing left
        assert figures() == (expected_minute, expected_daily)
        assert (
            count(
                db,
                "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name LIKE '%next%'",
            )
            == 0
        )

        # a type the old schema refused is now counted
        ddl.insert_raw(db, ddl.QUEUE, [raw(enriched(1000, event_type="share"))])
        assert count(db, "SELECT count() FROM engagement_enriched_errors") == 0
        assert (
            count(
                db, "SELECT uniqExactMerge(events) FROM content_engagement_minute WHERE event_type = 'share'"
            )
            == 1
        )
