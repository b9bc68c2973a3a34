"""`dlq replay --warehouse` on the session stack's ClickHouse: error rows go through the parse view
again; a row that parses now leaves the errors table for engagement_enriched, one that still fails
stays exactly once, and a second replay changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engagement_platform.warehouse import ddl
from engagement_platform_tests.defs.warehouse.helpers import enriched, fresh_database, raw
from engagement_platform_tests.harness import StackHandle

STILL_BAD = '{"event_id": 7, "event_ts": "not a time"'
OLD = datetime.now(UTC) - timedelta(days=10)  # within the table's 90-day TTL


def test_error_rows_are_parsed_again_once_and_only_once(stack: StackHandle) -> None:
    settings = stack.settings
    with fresh_database(settings, "reparse") as (database, client):
        fixed = raw(enriched(5)).decode()  # valid now: as if the parse view had been fixed
        old_bad = raw(enriched(6, event_type="like")).decode()  # before --since: left alone
        client.insert(
            ddl.ERRORS,
            [
                [fixed, "unknown_event_type", datetime.now(UTC)],
                [STILL_BAD, "bad_json", datetime.now(UTC)],
                [old_bad, "unknown_event_type", OLD],
            ],
            column_names=["raw", "reason", "received_at"],
        )

        def errors() -> list[tuple[str, str]]:
            return [
                (r, why)
                for r, why in client.query(f"SELECT raw, reason FROM {ddl.ERRORS} ORDER BY raw").result_rows
            ]

        def final_ids() -> list[int]:
            return [r[0] for r in client.query(f"SELECT event_id FROM {ddl.ENRICHED} FINAL").result_rows]

        env = {"CLICKHOUSE_DATABASE": database}
        since = (OLD + timedelta(days=1)).isoformat()
        dry = stack.cli("dlq", "replay", "--warehouse", "--since", since, "--dry-run", env=env)
        assert "would replay 2, skipped 1" in dry.stdout, dry.stdout
        assert final_ids() == [] and len(errors()) == 3

        for attempt in (1, 2):
            out = stack.cli("dlq", "replay", "--warehouse", "--since", since, env=env)
            replayed = 2 if attempt == 1 else 1
            assert f"replayed {replayed}, skipped 1, still failing 1" in out.stdout, (attempt, out.stdout)
            assert final_ids() == [5], attempt
            assert errors() == sorted([(STILL_BAD, "bad_json"), (old_bad, "unknown_event_type")]), attempt
        # the row that still fails came back with a fresh received_at
        fresh = (
            f"SELECT toUInt8(received_at > now64(3) - INTERVAL 5 MINUTE) FROM {ddl.ERRORS} "
            "WHERE reason = 'bad_json'"
        )
        assert client.query(fresh).result_rows == [(1,)]
