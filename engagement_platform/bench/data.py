"""Synthetic input built by the code under test, so what a benchmark feeds cannot drift from
what the consumers really see.

Source rows come from the simulator's own generators (the rows ``simulate`` writes into
Postgres), rendered as the Debezium flat records ``connector.json`` produces. The enriched
records that the leaderboard and the warehouse read are those same rows run through the
enricher's own hot path (:func:`~engagement_platform.streaming.enrich.process_event`): byte
for byte what ``consume enrich`` writes, keys included. Pure and seeded: no broker here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson

from engagement_platform.domain import Content, Event, FlatContent, FlatEvent
from engagement_platform.source.simulator import EventGenerator, make_content
from engagement_platform.streaming import enrich

SPAN_SECONDS = 30 * 60  # well inside the leaderboard's retention, so every event counts
JITTER_SECONDS = 5.0
# Rows commit as the simulator writes them in its live mode: in bursts of 10 (`simulate
# --burst`), so each burst shares one commit time (__source_ts_ms), a little after its events.
COMMIT_BURST = 10
COMMIT_LAG_MS = 50
USERS = 2000
CHUNK = 10_000


def iso_micros(ts: datetime) -> str:
    """How Debezium renders a timestamptz (ZonedTimestamp): UTC, 'Z', microseconds."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def flat_content(
    c: Content, *, op: str = "r", source_ts_ms: int | None = None, lsn: int = 0
) -> tuple[bytes, bytes]:
    """(key, value) of a ``content.flat`` record."""
    value = FlatContent(
        id=str(c.id),
        slug=c.slug,
        title=c.title,
        content_type=c.content_type,
        length_seconds=c.length_seconds,
        publish_ts=iso_micros(c.publish_ts),
        op=op,
        source_ts_ms=source_ts_ms if source_ts_ms is not None else int(time.time() * 1000),
        lsn=lsn,
        deleted="false",
    )
    return orjson.dumps({"id": str(c.id)}), _encode(value)


def flat_event(
    event_id: int, e: Event, *, op: str = "c", source_ts_ms: int | None = None, lsn: int = 0
) -> tuple[bytes, bytes]:
    """(key, value) of an ``engagement_events.flat`` record (a jsonb column arrives as a string)."""
    value = FlatEvent(
        id=event_id,
        content_id=str(e.content_id),
        user_id=str(e.user_id),
        event_type=e.event_type,
        event_ts=iso_micros(e.event_ts),
        duration_ms=e.duration_ms,
        device=e.device,
        raw_payload=msgspec.Raw(orjson.dumps(orjson.dumps(e.raw_payload).decode())),
        op=op,
        source_ts_ms=source_ts_ms if source_ts_ms is not None else int(time.time() * 1000),
        lsn=lsn,
        deleted="false",
    )
    return orjson.dumps({"content_id": str(e.content_id)}), _encode(value)


_encode = msgspec.json.Encoder().encode


def make_contents(count: int, rng: random.Random, now: datetime | None = None) -> list[Content]:
    """``count`` content rows from the simulator's generator."""
    now = now if now is not None else datetime.now(UTC)
    return [make_content(rng, i, now) for i in range(count)]


def event_times(
    count: int, rng: random.Random, now: datetime, *, span_seconds: float, shuffle: bool
) -> Iterator[datetime]:
    """Times over the last ``span_seconds``: in order with a few seconds of jitter (a live
    stream replayed), or, with ``shuffle``, at random (the worst case for per-batch
    aggregation: every batch touches every minute)."""
    for i in range(1, count + 1):
        if shuffle:
            age = rng.uniform(0, span_seconds)
        else:
            age = span_seconds * (1 - i / count) + rng.uniform(-JITTER_SECONDS, JITTER_SECONDS)
            age = min(max(age, 0.0), span_seconds)
        yield now - timedelta(seconds=age)


def synthetic(
    n_content: int,
    n_events: int,
    *,
    seed: int = 7,
    first_id: int = 1,
    users: int = USERS,
    span_seconds: float = SPAN_SECONDS,
    shuffle: bool = False,
) -> tuple[list[Content], Iterator[tuple[bytes, bytes]]]:
    """Content rows and a lazy stream of ``n_events`` flat event records (key, value) with
    ids from ``first_id``, popularity skewed as the simulator skews it."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    contents = make_contents(n_content, rng, now)
    gen = EventGenerator(contents, users=users, seed=seed)
    times = event_times(n_events, random.Random(seed + 1), now, span_seconds=span_seconds, shuffle=shuffle)

    def events() -> Iterator[tuple[bytes, bytes]]:
        done = 0
        while done < n_events:
            count = min(CHUNK, n_events - done)
            batch = gen.batch(count, lambda: next(times))
            for b in range(0, count, COMMIT_BURST):
                burst = batch[b : b + COMMIT_BURST]
                source_ms = int(max(e.event_ts for e in burst).timestamp() * 1000) + COMMIT_LAG_MS
                for i, e in enumerate(burst, start=first_id + done + b):
                    yield flat_event(i, e, source_ts_ms=source_ms, lsn=i)
            done += count

    return contents, events()


def content_cache(contents: Iterable[Content]) -> dict[str, enrich.Content]:
    """The enricher's content cache after reading these rows from ``content.flat``."""
    cache: dict[str, enrich.Content] = {}
    for key, value in map(flat_content, contents):
        row = enrich.parse_content(key, value)
        assert isinstance(row, enrich.Content)  # upserts only: nothing here is deleted
        cache[row.id] = row
    return cache


def enriched(
    contents: Iterable[Content], flat_events: Iterable[tuple[bytes, bytes]], enriched_at: str | None = None
) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of the ``engagement_enriched`` records the enrichment runner emits for
    these flat events, through its own hot path."""
    cache = content_cache(contents)
    stamp = enriched_at if enriched_at is not None else enrich.now_iso_ms()
    for _key, value in flat_events:
        out = enrich.process_event(value, cache, stamp)
        if type(out) is not tuple:
            raise ValueError(f"synthetic event has no content or is not valid: {value[:200]!r}")
        yield out[1], out[0]


def synthetic_enriched(
    n_content: int, n_events: int, **options: Any
) -> tuple[list[Content], Iterator[tuple[bytes, bytes]]]:
    """:func:`synthetic`'s rows, enriched: the input of the consumers of ``engagement_enriched``."""
    contents, events = synthetic(n_content, n_events, **options)
    return contents, enriched(contents, events)
