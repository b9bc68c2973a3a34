"""Where one database stands against its migration files: applied, pending, edited, missing."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engagement_platform.migrations.files import Migration, MigrationError

TABLE = "schema_migrations"


@dataclass(frozen=True)
class Applied:
    """A row of ``schema_migrations``: what the database says it applied."""

    version: int
    name: str
    checksum: str
    applied_at: datetime


@dataclass
class Status:
    """One database's migrations. ``edited``: applied, but the file's checksum differs now;
    ``missing``: recorded, but no file of that version in this mode."""

    database: str
    applied: list[Applied] = field(default_factory=list)
    pending: list[Migration] = field(default_factory=list)
    edited: list[Migration] = field(default_factory=list)
    missing: list[Applied] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.pending and not self.edited

    def refuse_edited(self) -> None:
        """Raise with one line naming the first edited file: applying past it would build on a
        schema no file describes any more."""
        if self.edited:
            m = self.edited[0]
            raise MigrationError(
                f"{m.label} was edited after it was applied (version {m.version}): never edit an "
                f"applied migration; add one with 'engagement-platform migrate new {self.database} NAME'"
            )

    def as_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "applied": [
                {"version": a.version, "name": a.name, "applied_at": a.applied_at.isoformat()}
                for a in self.applied
            ],
            "pending": [{"version": m.version, "name": m.name, "file": m.label} for m in self.pending],
            "edited": [{"version": m.version, "name": m.name, "file": m.label} for m in self.edited],
            "missing": [{"version": a.version, "name": a.name} for a in self.missing],
        }


def compare(database: str, files: Iterable[Migration], applied: Iterable[Applied]) -> Status:
    by_version = {a.version: a for a in applied}
    status = Status(database, applied=sorted(by_version.values(), key=lambda a: a.version))
    versions = set()
    for m in files:
        versions.add(m.version)
        recorded = by_version.get(m.version)
        if recorded is None:
            status.pending.append(m)
        elif recorded.checksum != m.checksum:
            status.edited.append(m)
    status.missing = [a for a in status.applied if a.version not in versions]
    return status
