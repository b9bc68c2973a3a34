"""Replay dead letters: DLQ records back to their topic, or ClickHouse's errors re-parsed (--warehouse).

A command of its own, above both packages: the Kafka replay lives in
:mod:`engagement_platform.streaming.dlq_replay`, the re-parse in
:mod:`engagement_platform.warehouse.reparse`, and neither package imports the other for it.
"""

from __future__ import annotations

import argparse

from confluent_kafka import KafkaException

from engagement_platform.argtypes import UsageError, utc_time
from engagement_platform.settings import Settings
from engagement_platform.streaming.dlq_replay import Filters, render, replay_topic
from engagement_platform.streaming.topics import ENRICHED_DLQ
from engagement_platform.warehouse.reparse import reparse_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
        "--topic", metavar="DLQ_TOPIC", help=f"the DLQ topic to read (default {ENRICHED_DLQ})"
    )
    parser.add_argument(
        "--warehouse",
        action="store_true",
        help="re-parse ClickHouse's engagement_enriched_errors rows instead (after a fix to the parse view)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Replay (or count), show a progress bar while reading, end with the counts by reason."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    filters = Filters(args.reason, args.since)
    if args.warehouse:
        if args.topic:
            raise UsageError("--topic names a Kafka DLQ; --warehouse replays ClickHouse's errors table")
        report = reparse_settings(settings, filters, args.dry_run)
    else:
        topic = args.topic or ENRICHED_DLQ
        columns = (TextColumn(f"reading {topic}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=Console(stderr=True)) as bar:
            task = bar.add_task("read", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            try:
                report = replay_topic(settings, filters, topic=topic, dry_run=args.dry_run, progress=progress)
            except KafkaException as exc:
                raise RuntimeError(f"Kafka: {exc}") from None
    render(report, Console())
    return 0
