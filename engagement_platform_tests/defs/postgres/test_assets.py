"""`postgres/schema`: applying again changes nothing and the CDC role gets exactly what it needs."""

from __future__ import annotations

import psycopg2
import pytest

from engagement_platform_tests.harness import materialize


def owner(stack):  # type: ignore[no-untyped-def]
    conn = psycopg2.connect(stack.settings.postgres_dsn)
    conn.autocommit = True
    return conn


def cdc_role(stack):  # type: ignore[no-untyped-def]
    s = stack.settings
    conn = psycopg2.connect(
        host=s.postgres_host,
        port=s.postgres_port,
        dbname=s.postgres_db,
        user=s.cdc_user,
        password=s.cdc_password,
    )
    conn.autocommit = True
    return conn


def test_applying_twice_leaves_one_schema_one_publication_one_role(source_schema) -> None:
    stack = source_schema
    result = materialize(stack, "postgres/schema")
    assert result.returncode == 0, result.stderr[-2000:]
    conn = owner(stack)
    try:
        with conn.cursor() as cur:
            # recorded once, applied once
            cur.execute("SELECT version, name FROM schema_migrations WHERE version = 1")
            assert cur.fetchall() == [(1, "init")]
            cur.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename IN ('content', 'engagement_events', 'cdc_heartbeat')"
            )
            assert cur.fetchone() == (3,)
            cur.execute("SELECT pubname FROM pg_publication")
            assert cur.fetchall() == [("engagement_publication",)]
            cur.execute(
                "SELECT tablename FROM pg_publication_tables "
                "WHERE pubname = 'engagement_publication' ORDER BY 1"
            )
            assert cur.fetchall() == [("content",), ("engagement_events",)]
            cur.execute(
                "SELECT rolcanlogin, rolreplication, rolsuper FROM pg_roles WHERE rolname = %s",
                (stack.settings.cdc_user,),
            )
            assert cur.fetchall() == [(True, True, False)]
            cur.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'engagement_events'")
            assert cur.fetchone()[0] >= 3  # primary key + two query indexes
    finally:
        conn.close()


def test_cdc_role_reads_the_captured_tables_and_nothing_else(source_schema) -> None:
    stack = source_schema
    conn = owner(stack)
    with conn.cursor() as cur:
        # a table made after init.sql ran: the role gets nothing on it by default
        cur.execute("CREATE TABLE IF NOT EXISTS private_notes (id int primary key, note text)")
    conn.close()
    assert materialize(stack, "postgres/schema").returncode == 0

    cdc = cdc_role(stack)
    try:
        with cdc.cursor() as cur:
            cur.execute("SELECT count(*) FROM content")
            cur.execute("SELECT count(*) FROM engagement_events")
            cur.execute(
                "INSERT INTO cdc_heartbeat (id, ts) VALUES (1, now()) "
                "ON CONFLICT (id) DO UPDATE SET ts = EXCLUDED.ts"
            )
        for statement in (
            "SELECT * FROM private_notes",
            "INSERT INTO private_notes VALUES (1, 'x')",
            "INSERT INTO content (id, slug, title, content_type, publish_ts) "
            "VALUES (gen_random_uuid(), 'x', 'x', 'video', now())",
            "DELETE FROM engagement_events",
            "CREATE TABLE cdc_owned (id int)",
        ):
            with cdc.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)
    finally:
        cdc.close()
        conn = owner(stack)
        with conn.cursor() as cur:
            cur.execute("DROP TABLE private_notes")
        conn.close()
