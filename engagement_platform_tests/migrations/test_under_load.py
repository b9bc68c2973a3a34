"""The README's "Changing the schema", followed literally while the simulator writes 1,000 events/s
through `up`'s consumers: a replaced parse view, a new event type, a new source column. Each test
then checks that ClickHouse FINAL holds exactly the Postgres ids, that Redis counts what ClickHouse
holds, that no consumer restarted, and prints what it measured.

The steps' SQL is read from README.md (the blocks marked ``<!-- schema-step: NAME -->``), and the
migrations are written where `migrate new` puts them, in a copy of the schema's versions
(``EP_MIGRATIONS_DIR``) so the checkout is never touched.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from streamlit.testing.v1 import AppTest

from engagement_platform import settings as settings_module
from engagement_platform.migrations.files import Layout
from engagement_platform.settings import PROJECT_ROOT
from engagement_platform.streaming import topics
from engagement_platform.warehouse.ddl import connect_settings
from engagement_platform_tests.harness import (
    Platform,
    charts,
    in_step,
    newest_event_id,
    running_platform,
    wait_for,
    watermarks,
)

pytestmark = [pytest.mark.slow]

SECONDS = 8  # of traffic per test
DASHBOARD = PROJECT_ROOT / "engagement_platform" / "dashboard" / "app.py"
CONSUMERS = ("enrich", "leaderboard", "warehouse")
STEP = re.compile(r"<!-- schema-step: (?P<name>[\w.]+) -->\s*```sql\n(?P<sql>.*?)```", re.S)


def readme_steps() -> dict[str, str]:
    """The SQL of each marked step of the README, by its name."""
    return {m["name"]: m["sql"] for m in STEP.finditer((PROJECT_ROOT / "README.md").read_text())}


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    """A copy of the project's schema versions, for the migrations these tests add."""
    root = tmp_path_factory.mktemp("schema")
    project = Layout()
    shutil.copy(project.init_sql, root / "init.sql")
    shutil.copytree(project.postgres_dir, root / "postgres_migrations")
    shutil.copytree(project.clickhouse_dir, root / "clickhouse_ddl")
    return Layout(root)


@pytest.fixture(scope="module")
def platform(layout: Layout) -> Iterator[Platform]:
    with running_platform("ep-test-schema-", {"EP_MIGRATIONS_DIR": str(layout.root)}) as running:
        yield running


def new_migration(platform: Platform, database: str, name: str, sql: str) -> Path:
    """`migrate new DATABASE NAME`, then the step's SQL appended to the file it printed."""
    path = Path(platform.handle.cli("migrate", "new", database, name).stdout.strip())
    with path.open("a") as fh:
        fh.write(sql)
    return path


def pids(platform: Platform) -> dict[str, int]:
    found = {}
    for name in CONSUMERS:
        record = platform.supervisor_of(name).running(name)
        assert record is not None, f"{name} is not running"
        found[name] = record.pid
    return found


def flowing(platform: Platform, events: int = 1000) -> None:
    """Wait until the traffic has written ``events`` more events."""
    start = newest_event_id(platform.settings)
    wait_for(lambda: newest_event_id(platform.settings) >= start + events, 60, "the traffic to flow")


def migrate_up(platform: Platform) -> tuple[str, float, int]:
    """`migrate up` while events flow: its output, its seconds, the events written meanwhile."""
    mark, started = newest_event_id(platform.settings), time.monotonic()
    out = platform.handle.cli("migrate", "up").stdout
    return out, time.monotonic() - started, newest_event_id(platform.settings) - mark


def dlq_end(platform: Platform) -> int:
    """The sum of the DLQ's high watermarks: grows by one per dead letter."""
    marks = watermarks(platform.settings.kafka_bootstrap_servers, topics.ENRICHED_DLQ)
    return sum(high for _low, high in marks.values())


