"""The benchmarks' input, without a broker: it is what the enricher emits for the
simulator's rows, and every consumer has the same work to do with it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import orjson
import pytest

from engagement_platform.bench import data
from engagement_platform.domain import KNOWN_EVENT_TYPES
from engagement_platform.streaming import enrich
from engagement_platform.streaming.leaderboard import METRIC_EVENTS, Rules, aggregate, decoder
from engagement_platform_tests import harness

STAMP = "2026-01-01T00:00:00.000Z"


def test_enriched_records_are_what_the_enricher_produces_for_the_same_rows() -> None:
    contents, events = data.synthetic(7, 2_000, seed=3)
    flat = list(events)
    got = list(data.enriched(contents, flat, STAMP))

    # the general path, record by record: parse the flat rows, join, format
    cache = {}
    for key, value in map(data.flat_content, contents):
        row = enrich.parse_content(key, value)
        cache[row.id] = row
    want = []
    for _key, value in flat:
        event = enrich.parse_event(value)
        assert event is not None
        content = cache[event.content_id]
        want.append((content.key, enrich.enrich_bytes(event, content, STAMP)))
    assert got == want
    assert len({orjson.loads(v)["event_id"] for _k, v in got}) == 2_000


def test_synthetic_is_seeded_and_covers_the_event_shapes() -> None:
    def rows(seed: int) -> list[dict]:
        contents, events = data.synthetic(5, 500, seed=seed)
        return [orjson.loads(v) for _k, v in events]

    first = rows(1)
    assert [(r["content_id"], r["event_type"], r["duration_ms"]) for r in first] == [
        (r["content_id"], r["event_type"], r["duration_ms"]) for r in rows(1)
    ]
    assert {r["event_type"] for r in first} == set(KNOWN_EVENT_TYPES)
    assert any(r["duration_ms"] is None for r in first)  # clicks


@pytest.mark.parametrize("shuffle", [False, True])
def test_enriched_input_is_all_counted_by_the_leaderboard(shuffle: bool) -> None:
    """No event late, in the future or invalid: every variant has the same work to do."""
    _contents, records = data.synthetic_enriched(20, 3_000, shuffle=shuffle)
    read = decoder(METRIC_EVENTS)
    batch = aggregate([read(v) for _k, v in records], Rules(), datetime.now(UTC))
    assert (batch.processed, batch.candidates) == (3_000, 3_000)
    assert batch.invalid == batch.late == batch.future == batch.batch_duplicates == 0


def test_event_times_stay_in_the_span_and_in_order_unless_shuffled() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    ordered = list(data.event_times(1_000, random.Random(1), now, span_seconds=600, shuffle=False))
    scattered = list(data.event_times(1_000, random.Random(1), now, span_seconds=600, shuffle=True))
    for times in (ordered, scattered):
        assert all(now - timedelta(seconds=600) <= t <= now for t in times)
    # in order but for the jitter
    assert all(b - a > -timedelta(seconds=2 * data.JITTER_SECONDS) for a, b in pairwise(ordered))
    assert ordered[-1] - ordered[0] > timedelta(seconds=500)
    assert sum(b < a for a, b in pairwise(scattered)) > 300


def test_enriched_event_places_an_event_and_goes_through_enrich() -> None:
    rng = random.Random(5)
    content = data.make_contents(1, rng)[0]
    ts = datetime(2026, 3, 1, 12, 34, 56, 789123, tzinfo=UTC)
    record = harness.enriched_event(42, content, ts, rng)
    assert (record["event_id"], record["content_id"]) == (42, str(content.id))
    assert record["event_ts"] == "2026-03-01T12:34:56.789Z"
    assert (record["title"], record["slug"], record["content_missing"]) == (
        content.title,
        content.slug,
        False,
    )
    assert set(record) == set(
        enrich.enrich(enrich.Event(1, "c", None, "click", STAMP, None, None, None), None, STAMP)
    )


def test_rows_commit_in_bursts_after_their_events() -> None:
    """As the simulator's live mode writes them: one commit time per burst, so the
    enricher's per-commit-time cache sees what it sees in production."""
    _contents, events = data.synthetic(5, 1_000)
    rows = [orjson.loads(v) for _k, v in events]
    commits = [r["__source_ts_ms"] for r in rows]
    assert len(set(commits)) == 1_000 // data.COMMIT_BURST
    for r in rows:
        event_ms = datetime.fromisoformat(r["event_ts"]).timestamp() * 1000
        assert r["__source_ts_ms"] >= event_ms
