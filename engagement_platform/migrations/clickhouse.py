"""Apply the warehouse's migrations (clickhouse_ddl/, this EP_MODE's files) exactly once.

ClickHouse has no transactions, so a file is recorded only after all its statements succeeded,
under a lock table, with ingestion paused. How: docs/design/migrations.md.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import psutil
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from engagement_platform.migrations.files import (
    CLICKHOUSE_DIR,
    Migration,
    MigrationError,
    clickhouse_migrations,
)
from engagement_platform.migrations.pause import ingest_paused, view_exists
from engagement_platform.migrations.status import TABLE, Applied, Status, compare
from engagement_platform.warehouse.ddl import split_statements, table_exists

LOCK_TABLE = "schema_migrations_lock"
LOCK_TIMEOUT_S = 600.0
LOCK_POLL_S = 0.5
CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE}
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY version"""
CREATE_LOCK = f"""
CREATE TABLE {LOCK_TABLE}
(
    host        String,
    pid         UInt32,
    acquired_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY tuple()"""


def default_files(mode: str) -> list[Migration]:
    return clickhouse_migrations(mode, CLICKHOUSE_DIR)


def applied(client: Client) -> list[Applied]:
    """The recorded rows; none when the table does not exist yet (reading creates nothing)."""
    if not table_exists(client, TABLE):
        return []
    rows = client.query(
        f"SELECT version, name, checksum, applied_at FROM {TABLE} ORDER BY version"
    ).result_rows
    # the column is UTC; the driver may hand it back naive
    return [Applied(int(v), n, c, at if at.tzinfo else at.replace(tzinfo=UTC)) for v, n, c, at in rows]


def status(client: Client, mode: str, files: Sequence[Migration] | None = None) -> Status:
    return compare("clickhouse", default_files(mode) if files is None else files, applied(client))


def _already_exists(exc: DatabaseError) -> bool:
    text = str(exc)
    return "Code: 57" in text or "TABLE_ALREADY_EXISTS" in text or "already exists" in text


def _holder(client: Client) -> tuple[str, int, datetime] | None:
    with contextlib.suppress(DatabaseError):  # dropped meanwhile: the next round tries again
        rows = client.query(f"SELECT host, pid, acquired_at FROM {LOCK_TABLE} LIMIT 1").result_rows
        if rows:
            host, pid, at = rows[0]
            return str(host), int(pid), at
    return None


@contextlib.contextmanager
def locked(
    client: Client, timeout: float = LOCK_TIMEOUT_S, on_wait: Callable[[str], None] = lambda line: None
) -> Iterator[None]:
    """Hold the warehouse's migration lock for the block (see the module docstring)."""
    deadline = time.monotonic() + timeout
    me = socket.gethostname()
    said = False
    while True:
        try:
            client.command(CREATE_LOCK)
            break
        except DatabaseError as exc:
            if not _already_exists(exc):
                raise
        holder = _holder(client)
        if holder is not None and holder[0] == me and not psutil.pid_exists(holder[1]):
            on_wait(f"clickhouse: breaking the migration lock of pid {holder[1]}, dead since {holder[2]}")
            client.command(f"DROP TABLE IF EXISTS {LOCK_TABLE} SYNC")
            continue
        who = f"{holder[0]} pid {holder[1]} since {holder[2]}" if holder else "a run that is starting"
        if time.monotonic() >= deadline:
            raise MigrationError(
                f"the ClickHouse migration lock is held by {who} (waited {timeout:.0f}s); if no "
                f"migration runs there, clear it: engagement-platform sql --admin 'DROP TABLE {LOCK_TABLE}'"
            )
        if not said:
            on_wait(f"clickhouse: waiting for the migration lock held by {who}")
            said = True
        time.sleep(LOCK_POLL_S)
    try:
        client.insert(
            LOCK_TABLE, [[me, os.getpid(), datetime.now(UTC)]], column_names=["host", "pid", "acquired_at"]
        )
        yield
    finally:
        client.command(f"DROP TABLE IF EXISTS {LOCK_TABLE} SYNC")


def apply(
    client: Client,
    mode: str,
    ep_home: Path,
    files: Sequence[Migration] | None = None,
    on_applied: Callable[[Migration], None] = lambda m: None,
    on_wait: Callable[[str], None] = lambda line: None,
    lock_timeout: float = LOCK_TIMEOUT_S,
) -> tuple[list[Migration], Status]:
    """Apply every pending file in version order in ``client``'s database (which must exist);
    returns those applied and the status after. Refuses before applying anything when an
    applied file was edited. ``ep_home``: where local mode's ingest gate lives."""
    files = default_files(mode) if files is None else list(files)
    done: list[Migration] = []
    with locked(client, lock_timeout, on_wait):
        client.command(CREATE_TABLE)
        before = status(client, mode, files)  # read under the lock
        before.refuse_edited()
        if before.pending:
            pause = ingest_paused(client, mode, ep_home) if view_exists(client) else contextlib.nullcontext()
            with pause:
                for migration in before.pending:
                    _apply_file(client, migration)
                    done.append(migration)
                    on_applied(migration)
        after = status(client, mode, files)
    return done, after


def _apply_file(client: Client, migration: Migration) -> None:
    try:
        statements = split_statements(migration.path.read_text())
    except ValueError as exc:
        raise MigrationError(f"{migration.label}: {exc}") from exc
    for number, statement in enumerate(statements, 1):
        try:
            client.command(statement)
        except DatabaseError as exc:
            first = str(exc).strip().splitlines()[0]
            raise MigrationError(
                f"{migration.label}: statement {number} of {len(statements)} failed (the ones before it "
                f"stay applied; the file runs again, whole, next time): {first}"
            ) from exc
    client.insert(
        TABLE,
        [[migration.version, migration.name, migration.checksum, datetime.now(UTC)]],
        column_names=["version", "name", "checksum", "applied_at"],
    )
