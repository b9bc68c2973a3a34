"""The migration files of both databases: how they are named, found, checksummed and created.

Postgres: version 1 is the top-level ``init.sql`` (users read it to learn the source schema);
later versions are ``postgres_migrations/NNN_name.sql`` from 002. ClickHouse: the files of
``clickhouse_ddl/``, ``NNN_name.sql`` for both modes or ``NNN_name.local.sql`` /
``NNN_name.compose.sql`` for one; only the current EP_MODE's file of a version counts. A
``NNN_name.cluster.sql`` replaces a version's file for a replicated warehouse
(WAREHOUSE_VARIANT=cluster, compose mode): the cluster mode takes a version's ``.cluster.sql``,
else its ``.compose.sql``, else its shared file. A misnamed ``.sql`` file or two files for one
version that no mode tells apart is an error naming the file: skipped silently, it would never
be applied.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engagement_platform.settings import PROJECT_ROOT

Database = Literal["postgres", "clickhouse"]
DATABASES: tuple[Database, ...] = ("postgres", "clickhouse")
MODES = ("local", "compose", "cluster")
# the files a mode applies, by preference: a version's file of the first of these it has
FALLBACK: dict[str, tuple[str | None, ...]] = {
    "local": ("local", None),
    "compose": ("compose", None),
    "cluster": ("cluster", "compose", None),
}
INIT_SQL = PROJECT_ROOT / "init.sql"
POSTGRES_DIR = PROJECT_ROOT / "postgres_migrations"
CLICKHOUSE_DIR = PROJECT_ROOT / "clickhouse_ddl"
NAME = re.compile(r"^[a-z0-9_]+$")
_POSTGRES_FILE = re.compile(r"^(?P<version>\d{3})_(?P<name>[a-z0-9_]+)\.sql$")
_CLICKHOUSE_FILE = re.compile(
    r"^(?P<version>\d{3})_(?P<name>[a-z0-9_]+)(?:\.(?P<mode>local|compose|cluster))?\.sql$"
)


class MigrationError(RuntimeError):
    """A migration cannot be found, checked or applied; the message is one line for the user."""


class MigrationNameError(ValueError):
    """A name given to ``new`` that a migration file cannot carry."""


@dataclass(frozen=True)
class Migration:
    """One version of one database's schema: the file that applies it in this mode."""

    version: int
    name: str
    path: Path
    checksum: str  # sha256 of the file's bytes, hex

    @property
    def label(self) -> str:
        """How messages name the file: relative to the project when it is the project's."""
        return display(self.path)


def display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return f"{path.parent.name}/{path.name}"


def checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sql_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix == ".sql" and not p.name.startswith("."))


def postgres_migrations(init_sql: Path = INIT_SQL, directory: Path = POSTGRES_DIR) -> list[Migration]:
    """``init.sql`` as version 1, then ``directory``'s files, in version order."""
    found = [Migration(1, "init", init_sql, checksum(init_sql))]
    seen: dict[int, Path] = {1: init_sql}
    for path in _sql_files(directory):
        match = _POSTGRES_FILE.match(path.name)
        if match is None:
            raise MigrationError(
                f"{display(path)}: Postgres migrations must be named NNN_name.sql (name: a-z 0-9 _)"
            )
        version = int(match["version"])
        if version < 2:
            raise MigrationError(f"{display(path)}: Postgres versions start at 002 (001 is init.sql)")
        if version in seen:
            raise MigrationError(f"{display(path)}: version {version} also has {display(seen[version])}")
        seen[version] = path
        found.append(Migration(version, match["name"], path, checksum(path)))
    return sorted(found, key=lambda m: m.version)


