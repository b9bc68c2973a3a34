"""Lag arithmetic and thresholds, on plain numbers."""

from __future__ import annotations

import dagster as dg
import pytest

from engagement_platform.defs.monitoring import severity
from engagement_platform.monitoring.lag import LagThresholds, group_lag, lag_verdict
from engagement_platform.monitoring.verdict import Level

# --------------------------------------------------------------------------- pure


def test_lag_is_high_watermark_minus_committed_per_partition() -> None:
    lag = group_lag([0, 1, 2], high={0: 100, 1: 50, 2: 7}, committed={0: 40, 1: 50, 2: 0})
    assert lag.lag == {0: 60, 1: 0, 2: 7}
    assert lag.total == 67 and lag.unknown == ()


def test_an_uncommitted_partition_counts_from_the_low_watermark() -> None:
    # -1001 is librdkafka's "no offset"; the consumers start at the earliest offset
    lag = group_lag([0, 1], high={0: 100, 1: 100}, committed={0: 90, 1: -1001}, low={1: 30})
    assert lag.lag == {0: 10, 1: 70}
    assert lag.committed == {0: 90}


def test_a_commit_past_the_watermark_is_no_lag_and_unknown_watermarks_are_reported() -> None:
    lag = group_lag([0, 1, 2], high={0: 10, 1: -1001}, committed={0: 25, 1: 3, 2: 3})
    assert lag.lag == {0: 0}
    assert lag.unknown == (1, 2)


@pytest.mark.parametrize(
    ("total", "level"),
    [(0, Level.OK), (10, Level.OK), (11, Level.WARN), (100, Level.WARN), (101, Level.ERROR)],
)
def test_thresholds_grade_the_total(total: int, level: Level) -> None:
    lag = group_lag([0], high={0: total}, committed={0: 0})
    verdict = lag_verdict("g", "t", lag, LagThresholds(warn=10, error=100))
    assert verdict.level is level
    assert verdict.passed is (level is Level.OK)
    expected = dg.AssetCheckSeverity.ERROR if level is Level.ERROR else dg.AssetCheckSeverity.WARN
    assert severity(verdict.level) is expected


def test_a_group_that_never_committed_warns_only_when_something_waits() -> None:
    thresholds = LagThresholds(warn=1000, error=2000)
    waiting = lag_verdict("g", "t", group_lag([0], high={0: 5}, committed={}), thresholds)
    assert waiting.level is Level.WARN and "never committed" in waiting.description
    idle = lag_verdict("g", "t", group_lag([0], high={0: 0}, committed={}), thresholds)
    assert idle.passed and "never committed" in idle.description
    missing_topic = lag_verdict("g", "t", group_lag([], high={}, committed={}), thresholds)
    assert missing_topic.level is Level.WARN and "does not exist" in missing_topic.description
