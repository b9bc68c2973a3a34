"""The Postgres runner on a real Postgres: once per file, transactions, edited files, the lock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import closing

import psycopg2
import pytest
from psycopg2.extensions import connection as PgConnection

from engagement_platform.migrations import postgres
from engagement_platform.migrations.files import MigrationError
from engagement_platform.migrations.run import settings_session
from engagement_platform.settings import Settings
from engagement_platform_tests.migrations.conftest import Dirs


@pytest.fixture
def conn(scratch: Settings) -> Iterator[PgConnection]:
    with closing(psycopg2.connect(scratch.postgres_dsn)) as c:
        yield c


def session(s: Settings) -> dict[str, str]:
    return settings_session(s)


def rows(conn: PgConnection, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        result = cur.fetchall()
    conn.rollback()
    return result


def test_fresh_apply_then_nothing(conn: PgConnection, scratch: Settings, dirs: Dirs) -> None:
    (dirs.postgres / "002_share.sql").write_text("ALTER TABLE content ADD COLUMN shares integer;")
    assert [m.version for m in postgres.status(conn, dirs.postgres_files()).pending] == [1, 2]
    seen: list[int] = []
    done, status = postgres.apply(
        conn, session(scratch), dirs.postgres_files(), lambda m: seen.append(m.version)
    )
    assert [m.version for m in done] == seen == [1, 2]
    assert status.clean and [a.version for a in status.applied] == [1, 2]
    assert rows(conn, "SELECT version, name FROM schema_migrations ORDER BY 1") == [(1, "init"), (2, "share")]
    again, status = postgres.apply(conn, session(scratch), dirs.postgres_files())
    assert again == [] and status.clean
    # the secret set for init.sql stayed in its transaction
    assert rows(conn, "SELECT current_setting('ep.cdc_password', true)") in ([(None,)], [("",)])


def test_a_failing_file_is_rolled_back_with_its_record(
    conn: PgConnection, scratch: Settings, dirs: Dirs
) -> None:
    (dirs.postgres / "002_half.sql").write_text(
        "CREATE TABLE half_done (id int);\nALTER TABLE no_such_table ADD COLUMN x int;"
    )
    with pytest.raises(
        MigrationError, match=r"^postgres_migrations/002_half.sql failed and was rolled back: "
    ):
        postgres.apply(conn, session(scratch), dirs.postgres_files())
    assert rows(conn, "SELECT to_regclass('half_done') IS NULL") == [(True,)]
    status = postgres.status(conn, dirs.postgres_files())
    assert [a.version for a in status.applied] == [1] and [m.version for m in status.pending] == [2]
    # the lock was released: a fixed file applies
    (dirs.postgres / "002_half.sql").write_text("CREATE TABLE half_done (id int);")
    done, _ = postgres.apply(conn, session(scratch), dirs.postgres_files())
    assert [m.version for m in done] == [2]


def test_an_edited_file_is_refused_before_anything_runs(
    conn: PgConnection, scratch: Settings, dirs: Dirs
) -> None:
    postgres.apply(conn, session(scratch), dirs.postgres_files())
    dirs.init_sql.write_text(dirs.init_sql.read_text() + "\n-- a harmless edit\n")
    (dirs.postgres / "002_later.sql").write_text("CREATE TABLE later (id int);")
    with pytest.raises(MigrationError) as info:
        postgres.apply(conn, session(scratch), dirs.postgres_files())
    assert str(info.value) == (
        f"{dirs.init_sql.parent.name}/init.sql was edited after it was applied (version 1): never edit "
        "an applied migration; add one with 'engagement-platform migrate new postgres NAME'"
    )
    assert rows(conn, "SELECT to_regclass('later') IS NULL") == [(True,)]  # 002 did not run
    assert postgres.status(conn, dirs.postgres_files()).edited[0].version == 1


def test_a_second_applier_waits_then_finds_nothing_pending(scratch: Settings, dirs: Dirs) -> None:
    first_inside, second_waiting = threading.Event(), threading.Event()
    results: dict[str, list[int]] = {}

    def first_applied(m) -> None:  # type: ignore[no-untyped-def]
        first_inside.set()
        assert second_waiting.wait(60), "the second applier never waited"

    def run(name: str, **hooks) -> None:  # type: ignore[no-untyped-def]
        with closing(psycopg2.connect(scratch.postgres_dsn)) as c:
            done, _ = postgres.apply(c, session(scratch), dirs.postgres_files(), **hooks)
            results[name] = [m.version for m in done]

    a = threading.Thread(target=run, args=("first",), kwargs={"on_applied": first_applied})
    a.start()
    assert first_inside.wait(60)
    b = threading.Thread(target=run, args=("second",), kwargs={"on_wait": lambda line: second_waiting.set()})
    b.start()
    a.join(60)
    b.join(60)
    assert results == {"first": [1], "second": []}
