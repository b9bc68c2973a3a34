"""Resource fields from the environment, the Dagster way, with the local defaults when unset."""

from __future__ import annotations

from typing import Any

import dagster as dg

from engagement_platform import settings


def setting(name: str) -> Any:
    """``dg.EnvVar(name)`` when the variable is set, so the UI shows which variable feeds a field
    and its value is read when the resource is built; otherwise the same default as everywhere
    else. Nothing is ever written to the process environment. Typed ``Any``: a field takes a
    ``str``, an ``int`` or the ``EnvVar`` that stands for one, as the variable's default says."""
    default = settings.default(name)
    if not settings.is_set(name):
        return default
    return dg.EnvVar.int(name) if isinstance(default, int) else dg.EnvVar(name)


# who answers for every asset of the platform (Dagster shows it on each asset's page)
OWNERS = ["team:engagement-data"]


def writer(name: str) -> dict[str, str]:
    """The tag that says which process writes an asset: Dagster itself, or an always-on one."""
    return {"writer": name}
