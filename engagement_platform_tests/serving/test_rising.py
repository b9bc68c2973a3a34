"""Rising content: the ranking rule alone, then ``rising_content`` on a real Redis filled by the
consumer's own apply code."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from engagement_platform.bench.data import make_contents
from engagement_platform.serving.rising import DEFAULT_MIN_COUNT, Growth, rank_rising, rising_content
from engagement_platform.streaming.leaderboard import Keys, Rules
from engagement_platform.streaming.leaderboard_runner import Applier
from engagement_platform_tests import harness

# --- the ranking, no Redis --------------------------------------------------------------------


def test_titles_rank_by_growth_and_a_new_title_counts_as_growth_from_one() -> None:
    current = {"steady": 100.0, "five-to-80": 80.0, "new": 30.0, "doubled": 40.0, "falling": 12.0}
    previous = {"steady": 100.0, "five-to-80": 5.0, "doubled": 20.0, "falling": 50.0}
    assert rank_rising(current, previous, 10, 10) == [
        Growth("new", 30.0, 0.0, None),  # 0 -> 30: +2,900% against one
        Growth("five-to-80", 80.0, 5.0, 1500.0),
        Growth("doubled", 40.0, 20.0, 100.0),
    ]  # not "steady" (no growth) nor "falling"
    assert [g.content_id for g in rank_rising(current, previous, 2, 10)] == ["new", "five-to-80"]


def test_one_event_does_not_make_a_trend() -> None:
    current, previous = {"one": 1.0, "nine": 9.0, "ten": 10.0}, {}
    assert [g.content_id for g in rank_rising(current, previous, 10, DEFAULT_MIN_COUNT)] == ["ten"]
    assert [g.content_id for g in rank_rising(current, previous, 10, 0)] == ["ten", "nine", "one"]


def test_equal_growth_orders_by_the_larger_score_then_the_id() -> None:
    current = {"b": 20.0, "a": 20.0, "big": 40.0}
    previous = {"b": 10.0, "a": 10.0, "big": 20.0}
    assert [g.content_id for g in rank_rising(current, previous, 10, 1)] == ["big", "a", "b"]


@pytest.mark.parametrize(("n", "min_count"), [(0, 10), (5, -1)])
def test_a_bad_argument_is_refused(n: int, min_count: float) -> None:
    with pytest.raises(ValueError, match="must"):
        rank_rising({}, {}, n, min_count)


# --- against Redis ----------------------------------------------------------------------------


def test_rising_content_compares_the_last_window_with_the_one_before(r: redis.Redis, keys: Keys) -> None:
    rules = Rules()
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    riser, steady, faller, blip = make_contents(4, random.Random(3))
    rng = random.Random(3)
    ids = iter(range(1, 100_000))

    def at(content: Any, minutes_ago: float, n: int) -> list[dict[str, Any]]:
        ts = now - timedelta(minutes=minutes_ago)
        return [harness.enriched_event(next(ids), content, ts, rng) for _ in range(n)]

    # window 10: the last 10 minutes (now's included) against the 10 before them
    events = (
        at(riser, 3, 40) + at(riser, 12, 10)  # +300%
        + at(steady, 1, 50) + at(steady, 15, 50)  # flat: not rising
        + at(faller, 2, 12) + at(faller, 19, 30)  # falling
        + at(blip, 0, 3)  # new, but under the minimum
        + at(riser, 25, 99)  # outside both windows
    )  # fmt: skip
    Applier(r, rules, keys).apply(harness.aggregate_records(events, rules, now))

    rows = rising_content(10, 5, client=r, key_prefix=keys.prefix, now=now)
    assert [(x.rank, x.content_id, x.current, x.previous, x.growth_pct) for x in rows] == [
        (1, str(riser.id), 40.0, 10.0, 300.0)
    ]
    assert (rows[0].title, rows[0].content_type) == (riser.title, riser.content_type)
    low = rising_content(10, 5, min_count=3, client=r, key_prefix=keys.prefix, now=now)
    assert [(x.content_id, x.growth_pct) for x in low] == [(str(riser.id), 300.0), (str(blip.id), None)]
    # window 5: minutes 0-4 against 5-9; every title had nothing before, the larger now ranks first
    five = rising_content(5, 5, client=r, key_prefix=keys.prefix, now=now)
    assert [(x.content_id, x.current, x.previous, x.growth_pct) for x in five] == [
        (str(steady.id), 50.0, 0.0, None),
        (str(riser.id), 40.0, 0.0, None),
        (str(faller.id), 12.0, 0.0, None),
    ]
    assert rising_content(10, 5, client=r, key_prefix="nothing-here:", now=now) == []
