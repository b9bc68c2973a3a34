"""Resource fields from the settings model, the Dagster way: the model names the variable and its default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from engagement_platform import settings


def setting(field: str) -> Any:
    """The value of a resource field fed by the ``Settings`` field ``field``: ``dg.EnvVar`` of its
    variable when that is set, so the UI shows which variable feeds it (never a secret's value)
    and it is read when the resource is built; otherwise the model's default. Nothing is ever
    written to the process environment. Typed ``Any``: a field takes a ``str``, an ``int`` or
    the ``EnvVar`` that stands for one, as the variable's default says."""
    name = settings.env_name(field)
    default = settings.default(name)
    if not settings.is_set(name):
        return str(default) if isinstance(default, Path) else default
    return dg.EnvVar.int(name) if isinstance(default, int) else dg.EnvVar(name)


# who answers for every asset of the platform (Dagster shows it on each asset's page)
OWNERS = ["team:engagement-data"]


def writer(name: str) -> dict[str, str]:
    """The tag that says which process writes an asset: Dagster itself, or an always-on one."""
    return {"writer": name}
