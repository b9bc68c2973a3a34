"""Apply the source database's migrations (init.sql, then postgres_migrations/) exactly once.

Each file runs in its own transaction together with its row in ``public.schema_migrations``,
so a file is either applied and recorded or neither. Session settings the files read
(``ep.cdc_user``/``ep.cdc_password`` for init.sql's CDC role) are set with
``set_config(name, value, true)`` inside each transaction: scoped to it, and never printed.
A session-level ``pg_advisory_lock`` held for the whole run makes a second applier wait, then
find nothing pending.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import psycopg2
from psycopg2.extensions import connection as PgConnection

from engagement_platform.migrations.files import (
    INIT_SQL,
    POSTGRES_DIR,
    Migration,
    MigrationError,
    postgres_migrations,
)
from engagement_platform.migrations.status import TABLE, Applied, Status, compare
from engagement_platform.pg import scalar

# pg_advisory_lock's key for "a migration run": any constant bigint no other code uses
LOCK_KEY = 0x6570_6D69_6772  # "epmigr"
CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS public.{TABLE} (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def default_files() -> list[Migration]:
    return postgres_migrations(INIT_SQL, POSTGRES_DIR)


def applied(conn: PgConnection) -> list[Applied]:
    """The recorded rows; none when the table does not exist yet (reading creates nothing)."""
    with conn.cursor() as cur:
        if not scalar(cur, "SELECT to_regclass(%s) IS NOT NULL", (f"public.{TABLE}",)):
            conn.rollback()
            return []
        cur.execute(f"SELECT version, name, checksum, applied_at FROM public.{TABLE} ORDER BY version")
        rows = [Applied(*row) for row in cur.fetchall()]
    conn.rollback()  # leave no transaction open
    return rows


def status(conn: PgConnection, files: Sequence[Migration] | None = None) -> Status:
    return compare("postgres", default_files() if files is None else files, applied(conn))


def apply(
    conn: PgConnection,
    session: Mapping[str, str],
    files: Sequence[Migration] | None = None,
    on_applied: Callable[[Migration], None] = lambda m: None,
    on_wait: Callable[[str], None] = lambda line: None,
) -> tuple[list[Migration], Status]:
    """Apply every pending file in version order; returns those applied and the status after.

    ``session``: name -> value, set in each file's transaction (values are secrets: never
    logged). Refuses before applying anything when an applied file was edited.
    """
    files = default_files() if files is None else list(files)
    conn.autocommit = False
    with conn.cursor() as cur:
        if not scalar(cur, "SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)):
            on_wait("postgres: another migration run holds the lock; waiting for it")
            cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    conn.commit()  # the lock is the session's: it outlives this and every later transaction
    done: list[Migration] = []
    current: Migration | None = None
    try:
        with conn, conn.cursor() as cur:
            cur.execute(CREATE_TABLE)
        before = status(conn, files)  # read under the lock: what a run before us applied counts
        before.refuse_edited()
        for current in before.pending:
            script = current.path.read_text()
            with conn, conn.cursor() as cur:
                for name, value in session.items():
                    cur.execute("SELECT set_config(%s, %s, true)", (name, value))
                if script.strip():
                    cur.execute(script)  # no parameters: a % in the file is taken literally
                cur.execute(
                    f"INSERT INTO public.{TABLE} (version, name, checksum) VALUES (%s, %s, %s)",
                    (current.version, current.name, current.checksum),
                )
            done.append(current)
            on_applied(current)
    except psycopg2.Error as exc:
        if current is None:
            raise
        # rolled back with its record: the file is still pending, nothing of it applied
        first = (exc.pgerror or str(exc)).strip().splitlines()[0]
        raise MigrationError(f"{current.label} failed and was rolled back: {first}") from exc
    finally:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        conn.commit()
    return done, status(conn, files)
