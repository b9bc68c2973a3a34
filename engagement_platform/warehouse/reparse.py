"""Re-parse ``engagement_enriched_errors`` after a fix to the parse view (``dlq replay --warehouse``).

The rows kept by the filters (reason prefix, ``received_at`` since) are copied into a
session's temporary table, their ``raw`` goes into ``engagement_enriched_ingest`` (where the
queue and the history backfill insert too, so the parse view of now decides), and then exactly
those rows are deleted from the errors table (a lightweight ``DELETE``, synchronous by default,
which ClickHouse and chdb 26.9 both run). A row that still fails is back in the errors table
with a fresh ``received_at``; a row that parses now lands in ``engagement_enriched``, a
ReplacingMergeTree on the event id, so a replay never doubles an event and a second replay
finds nothing left to do but what still fails.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from engagement_platform.streaming.dlq_replay import EVERYTHING, Filters, Report
from engagement_platform.warehouse import ddl

# the rows a replay takes; {since} is 1970 when there is no --since
KEEP = "startsWith(reason, {reason:String}) AND received_at >= {since:DateTime64(3, 'UTC')}"


def _parameters(filters: Filters) -> dict[str, Any]:
    since = filters.since or datetime(1970, 1, 1, tzinfo=UTC)
    return {"reason": filters.reason, "since": since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]}


def reparse_errors(client: Client, filters: Filters = EVERYTHING, *, dry_run: bool = False) -> Report:
    """Replay the error rows ``filters`` keep through the parse view (see the module's doc); with
    ``dry_run`` only count them. ``client`` is on the warehouse's database and keeps one session
    (clickhouse-connect's default), which the temporary table needs."""
    params = _parameters(filters)
    report = Report(ddl.ERRORS, dry_run)
    counted = client.query(
        f"SELECT reason, countIf({KEEP}), countIf(NOT ({KEEP})) FROM {ddl.ERRORS} GROUP BY reason",
        parameters=params,
    ).result_rows
    for reason, _kept, skipped in counted:
        report.count(reason).skipped += int(skipped)
    if dry_run:
        for reason, kept, _skipped in counted:
            report.count(reason).replayed += int(kept)
        return report

    taken = f"dlq_replay_{uuid.uuid4().hex[:12]}"
    client.command(
        f"CREATE TEMPORARY TABLE {taken} (raw String, reason String, received_at DateTime64(3, 'UTC')) "
        "ENGINE = Memory"
    )
    try:
        client.command(
            f"INSERT INTO {taken} SELECT raw, reason, received_at FROM {ddl.ERRORS} WHERE {KEEP}",
            parameters=params,
        )
        started = client.command("SELECT toString(now64(3, 'UTC'))")
        client.command(f"INSERT INTO {ddl.INGEST} SELECT raw FROM {taken}")
        client.command(
            f"DELETE FROM {ddl.ERRORS} WHERE (raw, reason, received_at) IN "
            f"(SELECT raw, reason, received_at FROM {taken})"
        )
        rows = client.query(
            f"SELECT reason, count(), countIf(raw IN (SELECT raw FROM {ddl.ERRORS} "
            f"WHERE received_at >= toDateTime64({{started:String}}, 3, 'UTC'))) FROM {taken} GROUP BY reason",
            parameters={"started": started},
        ).result_rows
    finally:
        client.command(f"DROP TEMPORARY TABLE IF EXISTS {taken}")
    for reason, replayed, still_failing in rows:
        counts = report.count(reason)
        counts.replayed += int(replayed)
        counts.still_failing += int(still_failing)
    report.to_topics[ddl.INGEST] = report.replayed
    return report
