"""The whole path on the shared five-service stack: Postgres -> CDC -> enrich -> bridge -> ClickHouse.

After `simulate --events 5000` with the consumers running, engagement_enriched (FINAL) holds
exactly the Postgres event ids, and every derived field equals what the enrichment
functions compute from the source rows.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from datetime import datetime

import psycopg2
import pytest

from engagement_platform.streaming import enrich
from engagement_platform.warehouse import backfill, ddl
from engagement_platform_tests.harness import CLI, materialize

# fields whose value depends on when and how the record was produced, not on the source row
VOLATILE = {"enriched_at", "source_ts"}


def postgres_rows(dsn: str) -> list[tuple]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                backfill.SOURCE_QUERY.replace("WHERE e.event_ts >= %(start)s AND e.event_ts < %(end)s", "")
            )
            return cur.fetchall()
    finally:
        conn.close()


def as_json(value: object) -> object:
    if isinstance(value, datetime):
        return enrich.format_utc_ms(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


@pytest.mark.slow
def test_simulated_events_reach_clickhouse_exactly_once_with_the_enrichers_fields(source_schema) -> None:
    stack = source_schema
    database = f"e2e_{uuid.uuid4().hex[:8]}"
    env = {"CLICKHOUSE_DATABASE": database}
    result = materialize(stack, "cdc/connector,clickhouse/schema", env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    procs = [
        subprocess.Popen([*CLI, "consume", name], env={**stack.env, **env}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        for name in ("enrich", "warehouse")
    ]  # fmt: skip
    client = ddl.connect_settings(stack.settings, database)
    try:
        stack.cli("simulate", "--content", "30", "--events", "5000", "--seed", "3")
        rows = postgres_rows(stack.settings.postgres_dsn)
        expected_ids = {r[0] for r in rows}
        assert len(expected_ids) >= 5000
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if client.command(f"SELECT count() FROM {ddl.ENRICHED} FINAL") >= len(expected_ids):
                break
            time.sleep(1)
        for proc in procs:
            assert proc.poll() is None, "a consumer died"
        columns = [
            c for c in enrich.enrich(enrich.Event(1, "x", None, "play", "", None, None, None), None, "")
        ]
        got = {
            row[0]: {c: as_json(v) for c, v in zip(columns, row, strict=True)}
            for row in client.query(f"SELECT {', '.join(columns)} FROM {ddl.ENRICHED} FINAL").result_rows
        }
        assert set(got) == expected_ids
        assert client.command(f"SELECT count() FROM {ddl.ERRORS}") == 0
        expected = [
            enrich.enrich(enrich.parse_event(backfill.event_record(r)), _content(r), "")  # type: ignore[arg-type]
            for r in rows
        ]
        mismatches = [
            (e["event_id"], k)
            for e in expected
            for k in columns
            if k not in VOLATILE and got[e["event_id"]][k] != e[k]
        ]
        assert not mismatches, mismatches[:10]
    finally:
        client.close()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _content(row: tuple) -> enrich.Content | None:
    record = backfill.content_record(row)
    parsed = enrich.parse_content(*record) if record is not None else None
    return parsed if isinstance(parsed, enrich.Content) else None
