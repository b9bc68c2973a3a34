"""Resource fields from the environment, the Dagster way, with the local defaults when unset."""

from __future__ import annotations

import dagster as dg

from engagement_platform import settings


def setting(name: str) -> str | int | dg.EnvVar:
    """``dg.EnvVar(name)`` when the variable is set, so the UI shows which variable feeds a field
    and its value is read when the resource is built; otherwise the same default as everywhere
    else. Nothing is ever written to the process environment."""
    default = settings.default(name)
    if not settings.is_set(name):
        return default  # type: ignore[return-value]
    return dg.EnvVar.int(name) if isinstance(default, int) else dg.EnvVar(name)  # type: ignore[return-value]


# who answers for every asset of the platform (Dagster shows it on each asset's page)
OWNERS = ["team:engagement-data"]


def writer(name: str) -> dict[str, str]:
    """The tag that says which process writes an asset: Dagster itself, or an always-on one."""
    return {"writer": name}
