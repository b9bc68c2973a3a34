"""The replication slot verdict: retention, inactivity and WAL status against thresholds."""

from __future__ import annotations

import pytest

from engagement_platform.monitoring.replication_slot import SlotState, SlotThresholds, slot_verdict
from engagement_platform.monitoring.verdict import Level

GIB = 1024**3
LIMITS = SlotThresholds(warn_bytes=100, error_bytes=1000, inactive_warn_s=60, inactive_error_s=600)


def state(
    retained: int = 10, active: bool = True, inactive: float | None = None, wal: str = "reserved"
) -> SlotState:
    return SlotState(active, 123 if active else None, wal, retained, retained // 2, inactive)


# --------------------------------------------------------------------------- pure


@pytest.mark.parametrize(
    ("slot", "level"),
    [
        (state(retained=100), Level.OK),
        (state(retained=101), Level.WARN),
        (state(retained=1001), Level.ERROR),
        (state(active=False, inactive=30), Level.OK),  # a cdc restart
        (state(active=False, inactive=61), Level.WARN),
        (state(active=False, inactive=601), Level.ERROR),
        (state(active=False, inactive=None), Level.WARN),  # Postgres < 17 cannot say since when
        (state(wal="unreserved"), Level.WARN),
        (state(wal="lost"), Level.ERROR),
        (None, Level.ERROR),
    ],
)
def test_thresholds_grade_retention_inactivity_and_wal_status(slot: SlotState | None, level: Level) -> None:
    assert slot_verdict("s", slot, LIMITS).level is level


def test_the_worst_finding_wins_and_all_are_described() -> None:
    verdict = slot_verdict("s", state(retained=500, active=False, inactive=900), LIMITS)
    assert verdict.level is Level.ERROR
    assert "retains 500 B" in verdict.description and "900 s" in verdict.description
