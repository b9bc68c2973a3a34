"""Dagster assets of the warehouse on real Postgres and ClickHouse.

history_backfill loads past days from Postgres with the enrich consumer's functions, skips
what streaming already loaded, and daily_content_engagement then totals exactly what a
GROUP BY over Postgres gives for those days.
"""

from __future__ import annotations

import warnings
from collections import Counter
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg2
import pytest

from engagement_platform.defs.warehouse import assets, checks
from engagement_platform.warehouse import backfill, ddl
from engagement_platform_tests.defs import resources as test_resources
from engagement_platform_tests.defs.warehouse.helpers import fresh_database, resource
from engagement_platform_tests.harness import materialize

EVENTS = 6000


@pytest.fixture(scope="module")
def simulated(wh_stack):  # type: ignore[no-untyped-def]
    """init.sql through `postgres/schema`, then `simulate --backfill-days 3` as a user would."""
    result = materialize(wh_stack, "postgres/schema")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wh_stack.cli(
        "simulate", "--backfill-days", "3", "--events", str(EVENTS), "--content", "20", "--seed", "5"
    )
    return wh_stack


def postgres_totals(settings, start: datetime, end: datetime) -> dict:  # type: ignore[no-untyped-def]
    """Per (day, content): events, events per type, unique users and engagement ms, from the source."""
    conn = psycopg2.connect(settings.postgres_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                """
                SELECT (event_ts AT TIME ZONE 'UTC')::date, content_id::text, event_type, user_id, duration_ms
                FROM engagement_events WHERE event_ts >= %s AND event_ts < %s
                """,
                (start, end),
            )
            rows = cur.fetchall()
    finally:
        conn.close()
    groups: dict = {}
    for day, content_id, event_type, user_id, duration_ms in rows:
        types, users, ms = groups.setdefault((day, content_id), (Counter(), set(), [0]))
        types[event_type] += 1
        if user_id is not None:
            users.add(user_id)
        ms[0] += duration_ms or 0
    return {key: (sum(t.values()), dict(t), len(u), ms[0]) for key, (t, u, ms) in groups.items()}


def stream_some(settings, client, start: datetime, end: datetime, every: int) -> int:  # type: ignore[no-untyped-def]
    """Load every ``every``-th event of the day as streaming would (twice: at-least-once)."""
    conn = psycopg2.connect(settings.postgres_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(backfill.SOURCE_QUERY, {"start": start, "end": end})
            rows = [r for r in cur.fetchall() if r[0] % every == 0]
    finally:
        conn.close()
    result = backfill.BackfillResult()
    messages = list(backfill.enrich_rows(rows, set(), result, "2026-01-01T00:00:00.000Z"))
    ddl.insert_raw(client, ddl.QUEUE, messages)
    ddl.insert_raw(client, ddl.QUEUE, messages)
    return len(messages)


def test_backfill_and_daily_rollup_equal_a_group_by_over_postgres(simulated) -> None:
    settings = simulated.settings
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [today - timedelta(days=2), today - timedelta(days=1)]  # the two complete days
    with fresh_database(settings, "assets") as (name, client):
        ch = resource(settings, name)
        pg = test_resources.postgres(settings)
        streamed = stream_some(settings, client, days[1], days[1] + timedelta(days=1), every=3)
        assert streamed > 0

        loaded = {}
        for day in days:
            key = f"{day:%Y-%m-%d}"
            result = dg.materialize(
                [assets.history_backfill], partition_key=key, resources={"clickhouse": ch, "postgres": pg}
            )
            assert result.success
            loaded[key] = {
                k: v.value
                for k, v in result.asset_materializations_for_node("clickhouse__history_backfill")[
                    0
                ].metadata.items()
            }
        first, second = (loaded[f"{d:%Y-%m-%d}"] for d in days)
        assert first["already_loaded"] == 0 and first["inserted"] == first["source_rows"] > 0
        assert second["already_loaded"] == streamed
        assert second["inserted"] == second["source_rows"] - streamed
        assert first["invalid"] == second["invalid"] == 0

        # re-running a partition inserts nothing and changes nothing
        again = dg.materialize(
            [assets.history_backfill],
            partition_key=f"{days[1]:%Y-%m-%d}",
            resources={"clickhouse": ch, "postgres": pg},
        )
        meta = again.asset_materializations_for_node("clickhouse__history_backfill")[0].metadata
        assert meta["inserted"].value == 0 and meta["events_in_warehouse"].value == second["source_rows"]

        for day in days:
            for _ in range(2):  # a partition re-run gives the same result
                result = dg.materialize(
                    [assets.daily_content_engagement],
                    partition_key=f"{day:%Y-%m-%d}",
                    resources={"clickhouse": ch},
                )
                assert result.success

        expected = postgres_totals(settings, days[0], days[1] + timedelta(days=1))
        rows = client.query(
            "SELECT day, toString(content_id), events, events_by_type, unique_users, "
            "toUInt64(round(engagement_seconds * 1000)) FROM daily_content_engagement"
        ).result_rows
        got = {(r[0], r[1]): (int(r[2]), dict(r[3]), int(r[4]), int(r[5])) for r in rows}
        assert got == expected
        assert sum(v[0] for v in got.values()) == first["source_rows"] + second["source_rows"]

        # the checks agree: no parse errors, the minute rollup and the daily table match FINAL
        for check in (
            checks.no_recent_parse_errors,
            checks.minute_rollup_matches_final,
            checks.daily_matches_final,
        ):
            outcome = check(clickhouse=ch)
            assert outcome.passed, outcome.metadata

        # a late event (a source row not seen before) makes the daily check fail until a re-run
        conn = psycopg2.connect(settings.postgres_dsn)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    backfill.SOURCE_QUERY + " LIMIT 1", {"start": days[0], "end": days[0] + timedelta(days=1)}
                )
                late_row = (10**9, *cur.fetchone()[1:])
        finally:
            conn.close()
        late = backfill.enrich_rows([late_row], set(), backfill.BackfillResult(), "2026-01-01T00:00:00.000Z")
        ddl.insert_raw(client, ddl.QUEUE, list(late))
        assert not checks.daily_matches_final(clickhouse=ch).passed
        dg.materialize(
            [assets.daily_content_engagement],
            partition_key=f"{days[0]:%Y-%m-%d}",
            resources={"clickhouse": ch},
        )
        assert checks.daily_matches_final(clickhouse=ch).passed


def test_definitions_wire_the_warehouse_and_schedule_yesterday() -> None:
    from engagement_platform.definitions import defs

    graph = defs.get_repository_def().asset_graph
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {
        "clickhouse/schema",
        "kafka/engagement_enriched",
        "clickhouse/engagement_enriched",
        "redis/leaderboard",
        "clickhouse/daily_content_engagement",
        "clickhouse/history_backfill",
    } <= keys

    def parents(key: str) -> set[str]:
        return {p.to_user_string() for p in graph.get(dg.AssetKey.from_user_string(key)).parent_keys}

    assert parents("kafka/engagement_enriched") == {"kafka/content_flat", "kafka/engagement_events_flat"}
    # streamed from the topic; past days loaded by history_backfill
    assert parents("clickhouse/engagement_enriched") == {
        "kafka/engagement_enriched",
        "clickhouse/history_backfill",
    }
    assert parents("redis/leaderboard") == {"kafka/engagement_enriched"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schedule = defs.get_schedule_def("daily_content_engagement_schedule")
    with dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 29, 1, 0, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    ) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["2026-11-28"]