def clickhouse_migrations(mode: str, directory: Path = CLICKHOUSE_DIR) -> list[Migration]:
    """The files of ``directory`` that apply in ``mode``, in version order.

    Every file is checked, not only this mode's: a clash in compose mode is caught locally too.
    """
    if mode not in MODES:
        raise MigrationError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    by_version: dict[int, list[tuple[Path, str, str | None]]] = {}
    for path in _sql_files(directory):
        match = _CLICKHOUSE_FILE.match(path.name)
        if match is None:
            raise MigrationError(
                f"{display(path)}: ClickHouse migrations must be named NNN_name.sql, "
                "NNN_name.local.sql, NNN_name.compose.sql or NNN_name.cluster.sql (name: a-z 0-9 _)"
            )
        version = int(match["version"])
        for other, other_name, other_mode in by_version.get(version, []):
            # files of one name share a version when each mode can tell which one is its own:
            # a .local/.compose pair, and a .cluster file beside either a pair or a shared file
            modes = {other_mode, match["mode"]}
            shared_beside_one_mode = None in modes and bool(modes & {"local", "compose"})
            if other_name != match["name"] or other_mode == match["mode"] or shared_beside_one_mode:
                raise MigrationError(f"{display(path)}: version {version} also has {display(other)}")
        by_version.setdefault(version, []).append((path, match["name"], match["mode"]))
    found = []
    for version, files in by_version.items():
        by_mode = {file_mode: (path, name) for path, name, file_mode in files}
        chosen = next((by_mode[m] for m in FALLBACK[mode] if m in by_mode), None)
        if chosen is not None:
            found.append(Migration(version, chosen[1], chosen[0], checksum(chosen[0])))
    return sorted(found, key=lambda m: m.version)


def new(
    database: str,
    name: str,
    *,
    init_sql: Path = INIT_SQL,
    postgres_dir: Path = POSTGRES_DIR,
    clickhouse_dir: Path = CLICKHOUSE_DIR,
) -> Path:
    """Create the next numbered, empty migration file of ``database``; returns its path.

    Postgres: ``postgres_dir/NNN_name.sql``, NNN = highest + 1 and at least 002. ClickHouse:
    ``clickhouse_dir/NNN_name.sql`` (both modes; rename it to ``.local.sql``/``.compose.sql``
    and add the other mode's file for a mode-specific version, and add a ``.cluster.sql`` when
    it creates a MergeTree-family table), NNN = highest of any mode + 1.
    """
    if database not in DATABASES:
        raise MigrationNameError(f"database must be postgres or clickhouse, got {database!r}")
    if not NAME.match(name):
        raise MigrationNameError(f"migration names take only a-z, 0-9 and _, got {name!r}")
    if database == "postgres":
        directory = postgres_dir
        versions = [m.version for m in postgres_migrations(init_sql, postgres_dir)]
    else:
        directory = clickhouse_dir
        versions = [m.version for mode in MODES for m in clickhouse_migrations(mode, clickhouse_dir)]
    version = max([*versions, 1]) + 1
    if version > 999:
        raise MigrationError(f"{display(directory)}: no version left after 999")
    path = directory / f"{version:03d}_{name}.sql"
    directory.mkdir(parents=True, exist_ok=True)
    engine = "PostgreSQL" if database == "postgres" else "ClickHouse"
    header = (
        f"-- {engine} migration {version:03d}: {name.replace('_', ' ')}.\n"
        "-- Applied once per database by `engagement-platform migrate up` (or the "
        f"{database}/schema asset);\n"
        "-- never edit it once applied anywhere: add the next migration instead.\n"
    )
    if database == "postgres":
        header += "-- It runs in one transaction together with its record in schema_migrations.\n"
    else:
        header += (
            "-- ClickHouse has no transactions: a statement that fails leaves the ones before it applied,\n"
            "-- and the whole file runs again next time, so write statements that can run twice.\n"
        )
    with path.open("x") as fh:  # never overwrite
        fh.write(header + "\n")
    return path


@dataclass(frozen=True)
class Layout:
    """Where one deployment's schema versions live: ``EP_MIGRATIONS_DIR`` (default the repo) holds
    ``init.sql``, ``postgres_migrations/`` and ``clickhouse_ddl/``."""

    root: Path = PROJECT_ROOT

    @classmethod
    def of(cls, migrations_dir: str | Path) -> Layout:
        """The layout under ``migrations_dir``; empty: the repo's."""
        return cls(Path(migrations_dir).expanduser().resolve()) if str(migrations_dir) else cls()

    @property
    def init_sql(self) -> Path:
        return self.root / "init.sql"

    @property
    def postgres_dir(self) -> Path:
        return self.root / "postgres_migrations"

    @property
    def clickhouse_dir(self) -> Path:
        return self.root / "clickhouse_ddl"

    def postgres(self) -> list[Migration]:
        return postgres_migrations(self.init_sql, self.postgres_dir)

    def clickhouse(self, mode: str) -> list[Migration]:
        return clickhouse_migrations(mode, self.clickhouse_dir)

    def new(self, database: str, name: str) -> Path:
        return new(
            database,
            name,
            init_sql=self.init_sql,
            postgres_dir=self.postgres_dir,
            clickhouse_dir=self.clickhouse_dir,
        )
