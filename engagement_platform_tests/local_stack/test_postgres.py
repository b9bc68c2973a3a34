"""The local PostgreSQL: reachable with the configured credentials, ready for logical decoding."""

from __future__ import annotations

import uuid

import psycopg2


def test_wal_level_is_logical_and_a_slot_can_be_created(stack) -> None:
    conn = psycopg2.connect(stack.settings.postgres_dsn)
    conn.autocommit = True
    slot = f"test_slot_{uuid.uuid4().hex[:8]}"
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW wal_level")
            assert cur.fetchone() == ("logical",)
            cur.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
            cur.execute("SELECT slot_type, plugin FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            assert cur.fetchone() == ("logical", "pgoutput")
    finally:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        conn.close()


def test_listens_on_loopback_only(stack) -> None:
    conn = psycopg2.connect(stack.settings.postgres_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW listen_addresses")
            assert cur.fetchone() == ("127.0.0.1",)
    finally:
        conn.close()


def test_wrong_password_is_refused(stack) -> None:
    s = stack.settings
    try:
        psycopg2.connect(
            host=s.postgres_host,
            port=s.postgres_port,
            user=s.postgres_user,
            password="wrong",
            dbname=s.postgres_db,
        )
    except psycopg2.OperationalError as exc:
        assert "password authentication failed" in str(exc)
    else:
        raise AssertionError("a wrong password was accepted")
