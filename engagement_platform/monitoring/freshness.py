"""Is an asset up to date? The age of its last update against warn and error bounds."""

from __future__ import annotations

from engagement_platform.monitoring.verdict import Verdict, grade

# (warn, error) seconds: a stopped consumer with events flowing turns its output stale within two
# minutes. The checks of the streaming assets and the dashboard's health panel use these.
DEFAULT_FRESH = (90.0, 300.0)


def freshness_verdict(name: str, age_s: float | None, warn_s: float, error_s: float) -> Verdict:
    """``age_s``: seconds since the asset last moved (or was found caught up); None: never."""
    bounds = {"warn_after_seconds": warn_s, "error_after_seconds": error_s}
    if age_s is None:
        return Verdict(grade(error_s + 1, warn_s, error_s), f"{name} has never been updated.", bounds)
    level = grade(age_s, warn_s, error_s)
    what = "up to date" if level == 0 else "stale"
    return Verdict(
        level,
        f"{name} is {what}: last updated {age_s:,.0f} s ago.",
        {**bounds, "age_seconds": round(age_s, 1)},
    )
