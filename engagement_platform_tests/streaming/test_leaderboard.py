"""Unit tests of the leaderboard rules: no broker, no Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from engagement_platform.streaming.leaderboard import (
    METRIC_ENGAGEMENT_SECONDS,
    InvalidEvent,
    Keys,
    Rules,
    SeenBits,
    bucket_epoch,
    bucket_of,
    last_buckets,
    minute_bucket,
)
from engagement_platform_tests import harness

NOW = datetime(2026, 11, 29, 20, 0, 30, tzinfo=UTC)


def ev(event_id: int, ts: str, content_id: str = "c1", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "content_id": content_id,
        "event_ts": ts,
        "engagement_seconds": 1.5,
        "title": f"title {content_id}",
        "content_type": "video",
        "slug": content_id,
        "content_missing": False,
        **extra,
    }


@pytest.mark.parametrize(
    ("ts", "bucket"),
    [
        ("2026-11-29T19:46:13.123Z", "202611291946"),
        ("2026-11-29T19:46:59.999Z", "202611291946"),
        ("2026-11-29T19:47:00.000Z", "202611291947"),
        # hour, day, month and year boundaries
        ("2026-11-29T19:59:59.999Z", "202611291959"),
        ("2026-11-29T20:00:00.000Z", "202611292000"),
        ("2026-11-30T23:59:59.999Z", "202611302359"),
        ("2026-12-01T00:00:00.000Z", "202612010000"),
        ("2026-12-31T23:59:59.999Z", "202612312359"),
        ("2027-01-01T00:00:00.000Z", "202701010000"),
        # leap day
        ("2028-02-29T12:00:00.000Z", "202802291200"),
        # other spellings of UTC, and offsets converted to UTC (crossing the year backwards/forwards)
        ("2026-11-29T19:46:13Z", "202611291946"),
        ("2026-11-29T19:46:13.123456+00:00", "202611291946"),
        ("2026-12-31T23:59:30.000-01:00", "202701010059"),
        ("2027-01-01T00:30:00.000+01:00", "202612312330"),
        ("2026-11-29T19:46:13.123+05:30", "202611291416"),
    ],
)
def test_minute_bucket_is_the_utc_minute(ts: str, bucket: str) -> None:
    assert minute_bucket(ts) == bucket
    assert Keys().minute(minute_bucket(ts)) == f"zset:eng:minute:{bucket}"


def test_fast_path_agrees_with_datetime_parsing() -> None:
    start = datetime(2026, 12, 31, 23, 58, 0, tzinfo=UTC)
    for i in range(0, 3 * 60 * 1000, 997):
        ts = start + timedelta(milliseconds=i)
        iso = ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
        assert minute_bucket(iso) == bucket_of(ts)


@pytest.mark.parametrize(
    "ts", ["2026-11-29T19:46:13", "yesterday", "2026-13-01T00:00:00Z", "", "2026-11-29T25:00:00Z"]
)
def test_unusable_timestamps_are_refused(ts: str) -> None:
    with pytest.raises((InvalidEvent, ValueError)):
        minute_bucket(ts)


def test_bucket_helpers() -> None:
    assert bucket_epoch("197001010001") == 60
    assert last_buckets(datetime(2027, 1, 1, 0, 1, 59, tzinfo=UTC), 3) == [
        "202701010001",
        "202701010000",
        "202612312359",
    ]
    # an aware non-UTC "now" is still bucketed in UTC
    assert last_buckets(datetime(2027, 1, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))), 1) == [
        "202701010001"
    ]
    with pytest.raises(ValueError):
        bucket_of(datetime(2026, 1, 1))


def test_aggregate_groups_by_bucket_and_content() -> None:
    events = [
        ev(1, "2026-11-29T19:59:59.999Z", "a"),
        ev(2, "2026-11-29T20:00:00.000Z", "a"),
        ev(3, "2026-11-29T20:00:10.000Z", "a"),
        ev(4, "2026-11-29T20:00:20.000Z", "b"),
    ]
    batch = harness.aggregate_records(events, Rules(), NOW)
    assert batch.processed == 4 and batch.candidates == 4
    assert batch.buckets == ["202611291959", "202611292000"]
    assert batch.groups["202611291959"]["a"].event_ids == [1]
    assert batch.groups["202611292000"]["a"].event_ids == [2, 3]
    assert batch.groups["202611292000"]["b"].total == 1
    assert batch.content["a"] == {"title": "title a", "content_type": "video", "slug": "a"}


def test_duplicates_inside_a_batch_count_once() -> None:
    events = [
        ev(7, "2026-11-29T20:00:00.000Z"),
        ev(7, "2026-11-29T20:00:00.000Z"),
        ev(8, "2026-11-29T20:00:01Z"),
    ]
    batch = harness.aggregate_records(events, Rules(), NOW)
    assert batch.candidates == 2 and batch.batch_duplicates == 1


def test_metric_choice() -> None:
    events = [
        ev(1, "2026-11-29T20:00:00Z", engagement_seconds=12.5),
        ev(2, "2026-11-29T20:00:01Z", engagement_seconds=None),  # a click: seen, adds nothing
        ev(3, "2026-11-29T20:00:02Z", engagement_seconds=0.25),
    ]
    assert harness.aggregate_records(events, Rules(), NOW).groups["202611292000"]["c1"].total == 3
    seconds = harness.aggregate_records(events, Rules(metric=METRIC_ENGAGEMENT_SECONDS), NOW)
    assert seconds.groups["202611292000"]["c1"].total == pytest.approx(12.75)
    assert seconds.candidates == 3
    bad = harness.aggregate_records(
        [ev(4, "2026-11-29T20:00:00Z", engagement_seconds=-1)], Rules(metric="engagement_seconds"), NOW
    )
    assert bad.invalid == 1 and bad.candidates == 0
    with pytest.raises(ValueError):
        Rules(metric="likes")


def test_late_and_future_events_are_skipped_and_counted() -> None:
    rules = Rules(retention_minutes=60, max_future_minutes=5)
    # NOW is 20:00:30; the oldest accepted bucket is the one holding 19:00:30, i.e. 19:00
    events = [
        ev(1, "2026-11-29T18:59:59.999Z"),  # late
        ev(2, "2026-11-29T19:00:00.000Z"),  # oldest accepted minute
        ev(3, "2026-11-29T20:05:59.999Z"),  # newest accepted minute
        ev(4, "2026-11-29T20:06:00.000Z"),  # future
        ev(5, "2025-11-29T20:00:00.000Z"),  # a year late
    ]
    batch = harness.aggregate_records(events, rules, NOW)
    assert (batch.late, batch.future, batch.candidates) == (2, 1, 2)
    assert batch.buckets == ["202611291900", "202611292005"]


def test_expiry_outlives_every_accepted_write() -> None:
    """The replay guarantee: while a bucket accepts writes, its dedupe bits have not expired
    (a bitmap lives at least as long as every bucket its ids went to: SeenBits)."""
    rules = Rules(retention_minutes=10, ttl_margin_seconds=60)
    assert rules.ttl_seconds == 660
    bucket = "202611292000"
    start = bucket_epoch(bucket)
    for offset in range(0, 60 * 60, 7):  # the consumer's clock walks past the bucket
        now = datetime.fromtimestamp(start + offset, UTC)
        oldest, newest = rules.window(now)
        if oldest <= bucket <= newest:
            assert rules.expire_at(bucket) > now.timestamp() + 60  # a minute of slack at least
    assert rules.window(datetime.fromtimestamp(start + 60 + 600, UTC))[0] > bucket  # no longer accepted
    with pytest.raises(ValueError):
        Rules(ttl_margin_seconds=0)


def test_invalid_records_are_counted_not_raised() -> None:
    events: list[Any] = [
        InvalidEvent("bad JSON"),
        {"content_id": "c", "event_ts": "2026-11-29T20:00:00Z"},  # no id
        ev(True, "2026-11-29T20:00:00Z"),  # a bool is not an id
        ev(1, "2026-11-29T20:00:00Z", content_id=None),
        ev(2, 1764446400),
        ev(3, "2026-11-29T20:00:00"),  # naive
        ev(4, "2026-11-29T20:00:00Z"),
    ]
    batch = harness.aggregate_records(events, Rules(), NOW)
    assert batch.invalid == 6 and batch.candidates == 1
    assert batch.invalid_samples and len(batch.invalid_samples) <= 3


def test_missing_content_keeps_counting_but_stores_no_title() -> None:
    events = [
        ev(1, "2026-11-29T20:00:00Z", "x", content_missing=True, title=None, content_type=None),
        ev(2, "2026-11-29T20:00:01Z", "y", content_missing=True, title=None),
    ]
    batch = harness.aggregate_records(events, Rules(), NOW)
    assert batch.candidates == 2 and batch.content == {}
    later = harness.aggregate_records([*events, ev(3, "2026-11-29T20:00:02Z", "x")], Rules(), NOW)
    assert later.content == {"x": {"title": "title x", "content_type": "video", "slug": "x"}}


def test_key_prefix_applies_to_every_key() -> None:
    keys = Keys("t1:")
    assert keys.minute("202611292000") == "t1:zset:eng:minute:202611292000"
    assert keys.seen_bitmap(3) == "t1:bitmap:eng:seen:3"
    assert keys.seen_bit(3 * 2**20 + 5) == ("t1:bitmap:eng:seen:3", 5)
    assert keys.old_seen_pattern == "t1:set:eng:seen:*"
    assert keys.content == "t1:hash:eng:content"
    assert all(p.startswith("t1:") for p in keys.all_patterns)


@pytest.mark.parametrize("metric", ["events", METRIC_ENGAGEMENT_SECONDS])
def test_any_event_type_and_new_columns_are_counted(metric: str) -> None:
    """The open vocabulary: a type the leaderboard never heard of, and a record carrying a
    new source column, count like any other (the decoder reads only what it ranks by)."""
    events = [
        ev(1, "2026-11-29T20:00:00Z", event_type="share"),
        ev(2, "2026-11-29T20:00:01Z", event_type="seek_30s", app_version="5.3.0", flags={"beta": [1]}),
        ev(3, "2026-11-29T20:00:02Z", event_type="play"),
    ]
    batch = harness.aggregate_records(events, Rules(metric=metric), NOW)
    assert batch.invalid == 0 and batch.candidates == 3
    assert batch.groups["202611292000"]["c1"].total == (3 if metric == "events" else 4.5)


def test_seen_bits_pack_ids_by_range_with_the_latest_expiry_per_bitmap() -> None:
    bits = SeenBits(Keys("t1:"))
    r = 2**20
    big = 10**15
    # two buckets of one batch: the first bitmap gets the later of their expiries
    runs, offsets = bits.pack([5 * r + 2, 5 * r + 1], expire_at=1_000)
    assert (msgspec.json.decode(runs), msgspec.json.decode(offsets)) == ([1, 2], [2, 1])
    runs, offsets = bits.pack([5 * r + 3, 6 * r, 6 * r + 7, big, 5 * r + 4], expire_at=2_000)
    assert msgspec.json.decode(runs) == [1, 1, 2, 2, 3, 1, 1, 1]  # in the ids' order
    assert msgspec.json.decode(offsets) == [3, 0, 7, big & (r - 1), 4]
    assert bits.bitmap_keys == [
        "t1:bitmap:eng:seen:5",
        "t1:bitmap:eng:seen:6",
        f"t1:bitmap:eng:seen:{big >> 20}",
    ]
    assert bits.expire_at == [2_000, 2_000, 2_000]
    # an older bucket never moves an expiry earlier
    bits.pack([6 * r + 9], expire_at=500)
    assert bits.expire_at == [2_000, 2_000, 2_000]
    assert bits.pack([], expire_at=1) == (b"[]", b"[]")


def test_seen_bits_of_negative_ids_stay_in_their_own_range() -> None:
    """bigint ids can be negative: the offset is still in 0..2^20-1."""
    keys = Keys()
    assert keys.seen_bit(-1) == ("bitmap:eng:seen:-1", 2**20 - 1)
    bits = SeenBits(keys)
    runs, offsets = bits.pack([-1, -(2**20)], expire_at=1)
    assert (msgspec.json.decode(runs), msgspec.json.decode(offsets)) == ([1, 2], [2**20 - 1, 0])
    assert bits.bitmap_keys == ["bitmap:eng:seen:-1"]
