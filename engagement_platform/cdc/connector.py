"""connector.json: the Kafka Connect payload, with endpoints and secrets filled in at registration.

The file holds ``${VARIABLE}`` placeholders (the names of settings.ENV_VARS) instead of
hosts and credentials, so one file serves the local cdc service and a real Kafka Connect
and no secret is ever committed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engagement_platform.settings import PROJECT_ROOT

CONNECTOR_FILE = PROJECT_ROOT / "connector.json"
_PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")


class ConnectorConfigError(ValueError):
    """connector.json is malformed or names a variable we have no value for."""


@dataclass(frozen=True)
class ConnectorSpec:
    name: str
    config: dict[str, str]

    @property
    def topics(self) -> list[str]:
        """The topics the routing transform sends the captured tables to."""
        tables = [t.split(".")[-1] for t in self.config.get("table.include.list", "").split(",") if t]
        replacement = self.config.get("transforms.route.replacement", "")
        return [replacement.replace("$1", t) for t in tables] if replacement else tables


def render(raw: Mapping[str, object], values: Mapping[str, str]) -> ConnectorSpec:
    """Substitute every ``${NAME}`` in the config from ``values``."""
    try:
        name = str(raw["name"])
        config = raw["config"]
    except KeyError as exc:
        raise ConnectorConfigError(f"connector.json lacks {exc.args[0]!r}") from None
    if not isinstance(config, Mapping):
        raise ConnectorConfigError("connector.json 'config' must be an object")

    def fill(match: re.Match[str]) -> str:
        var = match.group(1)
        if var not in values:
            raise ConnectorConfigError(f"connector.json uses ${{{var}}}, which has no value")
        return values[var]

    return ConnectorSpec(name, {str(k): _PLACEHOLDER.sub(fill, str(v)) for k, v in config.items()})


def _raw(path: Path) -> dict[str, object]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConnectorConfigError(f"{path.name} is not valid JSON: {exc}") from None


def load(values: Mapping[str, str], path: Path = CONNECTOR_FILE) -> ConnectorSpec:
    return render(_raw(path), values)


def connector_name(path: Path = CONNECTOR_FILE) -> str:
    """The name the file registers, which needs no value filled in (the dashboard has none)."""
    return render({**_raw(path), "config": {}}, {}).name
