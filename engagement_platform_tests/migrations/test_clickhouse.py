"""The ClickHouse runner on the local server: once per file, edited files, the lock, the
compose-mode pause (as far as chdb goes: it cannot run the Kafka engine)."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.client import Client

from engagement_platform.migrations import clickhouse
from engagement_platform.migrations.files import MigrationError
from engagement_platform.migrations.pause import CONSUME_VIEW, ingest_paused, view_exists
from engagement_platform.settings import Settings
from engagement_platform.warehouse import ddl
from engagement_platform_tests.defs.warehouse.helpers import enriched, raw
from engagement_platform_tests.migrations.conftest import Dirs


@pytest.fixture
def client(scratch: Settings) -> Iterator[Client]:
    with closing(ddl.connect_settings(scratch)) as c:
        yield c


def count(client: Client, sql: str) -> int:
    return int(client.command(sql))


def test_fresh_apply_then_nothing(client: Client, scratch: Settings, dirs: Dirs) -> None:
    files = dirs.clickhouse_files()
    done, status = clickhouse.apply(client, "local", scratch.ep_home, files)
    assert [m.version for m in done] == [m.version for m in files] and status.clean
    assert count(client, "SELECT count() FROM schema_migrations") == len(files)
    assert count(client, f"SELECT count() FROM system.tables WHERE name = '{clickhouse.LOCK_TABLE}'") == 0
    engine = client.command(
        "SELECT engine, sorting_key FROM system.tables WHERE database = currentDatabase() "
        "AND name = 'schema_migrations'"
    )
    assert engine == ["MergeTree", "version"]
    again, status = clickhouse.apply(client, "local", scratch.ep_home, files)
    assert (
        again == [] and status.clean and count(client, "SELECT count() FROM schema_migrations") == len(files)
    )


def test_an_edited_file_is_refused_before_anything_runs(
    client: Client, scratch: Settings, dirs: Dirs
) -> None:
    clickhouse.apply(client, "local", scratch.ep_home, dirs.clickhouse_files())
    parse = dirs.clickhouse / "060_parse.sql"
    parse.write_text(parse.read_text().replace("'unknown_event_type'", "'unknown_type'"))
    (dirs.clickhouse / "900_later.sql").write_text("CREATE TABLE later (x UInt8) ENGINE = Null;")
    with pytest.raises(MigrationError) as info:
        clickhouse.apply(client, "local", scratch.ep_home, dirs.clickhouse_files())
    assert str(info.value) == (
        "clickhouse_ddl/060_parse.sql was edited after it was applied (version 60): never edit an applied "
        "migration; add one with 'engagement-platform migrate new clickhouse NAME'"
    )
    assert not view_exists(client, "later")  # 900 did not run
    assert not view_exists(client, clickhouse.LOCK_TABLE)  # and the lock was released


def test_a_failing_file_stays_pending(client: Client, scratch: Settings, dirs: Dirs) -> None:
    (dirs.clickhouse / "900_bad.sql").write_text(
        "CREATE TABLE IF NOT EXISTS good (x UInt8) ENGINE = Null;\n"
        "ALTER TABLE no_such_table ADD COLUMN y UInt8;"
    )
    with pytest.raises(MigrationError, match=r"^clickhouse_ddl/900_bad.sql: statement 2 of 2 failed"):
        clickhouse.apply(client, "local", scratch.ep_home, dirs.clickhouse_files())
    status = clickhouse.status(client, "local", dirs.clickhouse_files())
    assert [m.version for m in status.pending] == [900]
    assert not view_exists(client, clickhouse.LOCK_TABLE)


def test_a_second_applier_waits_then_finds_nothing_pending(scratch: Settings, dirs: Dirs) -> None:
    first_inside, second_waiting = threading.Event(), threading.Event()
    results: dict[str, list[int]] = {}
    lines: list[str] = []

    def first_applied(m) -> None:  # type: ignore[no-untyped-def]
        first_inside.set()
        assert second_waiting.wait(60), "the second applier never waited"

    def second_waits(line: str) -> None:
        lines.append(line)
        second_waiting.set()

    def run(name: str, **hooks) -> None:  # type: ignore[no-untyped-def]
        with closing(ddl.connect_settings(scratch)) as c:
            done, _ = clickhouse.apply(c, "local", scratch.ep_home, dirs.clickhouse_files(), **hooks)
            results[name] = [m.version for m in done]

    a = threading.Thread(target=run, args=("first",), kwargs={"on_applied": first_applied})
    a.start()
    assert first_inside.wait(60)
    b = threading.Thread(target=run, args=("second",), kwargs={"on_wait": second_waits})
    b.start()
    a.join(60)
    b.join(60)
    assert results == {"first": [m.version for m in dirs.clickhouse_files()], "second": []}
    assert len(lines) == 1 and f"pid {os.getpid()}" in lines[0]  # one progress line


def hold_lock(client: Client, host: str, pid: int) -> None:
    client.command(clickhouse.CREATE_LOCK)
    client.insert(
        clickhouse.LOCK_TABLE, [[host, pid, datetime.now(UTC)]], column_names=["host", "pid", "acquired_at"]
    )


def test_a_dead_local_holder_is_broken(client: Client, scratch: Settings, dirs: Dirs) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    hold_lock(client, socket.gethostname(), dead.pid)
    lines: list[str] = []
    done, status = clickhouse.apply(
        client, "local", scratch.ep_home, dirs.clickhouse_files(), on_wait=lines.append, lock_timeout=30
    )
    assert status.clean and done
    assert lines == [lines[0]] and f"breaking the migration lock of pid {dead.pid}" in lines[0]


def test_a_live_holder_elsewhere_times_out_saying_how_to_clear_it(
    client: Client, scratch: Settings, dirs: Dirs
) -> None:
    hold_lock(client, "another-host", 1)
    with pytest.raises(MigrationError) as info:
        clickhouse.apply(client, "local", scratch.ep_home, dirs.clickhouse_files(), lock_timeout=1)
    message = str(info.value)
    assert "held by another-host pid 1" in message and "\n" not in message
    assert f"engagement-platform sql --admin 'DROP TABLE {clickhouse.LOCK_TABLE}'" in message
    assert (
        count(client, "SELECT count() FROM system.tables WHERE database = currentDatabase()") == 1
    )  # nothing ran


def test_compose_pause_detaches_the_consume_view_and_attaches_it_again(
    client: Client, scratch: Settings, dirs: Dirs
) -> None:
    # the local schema's consume view has the compose one's name and role (a Null queue instead of Kafka)
    clickhouse.apply(client, "local", scratch.ep_home, dirs.clickhouse_files())
    ddl.insert_raw(client, ddl.QUEUE, [raw(enriched(1))])
    with pytest.raises(RuntimeError, match="boom"), ingest_paused(client, "compose", scratch.ep_home):
        assert not view_exists(client, CONSUME_VIEW)
        ddl.insert_raw(client, ddl.QUEUE, [raw(enriched(2))])  # nothing reads the queue now
        raise RuntimeError("boom")  # a failed migration still resumes ingestion
    assert view_exists(client, CONSUME_VIEW)
    ddl.insert_raw(client, ddl.QUEUE, [raw(enriched(3))])
    ids = client.query("SELECT event_id FROM engagement_enriched FINAL ORDER BY event_id").result_rows
    assert ids == [(1,), (3,)]
