"""A measured figure turned into a verdict: a level, one sentence, and the figures behind it.

Kept free of Dagster so thresholds are unit-tested on plain numbers and the dashboard can show
the same verdicts; ``defs/monitoring.py`` turns them into asset check results.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Level(enum.IntEnum):
    """Ordered, so the worst of several findings is simply ``max``."""

    OK = 0
    WARN = 1
    ERROR = 2


def grade(value: float, warn: float, error: float) -> Level:
    """Strictly above a threshold trips it, so a threshold of 0 means "anything at all"."""
    if value > error:
        return Level.ERROR
    if value > warn:
        return Level.WARN
    return Level.OK


@dataclass(frozen=True)
class Verdict:
    level: Level
    description: str
    # plain values only (str, int, float, bool, lists and dicts of them)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.level is Level.OK


def sustained(verdict: Verdict, streak: int, required: int) -> tuple[Verdict, int]:
    """A failing verdict only counts once it failed ``required`` evaluations in a row, so one
    slow tick is no incident. Returns the verdict to report and the new streak."""
    if verdict.passed:
        return verdict, 0
    streak += 1
    if streak >= required:
        return verdict, streak
    note = f" (above its threshold for {streak} of {required} evaluations in a row)"
    return Verdict(
        Level.OK, verdict.description + note, {**verdict.metadata, "breached_evaluations": streak}
    ), streak
