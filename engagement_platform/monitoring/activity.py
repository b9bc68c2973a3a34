"""What the always-on processes wrote lately: one monotonic counter and the newest event time per
streaming asset, so a sensor can tell "it moved" (or "it has nothing left to do") from "it stopped".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from clickhouse_connect.driver.client import Client
from confluent_kafka.admin import AdminClient

from engagement_platform.kafka_config import client_config
from engagement_platform.monitoring.lag import oldest_unconsumed, watermarks
from engagement_platform.streaming.leaderboard import Keys, bucket_start, last_buckets


@dataclass(frozen=True)
class Activity:
    """One asset's figures now. ``written`` only ever grows (records, rows, counted events), so the
    difference between two readings is what was written in between."""

    written: int
    newest: datetime | None = None  # the newest record's time, when the sink can say
    figures: Mapping[str, Any] = field(default_factory=dict)  # per-partition offsets and the like

    def metadata(self, since_last: int) -> dict[str, Any]:
        extra = {"newest_event_time": self.newest.isoformat()} if self.newest else {}
        return {
            "written_since_last_event": since_last,
            "written_total": self.written,
            **extra,
            **self.figures,
        }


def topic_activity(
    bootstrap_servers: str, topics: Iterable[str], timeout: float = 10.0
) -> dict[str, Activity]:
    """End offsets (records ever written) and the newest record's timestamp of each topic that
    exists; absent topics are left out."""
    admin = AdminClient(client_config(bootstrap_servers, extra={"log_level": 2}))
    metadata = admin.list_topics(timeout=timeout)
    wanted = [t for t in topics if t in metadata.topics and metadata.topics[t].error is None]
    keys = [(t, p) for t in wanted for p in metadata.topics[t].partitions]
    marks = watermarks(admin, keys, timeout)
    newest_ms = oldest_unconsumed(
        bootstrap_servers, {k: high - 1 for k, (low, high) in marks.items() if high > low}, 5.0
    )
    result = {}
    for topic in wanted:
        ends = {p: marks[(topic, p)][1] for p in metadata.topics[topic].partitions if (topic, p) in marks}
        stamps = [ms for (t, _p), ms in newest_ms.items() if t == topic]
        newest = datetime.fromtimestamp(max(stamps) / 1000, UTC) if stamps else None
        result[topic] = Activity(
            sum(ends.values()), newest, {"end_offsets": {str(p): o for p, o in sorted(ends.items())}}
        )
    return result


def table_activity(client: Client, table: str, written: str, newest: str) -> Activity:
    """``written`` and ``newest`` are SQL expressions over ``table`` (our own constants)."""
    count, latest = client.query(f"SELECT {written}, {newest} FROM {table}").result_rows[0]
    if isinstance(latest, datetime) and latest.tzinfo is None:
        latest = latest.replace(tzinfo=UTC)
    empty = not count or latest is None or latest.year < 1971  # ClickHouse's max() of nothing is 1970
    return Activity(int(count or 0), None if empty else latest)


def leaderboard_activity(
    client: redis.Redis,
    now: datetime,
    committed: Mapping[int, int],
    keys: Keys | None = None,
    minutes: int = 10,
) -> Activity:
    """Events the leaderboard counted (its consumer's committed offsets) and its newest bucket."""
    keys = keys or Keys()
    buckets = last_buckets(now, minutes)
    pipe = client.pipeline(transaction=False)
    for bucket in buckets:
        pipe.zcard(keys.minute(bucket))
    sizes = dict(zip(buckets, pipe.execute(), strict=True))
    filled = [b for b in buckets if sizes[b]]
    newest = bucket_start(max(filled)) if filled else None
    figures = {
        "committed_offsets": {str(p): o for p, o in sorted(committed.items())},
        "newest_bucket": max(filled) if filled else "",
        "content_in_newest_bucket": sizes[max(filled)] if filled else 0,
    }
    return Activity(sum(committed.values()), newest, figures)
