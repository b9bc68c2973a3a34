"""This period against the last, without a stack: the previous range and the change in %."""

from __future__ import annotations

from datetime import date

import pytest

from engagement_platform.dashboard import period
from engagement_platform.warehouse.queries import Filters


def test_the_previous_range_has_the_same_days_and_ends_the_day_before() -> None:
    week = Filters(date(2026, 3, 4), date(2026, 3, 10), "video", "ios")
    assert week.previous() == Filters(date(2026, 2, 25), date(2026, 3, 3), "video", "ios")
    assert Filters(date(2026, 3, 1), date(2026, 3, 1)).previous() == Filters(
        date(2026, 2, 28), date(2026, 2, 28)
    )
    across_a_year = Filters(date(2026, 1, 1), date(2026, 1, 2)).previous()
    assert (across_a_year.start, across_a_year.end) == (date(2025, 12, 30), date(2025, 12, 31))


def test_the_change_is_in_percent_of_the_previous_value_and_none_from_zero() -> None:
    assert period.change_pct(150, 100) == pytest.approx(50.0)
    assert period.change_pct(50, 200) == pytest.approx(-75.0)
    assert period.change_pct(7, 7) == 0.0
    assert period.change_pct(5, 0) is None and period.change_pct(0, 0) is None
    assert period.change_pct(0, 4) == pytest.approx(-100.0)


def test_the_delta_reads_as_a_signed_percentage_or_says_what_it_was() -> None:
    assert period.delta(150, 100, "100") == period.Delta("+50.0 % vs 100", "normal")
    assert period.delta(1, 3, "3") == period.Delta("-66.7 % vs 3", "normal")
    assert period.delta(9, 0, "0") == period.Delta("was 0", "off")
    assert period.span(Filters(date(2026, 3, 10), date(2026, 3, 10))) == "10 Mar 2026"
    assert period.span(Filters(date(2026, 3, 4), date(2026, 3, 10))) == "04 Mar – 10 Mar 2026"
