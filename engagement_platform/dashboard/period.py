"""This period against the last: how a headline figure's change is worded. Pure: the
previous range itself is ``Filters.previous`` (the same number of days, just before)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engagement_platform.warehouse.queries import Filters


def change_pct(current: float, previous: float) -> float | None:
    """The change from ``previous`` to ``current`` in %; None when there was nothing before (a
    change from 0 has no percentage)."""
    if previous == 0:
        return None
    return (current - previous) / abs(previous) * 100


@dataclass(frozen=True)
class Delta:
    """A figure's delta and its colour: "+12.5 % vs 1,234" (a leading "-" turns it red), or
    "was 0" in grey when there is no percentage."""

    text: str
    color: Literal["normal", "off"]


def delta(current: float, previous: float, shown: str) -> Delta:
    """``shown``: the previous value as the metric formats its own."""
    pct = change_pct(current, previous)
    if pct is None:
        return Delta(f"was {shown}", "off")
    return Delta(f"{pct:+.1f} % vs {shown}", "normal")


def span(f: Filters) -> str:
    """The range as the page names it: "10 Mar 2026" or "04 Mar – 10 Mar 2026"."""
    return f"{f.start:%d %b %Y}" if f.days == 1 else f"{f.start:%d %b} – {f.end:%d %b %Y}"
