"""The rollups of clickhouse_ddl/140 and the queries that read them (warehouse/title.py, the unique
users of warehouse/queries.py), on a real ClickHouse: each figure equals the same figure computed
from engagement_enriched FINAL, after the migration's backfill of history and after live inserts
with replays."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from engagement_platform.migrations import clickhouse as migrations
from engagement_platform.migrations import files
from engagement_platform.warehouse import ddl, queries, title
from engagement_platform.warehouse.queries import Filters
from engagement_platform.warehouse.rollup import PCT_BUCKET
from engagement_platform_tests.defs.warehouse.helpers import fresh_database
from engagement_platform_tests.harness import StackHandle

CONTENTS = [uuid.UUID(int=i + 1) for i in range(3)]
TYPES = ("play", "pause", "finish", "click", "share")
DEVICES = ("ios", "web", None, "tv_box")
DAY = date(2026, 3, 10)
LENGTH_S = 600
COLUMNS = (
    "event_id", "content_id", "user_id", "event_type", "event_ts", "device", "duration_ms",
    "engagement_seconds", "engagement_pct", "content_type", "title", "length_seconds",
    "enriched_at", "content_missing",
)  # fmt: skip


def rows(first: int, count: int, *, missing: bool = False) -> list[list[Any]]:
    """Enriched rows ``first``.. over two days (the second one ``DAY``); ``missing``: the copies
    enriched without their content (no title, type or pct), an earlier enrichment."""
    out = []
    for n in range(first, first + count):
        kind = TYPES[n * 7 % len(TYPES)]
        ts = datetime(2026, 3, 9, 22, tzinfo=UTC) + timedelta(minutes=n * 13 % 240, seconds=n % 60)
        duration = None if kind == "click" else n * 4111 % (LENGTH_S * 1000)
        content = CONTENTS[n % 3]
        out.append(
            [
                n,
                content,
                None if n % 10 == 0 else uuid.UUID(int=1000 + n * 5 % 23),
                kind,
                ts,
                DEVICES[n % 4],
                duration,
                None if duration is None else duration / 1000,
                None if duration is None or missing else round(100 * duration / 1000 / LENGTH_S, 2),
                None if missing else ("video" if content == CONTENTS[0] else "podcast"),
                None if missing else f"Title {content.int}",
                None if missing else LENGTH_S,
                ts + timedelta(seconds=1 if missing else 2),
                missing,
            ]
        )
    return out


def insert(client: Client, data: list[list[Any]]) -> None:
    client.insert(ddl.ENRICHED, data, column_names=list(COLUMNS))


@pytest.fixture
def before_140(stack: StackHandle, tmp_path: Path) -> Iterator[Client]:
    """A database with every migration before 140, holding history; 140 not applied yet."""
    for m in files.clickhouse_migrations("local"):
        if m.version < 140:
            shutil.copy(m.path, tmp_path / m.path.name)
    with fresh_database(stack.settings, "title", tmp_path) as (_name, client):
        yield client


def expected(client: Client, content: uuid.UUID, f: Filters) -> dict[str, Any]:
    """The title page's figures from engagement_enriched FINAL, the source of truth."""
    where = (
        "content_id = {content:UUID} AND event_ts >= toDateTime64({start:Date}, 3, 'UTC')"
        " AND event_ts < toDateTime64({end:Date} + 1, 3, 'UTC')"
    )
    p = {"content": content, "start": f.start, "end": f.end, "bucket": f.bucket_seconds}
    final = f"FROM {ddl.ENRICHED} FINAL WHERE {where}"

    def q(sql: str) -> list[tuple]:
        return [tuple(r) for r in client.query(sql, parameters=p).result_rows]

    [summary] = q(
        "SELECT count(), uniqExact(user_id), uniqExactIf(user_id, event_type = 'play'), "
        "length(arrayIntersect(groupUniqArrayIf(user_id, event_type = 'play'), "
        f"groupUniqArrayIf(user_id, event_type = 'finish'))) {final}"
    )
    return {
        "events": q(
            "SELECT toStartOfInterval(toDateTime(event_ts, 'UTC'), toIntervalSecond({bucket:UInt32})) AS b, "
            f"event_type, count() {final} GROUP BY b, event_type ORDER BY b, event_type"
        ),
        "completion": q(
            f"SELECT {PCT_BUCKET} AS p, count() {final} AND engagement_pct IS NOT NULL GROUP BY p ORDER BY p"
        ),
        "devices": q(
            f"SELECT ifNull(device, 'unknown') AS d, count() AS n {final} GROUP BY d ORDER BY n DESC, d"
        ),
        "summary": title.Summary(*(int(v) for v in summary)),
    }


