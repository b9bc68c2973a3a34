"""How good is what the enricher writes? Shares of flagged records over a span of ingestion.

Everything is counted over the rows ingested since a point in time (the previous evaluation, or
the last few minutes when asked by hand), so a fault shows while it happens and the figure clears
once it stops, instead of lingering for the length of a long window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from clickhouse_connect.driver.client import Client
from confluent_kafka import Consumer, TopicPartition

from engagement_platform.kafka_config import client_config
from engagement_platform.monitoring.verdict import Level, Verdict, grade


@dataclass(frozen=True)
class QualityThresholds:
    """Shares (0..1) of the records ingested in the span."""

    content_missing_warn: float = 0.01  # content rows arrive within seconds; a percent is suspicious
    content_missing_error: float = 0.10
    dlq_warn: float = 0.0  # any malformed input is worth a look
    dlq_error: float = 0.01
    errors_warn: float = 0.0  # the warehouse should parse every enriched record
    errors_error: float = 0.01


@dataclass(frozen=True)
class Quality:
    events: int
    content_missing: int
    pct_unknown: int  # engagement_pct null although the content's length and the duration are known
    parse_errors: int
    dlq: int


QUALITY_SQL = """
SELECT count(),
       countIf(content_missing),
       countIf(engagement_pct IS NULL AND length_seconds > 0 AND duration_ms IS NOT NULL),
       (SELECT count() FROM engagement_enriched_errors WHERE received_at > {since:DateTime64(3, 'UTC')})
FROM engagement_enriched
WHERE ingested_at > {since:DateTime64(3, 'UTC')}
"""


def dlq_records_since(bootstrap_servers: str, topic: str, since: datetime, timeout: float = 10.0) -> int:
    """Records the DLQ received after ``since`` (offsets for that time vs the end, per partition)."""
    consumer = Consumer(
        client_config(bootstrap_servers, extra={"group.id": "ep-quality-probe", "log_level": 2})
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return 0
        stamp = int(since.timestamp() * 1000)
        wanted = [TopicPartition(topic, p, stamp) for p in metadata.partitions]
        total = 0
        for tp in consumer.offsets_for_times(wanted, timeout=timeout):
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=timeout)
            total += max(high - tp.offset, 0) if tp.offset >= 0 else 0
        return total
    finally:
        consumer.close()


def measure(
    client: Client, bootstrap_servers: str, dlq_topic: str, since: datetime, timeout: float = 10.0
) -> Quality:
    events, missing, unknown, errors = client.query(QUALITY_SQL, parameters={"since": since}).result_rows[0]
    return Quality(
        int(events),
        int(missing),
        int(unknown),
        int(errors),
        dlq_records_since(bootstrap_servers, dlq_topic, since, timeout),
    )


def quality_verdict(q: Quality, since: datetime, thresholds: QualityThresholds) -> Verdict:
    seen = max(q.events, 1)
    shares = {
        "content_missing": q.content_missing / seen,
        "dlq": q.dlq / max(q.events + q.dlq, 1),
        "parse_errors": q.parse_errors / max(q.events + q.parse_errors, 1),
    }
    level = max(
        grade(shares["content_missing"], thresholds.content_missing_warn, thresholds.content_missing_error),
        grade(shares["dlq"], thresholds.dlq_warn, thresholds.dlq_error),
        grade(shares["parse_errors"], thresholds.errors_warn, thresholds.errors_error),
        Level.ERROR if q.pct_unknown else Level.OK,
    )
    notes = [f"{q.events:,} records since {since:%H:%M:%S} UTC"]
    notes += [
        f"{getattr(q, k):,} {k.replace('_', ' ')} ({share:.2%})" for k, share in shares.items() if share
    ]
    if q.pct_unknown:
        notes.append(f"{q.pct_unknown:,} without engagement_pct although the content's length is known")
    metadata = {
        "since": since.isoformat(),
        "events": q.events,
        "content_missing": q.content_missing,
        "engagement_pct_unknown": q.pct_unknown,
        "parse_errors": q.parse_errors,
        "dlq_records": q.dlq,
        **{f"{k}_share": round(v, 6) for k, v in shares.items()},
    }
    return Verdict(level, "; ".join(notes) + ".", metadata)
