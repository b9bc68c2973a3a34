"""What a replay of dead letters is, wherever they wait (a DLQ topic, ClickHouse's errors table):
its filters, its counts by reason and how they are shown. ``streaming.dlq_replay`` replays a
topic, ``warehouse.reparse`` the errors table; this module depends on neither."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engagement_platform.argtypes import UsageError, utc_time

ERRORS_TABLE = "engagement_enriched_errors"  # the warehouse's dead letters


def parse_since(text: str) -> datetime:
    """``--since`` (or a job's ``since``): :func:`~engagement_platform.argtypes.utc_time`, its
    error a UsageError (one line)."""
    try:
        return utc_time(text)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"since: {exc}") from None


def reason_code(reason: str) -> str:
    """What counts group by: the reason's code, before its detail (``unknown_event_type: 'x'``)."""
    return reason.split(":", 1)[0].strip()[:80] or "(no reason)"


@dataclass(frozen=True)
class Filters:
    """Which dead letters a replay takes: the reason starts with ``reason``, and the record was
    dead-lettered (or, in the warehouse, received) at or after ``since``."""

    reason: str = ""
    since: datetime | None = None

    def keep(self, reason: str, at: datetime) -> bool:
        return reason.startswith(self.reason) and (self.since is None or at >= self.since)


EVERYTHING = Filters()  # no filter: every dead letter


@dataclass
class Counts:
    replayed: int = 0  # in a dry run: would be replayed
    skipped: int = 0  # left out by the filters (or unreadable)
    still_failing: int = 0  # the warehouse only: replayed rows that failed to parse again


@dataclass
class Report:
    """What a replay did, by reason code: what a table, a job's metadata and a test read."""

    source: str  # the DLQ topic, or the errors table
    dry_run: bool
    by_reason: dict[str, Counts] = field(default_factory=dict)
    to_topics: dict[str, int] = field(default_factory=dict)  # records sent per destination

    def count(self, reason: str) -> Counts:
        return self.by_reason.setdefault(reason_code(reason), Counts())

    @property
    def replayed(self) -> int:
        return sum(c.replayed for c in self.by_reason.values())

    @property
    def skipped(self) -> int:
        return sum(c.skipped for c in self.by_reason.values())

    @property
    def still_failing(self) -> int:
        return sum(c.still_failing for c in self.by_reason.values())

    def records_by_reason(self) -> dict[str, int]:
        """Every record the source holds (replayed or not), per reason code."""
        return {r: c.replayed + c.skipped for r, c in sorted(self.by_reason.items())}


def report_metadata(report: Report) -> Mapping[str, Any]:
    """A report as flat metadata (Dagster's): totals and per reason code."""
    out: dict[str, Any] = {
        "source": report.source,
        "dry_run": report.dry_run,
        "replayed": report.replayed,
        "skipped": report.skipped,
        "records_by_reason": report.records_by_reason(),
        "replayed_by_reason": {r: c.replayed for r, c in sorted(report.by_reason.items())},
    }
    if report.to_topics:
        out["replayed_to"] = dict(sorted(report.to_topics.items()))
    if report.source == ERRORS_TABLE:
        out["still_failing"] = report.still_failing
    return out


def render(report: Report, console: Any) -> None:
    """The report as a rich table of counts by reason on ``console``."""
    from rich.table import Table

    verb = "would replay" if report.dry_run else "replayed"
    warehouse = report.source == ERRORS_TABLE
    table = Table(title=f"{report.source} by reason")
    table.add_column("reason")
    table.add_column(verb, justify="right")
    if warehouse and not report.dry_run:
        table.add_column("still failing", justify="right")
    table.add_column("skipped (filters)", justify="right")
    for reason, c in sorted(report.by_reason.items()):
        cells = [reason, f"{c.replayed:,}"]
        if warehouse and not report.dry_run:
            cells.append(f"{c.still_failing:,}")
        table.add_row(*cells, f"{c.skipped:,}")
    console.print(table)
    summary = f"{verb} {report.replayed:,}, skipped {report.skipped:,}"
    if warehouse and not report.dry_run:
        summary += f", still failing {report.still_failing:,}"
    console.print(summary, highlight=False)
    for name, n in sorted(report.to_topics.items()):
        console.print(f"{verb} {n:,} to {name}", highlight=False)


def add_arguments(parser: argparse.ArgumentParser, default_topic: str) -> None:
    """The options of `dlq replay`."""
    parser.add_argument(
        "--reason", default="", metavar="TEXT", help="only records whose reason starts with TEXT"
    )
    parser.add_argument(
        "--since",
        type=utc_time,
        metavar="ISO-TIME",
        help="only records dead-lettered (--warehouse: received) at or after this time (UTC unless it "
        "has an offset)",
    )
    parser.add_argument("--dry-run", action="store_true", help="only count what would be replayed")
    parser.add_argument(
        "--topic", metavar="DLQ_TOPIC", help=f"the DLQ topic to read (default {default_topic})"
    )
    parser.add_argument(
        "--warehouse",
        action="store_true",
        help="re-parse ClickHouse's engagement_enriched_errors rows instead (after a fix to the parse view)",
    )