def actual(client: Client, content: uuid.UUID, f: Filters) -> dict[str, Any]:
    events = title.events_by_type(client, content, f)
    return {
        "events": [
            (b.to_pydatetime().replace(tzinfo=None), t, int(n))
            for b, t, n in events[["bucket", "event_type", "events"]].itertuples(index=False)
        ],
        "completion": [
            (int(b), int(n)) for b, n in title.completion(client, content, f).itertuples(index=False)
        ],
        "devices": [(d, int(n)) for d, n in title.devices(client, content, f).itertuples(index=False)],
        "summary": title.summary(client, content, f),
    }


def naive(figures: dict[str, Any]) -> dict[str, Any]:
    """The FINAL side's buckets without their zone, as the frame's come back."""
    events = [
        (b.replace(tzinfo=None) if isinstance(b, datetime) else b, t, n) for b, t, n in figures["events"]
    ]
    return {**figures, "events": events}


def unique_users_final(client: Client, f: Filters) -> int:
    sql = (
        f"SELECT uniqExact(user_id) FROM {ddl.ENRICHED} FINAL WHERE toDate(event_ts) BETWEEN {{start:Date}} "
        f"AND {{end:Date}} AND {queries.FILTER}"
    )
    return ddl.scalar_int(client, sql, f.parameters())


RANGES = (
    Filters(DAY, DAY),
    Filters(DAY - timedelta(days=1), DAY),
    Filters(DAY - timedelta(days=1), DAY - timedelta(days=1)),
)


def check_all(client: Client) -> None:
    for f in RANGES:
        for content in CONTENTS:
            assert actual(client, content, f) == naive(expected(client, content, f)), (content, f)
        for content_type, device in (("", ""), ("video", ""), ("", "ios"), ("podcast", "web")):
            g = replace(f, content_type=content_type, device=device)
            assert queries.unique_users(client, g) == unique_users_final(client, g), g


def test_the_migration_backfills_history_and_the_views_keep_the_figures_exact_under_replays(
    before_140: Client, stack: StackHandle
) -> None:
    db = before_140
    insert(db, rows(1, 300, missing=True))  # copies without their content first ...
    insert(db, rows(1, 400))  # ... then the enriched ones, which FINAL prefers
    insert(db, rows(350, 50))  # a replay
    applied, _ = migrations.apply(db, "local", stack.settings.ep_home)
    assert [m.version for m in applied] == [
        m.version for m in files.clickhouse_migrations("local") if m.version >= 140
    ]
    summary = title.summary(db, CONTENTS[0], Filters(DAY - timedelta(days=1), DAY))
    assert summary.events > 100 and 0 < summary.played_and_finished <= summary.played < summary.users
    check_all(db)

    # live inserts through the views: new events, replays of old ones, late content-less copies
    insert(db, rows(401, 200))
    insert(db, rows(300, 200))
    insert(db, rows(500, 50, missing=True))
    check_all(db)
    assert title.find(db, CONTENTS[1]) == title.Title(CONTENTS[1], "Title 2", "podcast")


def test_an_unknown_content_has_no_name_and_a_content_without_its_name_is_still_found(
    before_140: Client, stack: StackHandle
) -> None:
    db = before_140
    migrations.apply(db, "local", stack.settings.ep_home)
    assert title.find(db, uuid.uuid4()) is None
    insert(db, rows(3, 1, missing=True))  # content 1, never enriched with its content
    assert title.find(db, CONTENTS[0]) == title.Title(CONTENTS[0], None, None)
    insert(db, rows(3, 1))
    assert title.find(db, CONTENTS[0]) == title.Title(CONTENTS[0], "Title 1", "video")
    empty = title.summary(db, CONTENTS[2], Filters(DAY, DAY))
    assert empty == title.Summary(0, 0, 0, 0)
    assert title.events_by_type(db, CONTENTS[2], Filters(DAY, DAY)).columns.tolist()[:3] == [
        "bucket",
        "event_type",
        "events",
    ]