def status_clean(platform: Platform) -> None:
    result = platform.handle.cli("migrate", "status", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def warehouse_waits(platform: Platform) -> list[str]:
    """The bridge's log lines saying it waited at the gate for a migration."""
    text = platform.supervisor_of("warehouse").tail("warehouse", 400)
    return [line for line in text.splitlines() if "for a schema migration" in line]


def test_the_parse_view_replaced_at_1000_events_per_s_loses_and_duplicates_nothing(
    platform: Platform, layout: Layout
) -> None:
    before = pids(platform)
    traffic = platform.traffic(SECONDS)
    flowing(platform)
    # the same definitions again: a replacement in its simplest form (DROP VIEW + CREATE), of the
    # whole parse front (the typed fast path's views and the checks behind it)
    replaced = (layout.clickhouse_dir / "130_parse_fast_path.sql").read_text()
    path = new_migration(platform, "clickhouse", "replace_parse_view", replaced)
    out, seconds, during = migrate_up(platform)
    assert f"clickhouse: applied {path.name[:3]}" in out, out
    assert traffic.popen.wait(timeout=SECONDS + 60) == 0, traffic.output()[-2000:]
    assert during > 0, "no event was written while the view was replaced"
    in_step(platform)
    assert pids(platform) == before, "a consumer restarted"
    status_clean(platform)
    print(
        f"swap: {path.name} applied in {seconds:.2f} s while {during:,} events were written; "
        f"the bridge: {warehouse_waits(platform)[-3:]}"
    )


def test_a_new_event_type_is_one_postgres_migration_no_code_change_no_restart(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = platform.settings
    before = pids(platform)
    mark = newest_event_id(s)
    new_migration(platform, "postgres", "add_share_event_type", readme_steps()["share.postgres"])
    out, seconds, _ = migrate_up(platform)
    assert "postgres: applied" in out, out
    traffic = platform.traffic(5, "--event-types", "play,pause,finish,click,share")
    assert traffic.popen.wait(timeout=60) == 0, traffic.output()[-2000:]
    in_step(platform)
    assert pids(platform) == before, "a consumer restarted"
    status_clean(platform)

    with psycopg2.connect(s.postgres_dsn) as pg, pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM engagement_events WHERE id > %s AND event_type = 'share'", (mark,))
        shares = int(cur.fetchone()[0])
    pg.close()
    ch = connect_settings(s)
    try:
        counted = int(
            ch.command(
                "SELECT count() FROM engagement_enriched FINAL "
                "WHERE event_id > {m:UInt64} AND event_type = 'share'",
                parameters={"m": mark},
            )
        )
        rolled = int(
            ch.command(
                "SELECT sum(n) FROM (SELECT uniqExactMerge(events) AS n FROM content_engagement_minute "
                "WHERE event_type = 'share' GROUP BY minute, content_id)"
            )
        )
    finally:
        ch.close()
    assert shares > 0
    assert counted == shares == rolled, (shares, counted, rolled)

    # the dashboard shows it: its charts by event type are built from the data
    for name, value in settings_module.as_env(s).items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(str(DASHBOARD), default_timeout=90)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = {str(t) for frame in charts(at).values() if "event_type" in frame for t in frame["event_type"]}
    assert "share" in shown, shown
    print(f"found: {shares:,} share events in Postgres, ClickHouse FINAL, the minute rollup, the dashboard")


def test_a_new_source_column_added_under_load_reaches_clickhouse(platform: Platform) -> None:
    s = platform.settings
    before, letters = pids(platform), dlq_end(platform)
    steps = readme_steps()
    traffic = platform.traffic(SECONDS)
    flowing(platform)
    new_migration(platform, "postgres", "add_app_version", steps["app_version.postgres"])
    new_migration(platform, "clickhouse", "add_app_version", steps["app_version.clickhouse"])
    out, seconds, during = migrate_up(platform)
    assert "postgres: applied" in out and "clickhouse: applied" in out, out
    # an application writes one event per transaction, with the new column, while traffic goes on
    versions: dict[int, str] = {}
    pg = psycopg2.connect(s.postgres_dsn)
    try:
        with pg.cursor() as cur:
            cur.execute("SELECT id FROM content ORDER BY id LIMIT 1")
            content_id = cur.fetchone()[0]
        for i in range(50):
            with pg, pg.cursor() as cur:
                cur.execute(
                    "INSERT INTO engagement_events (content_id, user_id, event_type, event_ts, duration_ms, "
                    "device, app_version) VALUES (%s, gen_random_uuid(), 'play', now(), 1000, 'web', %s) "
                    "RETURNING id",
                    (content_id, f"7.{i}"),
                )
                versions[int(cur.fetchone()[0])] = f"7.{i}"
    finally:
        pg.close()
    assert traffic.popen.wait(timeout=SECONDS + 60) == 0, traffic.output()[-2000:]
    in_step(platform)
    assert pids(platform) == before, "a consumer restarted"
    assert dlq_end(platform) == letters, "records went to the DLQ"
    status_clean(platform)
    ch = connect_settings(s)
    try:
        rows = ch.query(
            "SELECT event_id, app_version FROM engagement_enriched FINAL "
            "WHERE event_id IN {ids:Array(UInt64)}",
            parameters={"ids": sorted(versions)},
        ).result_rows
    finally:
        ch.close()
    assert dict(rows) == versions
    print(
        f"column: both migrations applied in {seconds:.2f} s while {during:,} events were written; "
        f"{len(versions)} events with app_version reached ClickHouse; no DLQ record, no restart"
    )
