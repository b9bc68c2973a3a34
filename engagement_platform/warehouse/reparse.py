"""Re-parse ``engagement_enriched_errors`` after a fix to the parse view (``dlq replay --warehouse``).

The rows go into ``engagement_enriched_ingest`` again and are deleted from the errors table;
a replay never doubles an event. How: docs/design/warehouse.md.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from engagement_platform.replay import EVERYTHING, Filters, Report, render
from engagement_platform.settings import Settings
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


def run(args: argparse.Namespace, settings: Settings) -> int:
    """`dlq replay --warehouse`: re-parse (or count) the error rows, then the counts by reason."""
    from clickhouse_connect.driver.exceptions import Error
    from rich.console import Console

    from engagement_platform.warehouse.sql import clickhouse_message

    try:  # the flags were checked by the command (cli.cmd_dlq_replay)
        client = ddl.connect_settings(settings)
        try:
            report = reparse_errors(
                client, IngestGate(settings.ep_home), Filters(args.reason, args.since), dry_run=args.dry_run
            )
        finally:
            client.close()
    except Error as exc:
        raise RuntimeError(f"ClickHouse: {clickhouse_message(exc)}") from None
    render(report, Console())
    return 0
