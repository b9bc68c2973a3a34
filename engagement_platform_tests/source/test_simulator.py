"""The simulator: realistic, reproducible events; bulk inserts; one-line errors."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from datetime import UTC, datetime

import psycopg2
import pytest

from engagement_platform.domain import KNOWN_EVENT_TYPES
from engagement_platform.source.simulator import (
    EVENT_TYPE_CHECK,
    KNOWN_WEIGHTS,
    OTHER_TYPE_WEIGHT,
    EventGenerator,
    event_columns,
    event_weights,
    make_content,
    parse_event_types,
)

CLI = [sys.executable, "-m", "engagement_platform.cli", "simulate"]


def contents(n: int = 30) -> list:
    rng = random.Random(7)
    now = datetime(2026, 11, 29, tzinfo=UTC)
    return [make_content(rng, i, now) for i in range(n)]


def test_events_are_realistic() -> None:
    gen = EventGenerator(contents(), seed=1)
    events = gen.batch(5000, lambda: datetime(2026, 11, 29, 12, tzinfo=UTC))
    by_type = {t: [e for e in events if e.event_type == t] for t in ("play", "pause", "finish", "click")}
    assert all(by_type.values()), "every event type occurs"
    assert all(e.duration_ms is None for e in by_type["click"])
    assert all(e.duration_ms is not None and e.duration_ms >= 0 for e in by_type["play"])
    lengths = {c.id: c.length_seconds for c in gen.contents}
    for e in by_type["finish"]:
        if lengths[e.content_id]:
            assert e.duration_ms >= 0.85 * lengths[e.content_id] * 1000 - 1
    assert len({e.device for e in events}) > 3
    assert all({"session_id", "app_version"} <= set(e.raw_payload) for e in events)


def test_other_event_types_get_a_small_weight_and_no_duration() -> None:
    types = ("play", "pause", "finish", "click", "share")
    assert event_weights(types) == (*KNOWN_WEIGHTS.values(), OTHER_TYPE_WEIGHT)
    events = EventGenerator(contents(), seed=4, event_types=types).batch(
        20_000, lambda: datetime(2026, 11, 29, 12, tzinfo=UTC)
    )
    shares = [e for e in events if e.event_type == "share"]
    assert all(e.duration_ms is None for e in shares)
    share_of_all = len(shares) / len(events)
    assert 0.03 < share_of_all < 0.07  # 0.05 against the known types' 1.0: about 4.8%
    plays = sum(e.event_type == "play" for e in events) / len(events)
    assert 0.40 < plays < 0.46  # the known mix is kept, scaled by 1/1.05
    only_new = EventGenerator(contents(), seed=4, event_types=("share", "seek")).batch(
        50, lambda: datetime.now(UTC)
    )
    assert {e.event_type for e in only_new} == {"share", "seek"}


def test_default_types_write_what_the_seed_wrote() -> None:
    ts = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731
    explicit = EventGenerator(contents(), seed=3, event_types=("play", "pause", "finish", "click")).batch(
        300, ts
    )
    assert EventGenerator(contents(), seed=3).batch(300, ts) == explicit
    assert parse_event_types("play,pause,finish,click") == KNOWN_EVENT_TYPES


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "give at least one type"),
        ("Play", "'Play' is not an event type: an event type is 1-32 characters of [a-z0-9_]"),
        ("play,a b", "'a b' is not an event type"),
        ("play,,pause", "'' is not an event type"),
        ("x" * 33, "is not an event type"),
        ("play,share,play", "'play' is given twice"),
    ],
)
def test_bad_event_types_are_refused(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_event_types(raw)


def test_same_seed_same_events() -> None:
    ts = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731
    a = EventGenerator(contents(), seed=3).batch(100, ts)
    b = EventGenerator(contents(), seed=3).batch(100, ts)
    assert a == b


def test_insert_columns_carry_json_text_and_nulls() -> None:
    gen = EventGenerator(contents(), seed=2)
    events = gen.batch(200, lambda: datetime(2026, 1, 1, tzinfo=UTC))
    columns = event_columns(events)
    assert len(columns) == 7 and all(len(c) == 200 for c in columns)
    click = next(i for i, e in enumerate(events) if e.duration_ms is None)
    assert columns[4][click] is None  # NULL duration
    assert json.loads(str(columns[6][0])) == events[0].raw_payload
    assert columns[0][0] == str(events[0].content_id)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--events", "0"], "--events: must be at least 1"),
        (["--rate", "-5"], "--rate: must be greater than 0"),
        (["--unknown-flag"], "unrecognized arguments: --unknown-flag"),
        (["--events", "10", "--rate", "5"], "--events and --rate exclude each other"),
        (["--content", "many"], "expected a whole number"),
        (["--event-types", ""], "--event-types: give at least one type"),
        (["--event-types", "Play"], "--event-types: 'Play' is not an event type"),
        (["--event-types", "a b"], "--event-types: 'a b' is not an event type"),
        (["--event-types", "click,click"], "--event-types: 'click' is given twice"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = subprocess.run([*CLI, *args], capture_output=True, text=True)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr


def test_bulk_mode_writes_exactly_n_events(stack, source_schema) -> None:
    conn = psycopg2.connect(stack.settings.postgres_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 0) FROM engagement_events")
            before = cur.fetchone()[0]
        stack.cli("simulate", "--content", "20", "--events", "2500", "--seed", "5")
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*), count(DISTINCT content_id) FROM engagement_events WHERE id > %s", (before,)
            )
            count, distinct_content = cur.fetchone()
            cur.execute("SELECT count(*) FROM content")
            assert cur.fetchone()[0] >= 20
    finally:
        conn.close()
    assert count == 2500
    assert distinct_content > 1


def test_each_event_is_a_wal_record_of_its_own(stack, source_schema) -> None:
    """Every event the simulator writes has an LSN of its own. COPY would put many rows in one
    WAL record (one LSN), and Debezium 3.7 skips the rest of such a record's rows when it resumes
    from an offset at its first row (docs/design/delivery.md): events lost after a restart."""
    conn = psycopg2.connect(stack.settings.postgres_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            # temporary: dropped with this session; sees only what is written from now on
            cur.execute("SELECT pg_create_logical_replication_slot('simulate_lsns', 'pgoutput', true)")
            stack.cli("simulate", "--content", "20", "--events", "300", "--seed", "9")
            cur.execute(
                "SELECT lsn, count(*) FROM pg_logical_slot_peek_binary_changes('simulate_lsns', NULL, NULL, "
                "'proto_version', '1', 'publication_names', 'engagement_publication') "
                "WHERE get_byte(data, 0) = ascii('I') GROUP BY lsn"
            )
            per_lsn = dict(cur.fetchall())
    finally:
        conn.close()
    assert sum(per_lsn.values()) >= 300  # the events, and any content rows it created
    shared = {lsn: n for lsn, n in per_lsn.items() if n > 1}
    assert not shared, f"rows sharing an LSN: {shared}"


def test_backfill_spreads_events_over_past_days(stack, source_schema) -> None:
    conn = psycopg2.connect(stack.settings.postgres_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 0) FROM engagement_events")
            before = cur.fetchone()[0]
        stack.cli("simulate", "--backfill-days", "3", "--events", "3000")
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*), count(DISTINCT date_trunc('day', event_ts AT TIME ZONE 'UTC')), "
                "min(event_ts) > now() - interval '3 days 1 minute', max(event_ts) <= now() "
                "FROM engagement_events WHERE id > %s",
                (before,),
            )
            count, days, lower_ok, upper_ok = cur.fetchone()
    finally:
        conn.close()
    assert count == 3000 and days >= 3 and lower_ok and upper_ok


def test_a_type_the_check_refuses_stops_before_writing(stack, source_schema) -> None:
    """`share` is not in init.sql's CHECK: one line naming it and the migration to add it,
    exit 1, and not one row written (not even for the types Postgres accepts)."""
    counts = (
        "SELECT (SELECT count(*) FROM engagement_events), (SELECT count(*) FROM content), "
        "(SELECT last_value FROM engagement_events_id_seq)"  # the probe never takes an id either
    )
    conn = psycopg2.connect(stack.settings.postgres_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(counts)
            before = cur.fetchone()
        conn.rollback()
        result = stack.cli("simulate", "--events", "500", "--event-types", "play,share,seek", check=False)
        with conn.cursor() as cur:
            cur.execute(counts)
            after = cur.fetchone()
    finally:
        conn.close()
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "refuses event type 'share', 'seek'" in lines[0] and EVENT_TYPE_CHECK in lines[0]
    assert "engagement-platform migrate new postgres NAME" in lines[0]
    assert after == before
