"""`migrate status|up|new` on real databases, and the in-place upgrade of a database set up
before migrations existed (init.sql and clickhouse_ddl/ applied by the old idempotent apply)."""

from __future__ import annotations

import json
import uuid
from contextlib import closing

import psycopg2

from engagement_platform.migrations import files
from engagement_platform.settings import Settings
from engagement_platform.warehouse import ddl
from engagement_platform_tests import harness
from engagement_platform_tests.defs.warehouse.helpers import enriched, raw
from engagement_platform_tests.harness import StackHandle, database_env


def build_the_old_way(s: Settings) -> None:
    """What main did before migrations: every statement of init.sql and of clickhouse_ddl/
    (up to 090, today's files), nothing recorded."""
    with closing(psycopg2.connect(s.postgres_dsn)) as conn, conn, conn.cursor() as cur:
        cur.execute(
            "SELECT set_config('ep.cdc_user', %s, true), set_config('ep.cdc_password', %s, true)",
            (s.cdc_user, s.cdc_password),
        )
        cur.execute(files.INIT_SQL.read_text())
    with closing(ddl.connect_settings(s)) as ch:
        for _, statement in harness.ddl_statements("local", up_to=90):
            ch.command(statement)


def fill(s: Settings) -> None:
    """Content and events in Postgres; enriched events (and one malformed) through the ingest path."""
    with closing(psycopg2.connect(s.postgres_dsn)) as conn, conn, conn.cursor() as cur:
        for i in range(3):
            cur.execute(
                "INSERT INTO content (id, slug, title, content_type, publish_ts) "
                "VALUES (%s, %s, %s, 'video', now())",
                (str(uuid.uuid4()), f"slug-{i}", f"Title {i}"),
            )
        cur.execute(
            "INSERT INTO engagement_events (content_id, user_id, event_type, event_ts, duration_ms, device) "
            "SELECT (SELECT id FROM content ORDER BY slug LIMIT 1), gen_random_uuid(), 'play', now(), g, "
            "'ios' "
            "FROM generate_series(1, 250) AS g"
        )
    with closing(ddl.connect_settings(s)) as ch:
        ddl.insert_raw(ch, ddl.QUEUE, [raw(enriched(i)) for i in range(1, 301)] + [b"{not json"])


def counts(s: Settings) -> dict[str, int]:
    out: dict[str, int] = {}
    with closing(psycopg2.connect(s.postgres_dsn)) as conn, conn.cursor() as cur:
        for table in ("content", "engagement_events"):
            cur.execute(f"SELECT count(*) FROM {table}")  # our own table names
            out[f"postgres.{table}"] = cur.fetchone()[0]
    with closing(ddl.connect_settings(s)) as ch:
        for name, sql in {
            "engagement_enriched FINAL": "SELECT count() FROM engagement_enriched FINAL",
            "engagement_enriched rows": "SELECT count() FROM engagement_enriched",
            "minute rollup events": "SELECT uniqExactMerge(events) FROM content_engagement_minute",
            "engagement_enriched_errors": "SELECT count() FROM engagement_enriched_errors",
        }.items():
            out[f"clickhouse.{name}"] = int(ch.command(sql))
    return out


def test_a_database_set_up_by_the_old_apply_upgrades_in_place(stack: StackHandle, scratch: Settings) -> None:
    build_the_old_way(scratch)
    fill(scratch)
    before = counts(scratch)
    env = database_env(scratch)
    status = stack.cli("migrate", "status", check=False, env=env)
    assert status.returncode == 1, status.stderr
    assert "PENDING  001 init" in status.stdout and "PENDING  090 consume" in status.stdout
    up = stack.cli("migrate", "up", env=env)
    lines = up.stdout.splitlines()
    assert lines[0] == "postgres: applied 001 init.sql"
    assert lines == [
        *(f"postgres: applied {m.version:03d} {m.label}" for m in files.postgres_migrations()),
        *(f"clickhouse: applied {m.version:03d} {m.label}" for m in files.clickhouse_migrations("local")),
    ]
    after = counts(scratch)
    print(f"\nupgrade in place: before {before}\n                  after  {after}")
    assert after == before and before["clickhouse.engagement_enriched FINAL"] == 300
    assert (
        before["postgres.engagement_events"] == 250 and before["clickhouse.engagement_enriched_errors"] == 1
    )
    clean = stack.cli("migrate", "status", "--json", env=env)
    report = json.loads(clean.stdout)
    assert report["clean"] is True
    assert [d["pending"] for d in report["databases"]] == [[], []]
    assert stack.cli("migrate", "up", env=env).stdout.strip() == (
        "nothing pending: both databases are at their latest version"
    )


def test_status_and_up_refuse_an_edited_file(stack: StackHandle, scratch: Settings) -> None:
    env = database_env(scratch)
    stack.cli("migrate", "up", env=env)
    assert stack.cli("migrate", "status", env=env).returncode == 0
    # what an edit of init.sql looks like to the database: its recorded checksum differs
    with closing(psycopg2.connect(scratch.postgres_dsn)) as conn, conn, conn.cursor() as cur:
        cur.execute("UPDATE schema_migrations SET checksum = %s WHERE version = 1", ("0" * 64,))
    status = stack.cli("migrate", "status", check=False, env=env)
    assert status.returncode == 1 and "EDITED   001 init" in status.stdout
    up = stack.cli("migrate", "up", check=False, env=env)
    assert up.returncode == 1 and up.stdout == ""
    assert up.stderr == (
        "engagement-platform: init.sql was edited after it was applied (version 1): never edit an applied "
        "migration; add one with 'engagement-platform migrate new postgres NAME'\n"
    )


def test_migrate_new_refuses_a_bad_name_with_usage_exit(stack: StackHandle) -> None:
    result = stack.cli("migrate", "new", "postgres", "Add-Share", check=False)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "engagement-platform: error: migration names take only a-z, 0-9 and _, got 'Add-Share'"
    )
    assert not list(files.POSTGRES_DIR.glob("*Add-Share*"))
