"""Replaying dead letters: send DLQ records back to the topic they came from, once their cause is fixed.

A replay reads the DLQ from its beginning up to the high watermarks taken at its start, with
``assign()`` and no group commits, so it is repeatable and never chases the records it causes
(a record that still fails is dead-lettered again, after the watermark). Each record kept by
the filters (reason prefix, DLQ timestamp since) goes back with its original key, to the
partition it came from (a compacted changelog keeps a key's versions on one partition), its
original bytes (tombstones as null) and the headers ``dlq.replayed`` (replay time, ISO-8601
UTC) and ``dlq.reason``. Everything is acknowledged before :func:`replay_topic` returns.

Replaying twice is harmless: every sink dedupes by event id. The warehouse's counterpart,
re-parsing ``engagement_enriched_errors``, is :mod:`engagement_platform.warehouse.reparse`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from engagement_platform.argtypes import UsageError, utc_time
from engagement_platform.settings import Settings
from engagement_platform.streaming import kafka_io
from engagement_platform.streaming.enrich import format_utc_ms
from engagement_platform.streaming.topics import ENRICHED_DLQ

UNREADABLE = "(unreadable DLQ record)"  # a DLQ value that is not this module's format: skipped
Progress = Callable[[int, int], None]  # (records read so far, records to read)


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


@dataclass(frozen=True)
class Letter:
    """One decoded DLQ record: where it came from and what to send back."""

    reason: str
    topic: str
    partition: int
    key: bytes | None
    value: bytes | None


def decode_letter(msg: Message) -> Letter:
    """The DLQ record ``msg`` (format: :mod:`.dlq`); ValueError when it is not one."""
    try:
        record = orjson.loads(msg.value() or b"")
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    reason, topic, partition = record.get("reason"), record.get("topic"), record.get("partition")
    original, encoding = record.get("original"), record.get("original_encoding")
    if not isinstance(reason, str) or not isinstance(topic, str) or not topic:
        raise ValueError("reason or topic missing")
    if not isinstance(partition, int):
        raise ValueError("partition missing")
    if original is None:
        value = None
    elif encoding == "utf-8" and isinstance(original, str):
        value = original.encode()
    elif encoding == "base64" and isinstance(original, str):
        try:
            value = base64.b64decode(original, validate=True)
        except binascii.Error:
            raise ValueError("original is not base64") from None
    else:
        raise ValueError(f"unknown original_encoding {encoding!r}")
    return Letter(reason, topic, partition, msg.key(), value)


def _timestamp(msg: Message) -> datetime:
    _type, ms = msg.timestamp()
    return datetime.fromtimestamp(max(ms, 0) / 1000, UTC)


def read_dlq(
    bootstrap_servers: str,
    topic: str,
    on_message: Callable[[Message], None],
    progress: Progress | None = None,
) -> int:
    """Call ``on_message`` for every record of ``topic`` up to the high watermarks of now, read
    with ``assign()`` (no group join, nothing committed). Returns the records read. LookupError
    when the topic does not exist."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": "dlq-replay",  # required by the client; never joined, nothing committed
            "enable.auto.commit": False,
            "fetch.wait.max.ms": kafka_io.FETCH_WAIT_MS,
            "logger": kafka_io.CLIENT_LOG,
        }
    )
    try:
        found = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise LookupError(f"topic {topic} does not exist")
        ends: dict[int, int] = {}
        starts = []
        for p in sorted(found.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
                starts.append(TopicPartition(topic, p, low))
        total = sum(ends[tp.partition] - tp.offset for tp in starts)
        read = 0
        if progress is not None:
            progress(0, total)
        if not starts:
            return 0
        consumer.assign(starts)
        while ends:
            for msg in consumer.consume(5000, timeout=1.0):
                err = msg.error()
                if err is not None:
                    if err.fatal():
                        raise KafkaException(err)
                    if err.code() != KafkaError._PARTITION_EOF:
                        kafka_io.log.warning("DLQ read: %s", err)
                    continue
                end = ends.get(msg.partition())
                if end is None or msg.offset() >= end:
                    continue
                on_message(msg)
                read += 1
                if msg.offset() >= end - 1:
                    del ends[msg.partition()]
            if progress is not None:
                progress(read, total)
        return read
    finally:
        consumer.close()


def replay_topic(
    settings: Settings,
    filters: Filters = EVERYTHING,
    *,
    topic: str = ENRICHED_DLQ,
    dry_run: bool = False,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> Report:
    """Replay the records of the DLQ ``topic`` that pass ``filters`` (see the module's doc);
    with ``dry_run`` only count them. RuntimeError when a record's topic is gone or the broker
    does not acknowledge every record sent; LookupError when ``topic`` does not exist."""
    bootstrap = settings.kafka_bootstrap_servers
    report = Report(topic, dry_run)
    replayed_at = format_utc_ms(now or datetime.now(UTC)).encode()
    producer = None if dry_run else Producer(kafka_io.producer_config(settings))
    partitions: dict[str, int] = {}
    failed: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    def partitions_of(name: str) -> int:
        if name not in partitions:
            assert producer is not None
            found = producer.list_topics(name, timeout=10).topics.get(name)
            ok = found is not None and found.error is None
            partitions[name] = len(found.partitions) if ok and found is not None else 0
        return partitions[name]

    def on_message(msg: Message) -> None:
        try:
            letter = decode_letter(msg)
        except ValueError as exc:
            kafka_io.log.warning("%s[%d]@%d skipped: %s", topic, msg.partition(), msg.offset(), exc)
            report.count(UNREADABLE).skipped += 1
            return
        counts = report.count(letter.reason)
        if not filters.keep(letter.reason, _timestamp(msg)):
            counts.skipped += 1
            return
        counts.replayed += 1
        report.to_topics[letter.topic] = report.to_topics.get(letter.topic, 0) + 1
        if producer is None:
            return
        n = partitions_of(letter.topic)
        if n == 0:
            producer.flush(30)
            raise RuntimeError(f"topic {letter.topic} (where a dead letter came from) does not exist")
        headers = [("dlq.replayed", replayed_at), ("dlq.reason", letter.reason.encode())]
        kafka_io.produce(
            producer,
            letter.topic,
            letter.value,
            letter.key,
            headers=headers,
            on_delivery=delivered,
            partition=letter.partition if letter.partition < n else None,
        )
        producer.poll(0)

    read_dlq(bootstrap, topic, on_message, progress)
    if producer is not None:
        left = producer.flush(60)
        if left or failed:
            detail = failed[0] if failed else f"{left} still queued"
            raise RuntimeError(
                f"{left + len(failed)} replayed record(s) not acknowledged ({detail}); "
                "replaying again is safe: sinks dedupe by event id"
            )
    return report


def records_by_reason(bootstrap_servers: str, topic: str = ENRICHED_DLQ) -> dict[str, int]:
    """How many records the DLQ holds per reason code (0 topics: LookupError)."""
    report = Report(topic, dry_run=True)

    def on_message(msg: Message) -> None:
        try:
            report.count(decode_letter(msg).reason).skipped += 1
        except ValueError:
            report.count(UNREADABLE).skipped += 1

    read_dlq(bootstrap_servers, topic, on_message)
    return report.records_by_reason()


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
    if report.source == "engagement_enriched_errors":
        out["still_failing"] = report.still_failing
    return out


def render(report: Report, console: Any) -> None:
    """The report as a rich table of counts by reason on ``console``."""
    from rich.table import Table

    verb = "would replay" if report.dry_run else "replayed"
    warehouse = report.source == "engagement_enriched_errors"
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
