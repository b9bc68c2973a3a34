"""Re-parse ``engagement_enriched_errors`` after a fix to the parse view (``dlq replay --warehouse``).

The rows kept by the filters (reason prefix, ``received_at`` since) are read, their ``raw``
goes into ``engagement_enriched_ingest`` (where the queue and the history backfill insert too,
so the parse view of now decides), and then those rows are deleted from the errors table,
named by their ``received_at`` and their raw's hash (a lightweight ``DELETE``, synchronous by
default, which ClickHouse and chdb 26.9 both run; its condition holds values only, because a
mutation cannot read a session's temporary table). A row that still fails is back in the errors table
with a fresh ``received_at``; a row that parses now lands in ``engagement_enriched``, a
ReplacingMergeTree on the event id, so a replay never doubles an event and a second replay
finds nothing left to do but what still fails.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from engagement_platform.settings import Settings
from engagement_platform.streaming.dlq_replay import EVERYTHING, Filters, Report
from engagement_platform.warehouse import ddl
from engagement_platform.warehouse.gate import IngestGate

# the rows a replay takes; {since} is 1970 when there is no --since
# rows per insert and DELETE: the DELETE names them by received_at and raw's hash, as query
# parameters that travel in the URL (~40 bytes a row; a server may refuse lines over 64 KiB)
BATCH = 500
KEEP = "startsWith(reason, {reason:String}) AND received_at >= {since:DateTime64(3, 'UTC')}"


def _parameters(filters: Filters) -> dict[str, Any]:
    since = filters.since or datetime(1970, 1, 1, tzinfo=UTC)
    return {"reason": filters.reason, "since": since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]}


def reparse_errors(
    client: Client, gate: IngestGate, filters: Filters = EVERYTHING, *, dry_run: bool = False
) -> Report:
    """Replay the error rows ``filters`` keep through the parse view (see the module's doc); with
    ``dry_run`` only count them. ``client`` is on the warehouse's database; each insert passes
    ``gate`` (a migration may be replacing a view of the parse chain)."""
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

    rows = client.query(
        f"SELECT raw, reason, toUnixTimestamp64Milli(received_at), cityHash64(raw) FROM {ddl.ERRORS} "
        f"WHERE {KEEP} ORDER BY received_at",
        parameters=params,
    ).result_rows
    started = client.command("SELECT toString(now64(3, 'UTC'))")
    for at in range(0, len(rows), BATCH):
        batch = rows[at : at + BATCH]
        with gate.insert():
            ddl.insert_raw(client, ddl.INGEST, (r[0] for r in batch))
        # the rows taken, and only those: new failures carry a later received_at
        client.command(
            f"DELETE FROM {ddl.ERRORS} WHERE toUnixTimestamp64Milli(received_at) IN {{ms:Array(Int64)}} "
            "AND cityHash64(raw) IN {hashes:Array(UInt64)}",
            parameters={"ms": sorted({r[2] for r in batch}), "hashes": sorted({r[3] for r in batch})},
        )
    failed_again = {
        h
        for (h,) in client.query(
            f"SELECT cityHash64(raw) FROM {ddl.ERRORS} "
            "WHERE received_at >= toDateTime64({started:String}, 3, 'UTC')",
            parameters={"started": started},
        ).result_rows
    }
    for _raw, reason, _ms, raw_hash in rows:
        counts = report.count(reason)
        counts.replayed += 1
        counts.still_failing += raw_hash in failed_again
    report.to_topics[ddl.INGEST] = report.replayed
    return report


def reparse_settings(settings: Settings, filters: Filters, dry_run: bool) -> Report:
    """:func:`reparse_errors` on the settings' ClickHouse, its errors as one-line RuntimeErrors."""
    from clickhouse_connect.driver.exceptions import Error

    from engagement_platform.warehouse.sql import clickhouse_message

    try:
        client = ddl.connect_settings(settings)
        try:
            return reparse_errors(client, IngestGate(settings.ep_home), filters, dry_run=dry_run)
        finally:
            client.close()
    except Error as exc:
        raise RuntimeError(f"ClickHouse: {clickhouse_message(exc)}") from None
