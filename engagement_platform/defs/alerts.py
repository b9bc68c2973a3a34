"""A measured figure turned into one check verdict, shared by the monitoring sensors.

The sensors report the same verdict two ways: as a runless ``AssetCheckEvaluation`` every
tick, and as an ``AssetCheckResult`` when someone executes the check from the UI. Keeping the
verdict free of Dagster contexts lets the thresholds be unit-tested on plain numbers.
"""

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg


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
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.level is Level.OK

    @property
    def severity(self) -> dg.AssetCheckSeverity:
        # a passed check carries WARN so the UI never paints a green result as if it were critical
        return dg.AssetCheckSeverity.ERROR if self.level is Level.ERROR else dg.AssetCheckSeverity.WARN

    def _fields(self, key: dg.AssetCheckKey) -> dict[str, Any]:
        return {
            "asset_key": key.asset_key,
            "check_name": key.name,
            "passed": self.passed,
            "severity": self.severity,
            "description": self.description,
            "metadata": dict(self.metadata),
        }

    def evaluation(self, key: dg.AssetCheckKey) -> dg.AssetCheckEvaluation:
        return dg.AssetCheckEvaluation(**self._fields(key))

    def result(self, key: dg.AssetCheckKey) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(**self._fields(key))


def sensor_report(
    context: dg.SensorEvaluationContext,
    verdicts: Iterable[tuple[dg.AssetCheckKey, Verdict]],
    observations: Iterable[dg.AssetObservation] = (),
) -> dg.SensorResult:
    """What every monitoring sensor returns: one check evaluation per verdict (failures also
    logged on the tick), plus any observations of the measured figures."""
    events: list[dg.AssetCheckEvaluation | dg.AssetObservation] = []
    for key, verdict in verdicts:
        if not verdict.passed:
            context.log.warning(f"{key.to_user_string()}: {verdict.description}")
        events.append(verdict.evaluation(key))
    return dg.SensorResult(asset_events=[*events, *observations])
