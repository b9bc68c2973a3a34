"""Load one past day from Postgres into the warehouse, enriched by the consumer's own functions.

Each source row goes through enrich's own functions into the table the queue feeds, so
nothing drifts from streaming; event ids already loaded are skipped. Design:
docs/design/warehouse.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from engagement_platform.streaming import enrich
from engagement_platform.warehouse import ddl
from engagement_platform.warehouse.gate import IngestGate

BATCH = 20_000

SOURCE_QUERY = """
SELECT e.id, e.content_id::text, e.user_id::text, e.event_type, e.event_ts, e.duration_ms, e.device,
       c.id::text, c.slug, c.title, c.content_type, c.length_seconds, c.publish_ts
FROM engagement_events e
LEFT JOIN content c ON c.id = e.content_id
WHERE e.event_ts >= %(start)s AND e.event_ts < %(end)s
ORDER BY e.id
"""


@dataclass
class BackfillResult:
    source_rows: int = 0
    already_loaded: int = 0
    inserted: int = 0
    invalid: int = 0
    invalid_samples: list[str] = field(default_factory=list)


def debezium_ts(value: datetime | None) -> str | None:
    """A timestamptz as Debezium's flat records carry it (UTC, microseconds, ``Z``)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_record(row: tuple[Any, ...]) -> bytes:
    event_id, content_id, user_id, event_type, event_ts, duration_ms, device = row[:7]
    return orjson.dumps(
        {
            "id": event_id,
            "content_id": content_id,
            "user_id": user_id,
            "event_type": event_type,
            "event_ts": debezium_ts(event_ts),
            "duration_ms": duration_ms,
            "device": device,
        }
    )


def content_record(row: tuple[Any, ...]) -> tuple[bytes, bytes] | None:
    content_id, slug, title, content_type, length_seconds, publish_ts = row[7:13]
    if content_id is None:
        return None
    key = orjson.dumps({"id": content_id})
    value = orjson.dumps(
        {
            "id": content_id,
            "slug": slug,
            "title": title,
            "content_type": content_type,
            "length_seconds": length_seconds,
            "publish_ts": debezium_ts(publish_ts),
        }
    )
    return key, value


def enrich_rows(
    rows: Iterable[tuple[Any, ...]],
    skip_ids: set[int],
    result: BackfillResult,
    enriched_at: str,
) -> Iterator[bytes]:
    """The enriched JSON of each row not in ``skip_ids``; invalid rows are counted, not raised."""
    contents: dict[str, enrich.Content | None] = {}
    for row in rows:
        result.source_rows += 1
        if row[0] in skip_ids:
            result.already_loaded += 1
            continue
        try:
            event = enrich.parse_event(event_record(row))
            if event is None:  # not reachable for table rows; kept for symmetry with the consumer
                continue
            content = contents.get(event.content_id)
            if content is None and event.content_id not in contents:
                record = content_record(row)
                parsed = enrich.parse_content(*record) if record is not None else None
                content = parsed if isinstance(parsed, enrich.Content) else None
                contents[event.content_id] = content
        except enrich.InvalidRecord as exc:
            result.invalid += 1
            if len(result.invalid_samples) < 5:
                result.invalid_samples.append(f"id {row[0]}: {exc.reason}")
            continue
        yield enrich.enrich_bytes(event, content, enriched_at)


def loaded_ids(client: Client, start: datetime, end: datetime) -> set[int]:
    result = client.query(
        f"SELECT DISTINCT event_id FROM {ddl.ENRICHED} "
        "WHERE event_ts >= {start:DateTime64(3, 'UTC')} AND event_ts < {end:DateTime64(3, 'UTC')}",
        parameters={"start": start, "end": end},
    )
    return {row[0] for row in result.result_rows}


def backfill_day(
    pg_conn: Any,
    client: Client,
    start: datetime,
    end: datetime,
    gate: IngestGate,
    progress: Callable[[BackfillResult], None] | None = None,
) -> BackfillResult:
    """Load events with ``start <= event_ts < end`` that the warehouse does not hold yet; each
    insert passes ``gate`` (a migration may be replacing a view of the parse chain)."""
    result = BackfillResult()
    skip = loaded_ids(client, start, end)
    enriched_at = enrich.now_iso_ms()
    with pg_conn.cursor(name="history_backfill") as cur:  # server-side: a day never sits in memory whole
        cur.itersize = BATCH
        cur.execute(SOURCE_QUERY, {"start": start, "end": end})
        batch: list[bytes] = []
        for message in enrich_rows(cur, skip, result, enriched_at):
            batch.append(message)
            if len(batch) >= BATCH:
                with gate.insert():
                    result.inserted += ddl.insert_raw(client, ddl.INGEST, batch)
                batch = []
                if progress is not None:
                    progress(result)
        with gate.insert():
            result.inserted += ddl.insert_raw(client, ddl.INGEST, batch)
    return result
