"""Pure tests of how migration files are named, found, checksummed and created."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from engagement_platform.migrations import files
from engagement_platform.migrations.files import MigrationError, MigrationNameError


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Temp copies of init.sql, an empty postgres_migrations/ and clickhouse_ddl/."""
    init_sql = tmp_path / "init.sql"
    shutil.copy(files.INIT_SQL, init_sql)
    pg = tmp_path / "postgres_migrations"
    pg.mkdir()
    ch = tmp_path / "clickhouse_ddl"
    shutil.copytree(files.CLICKHOUSE_DIR, ch)
    return init_sql, pg, ch


def test_the_projects_files_are_the_first_versions() -> None:
    pg = files.postgres_migrations()
    assert (pg[0].version, pg[0].name, pg[0].label) == (1, "init", "init.sql")
    local = files.clickhouse_migrations("local")
    compose = files.clickhouse_migrations("compose")
    assert [m.version for m in local][:8] == [10, 20, 30, 40, 50, 60, 70, 90]
    assert local[0].label == "clickhouse_ddl/010_queue.local.sql"
    assert compose[0].label == "clickhouse_ddl/010_queue.compose.sql"
    assert local[0].name == compose[0].name == "queue"
    assert local[1:] == compose[1:]  # only the queue differs between the modes


def test_checksum_is_sha256_of_the_bytes(dirs: tuple[Path, Path, Path]) -> None:
    init_sql, pg, _ = dirs
    (pg / "002_add_x.sql").write_bytes(b"ALTER TABLE content ADD COLUMN x int;\n")
    (m1, m2) = files.postgres_migrations(init_sql, pg)
    assert m1.checksum == hashlib.sha256(init_sql.read_bytes()).hexdigest()
    assert (m2.version, m2.name) == (2, "add_x")
    assert m2.checksum == hashlib.sha256(b"ALTER TABLE content ADD COLUMN x int;\n").hexdigest()


@pytest.mark.parametrize(
    "name", ["2_x.sql", "0002_x.sql", "002-x.sql", "002_X.sql", "002_x.local.sql", "x.sql"]
)
def test_a_misnamed_postgres_file_is_an_error_naming_it(dirs: tuple[Path, Path, Path], name: str) -> None:
    init_sql, pg, _ = dirs
    (pg / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=f"postgres_migrations/{name}: .*NNN_name.sql"):
        files.postgres_migrations(init_sql, pg)


def test_postgres_versions_start_at_2_and_never_repeat(dirs: tuple[Path, Path, Path]) -> None:
    init_sql, pg, _ = dirs
    (pg / "001_again.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="001_again.sql: Postgres versions start at 002"):
        files.postgres_migrations(init_sql, pg)
    (pg / "001_again.sql").unlink()
    (pg / "002_a.sql").write_text("SELECT 1;")
    (pg / "002_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="002_b.sql: version 2 also has .*002_a.sql"):
        files.postgres_migrations(init_sql, pg)


def test_other_files_are_ignored(dirs: tuple[Path, Path, Path]) -> None:
    init_sql, pg, ch = dirs
    (pg / "README.md").write_text("notes")
    (ch / "notes.txt").write_text("notes")
    assert len(files.postgres_migrations(init_sql, pg)) == 1
    assert len(files.clickhouse_migrations("local", ch)) == len(files.clickhouse_migrations("local"))


@pytest.mark.parametrize(
    ("names", "bad"),
    [
        (["100_a.sql", "100_b.sql"], "100_b.sql"),  # two files, one version
        (["100_a.sql", "100_a.local.sql"], "100_a.sql"),  # both modes and one mode
        (["100_a.local.sql", "100_b.compose.sql"], "100_b.compose.sql"),  # variants of different names
        (["100_a.staging.sql"], "100_a.staging.sql"),
        (["99_a.sql"], "99_a.sql"),
    ],
)
def test_clickhouse_clashes_and_misnames_are_errors(
    dirs: tuple[Path, Path, Path], names: list[str], bad: str
) -> None:
    _, _, ch = dirs
    for name in names:
        (ch / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=f"clickhouse_ddl/{bad}: "):
        # every file is checked, whatever the mode
        files.clickhouse_migrations("compose", ch)


def test_only_the_modes_file_of_a_version_counts(dirs: tuple[Path, Path, Path]) -> None:
    _, _, ch = dirs
    (ch / "900_swap.local.sql").write_text("SELECT 'local';")
    (ch / "900_swap.compose.sql").write_text("SELECT 'compose';")
    (ch / "910_compose_only.compose.sql").write_text("SELECT 1;")
    local = files.clickhouse_migrations("local", ch)
    compose = files.clickhouse_migrations("compose", ch)
    assert local[-1].path.name == "900_swap.local.sql"
    assert [m.path.name for m in compose][-2:] == ["900_swap.compose.sql", "910_compose_only.compose.sql"]
    assert local[-1].checksum != compose[-2].checksum
    with pytest.raises(MigrationError, match="mode must be one of"):
        files.clickhouse_migrations("production", ch)


def test_new_creates_the_next_numbered_file(dirs: tuple[Path, Path, Path]) -> None:
    init_sql, pg, ch = dirs
    kw = {"init_sql": init_sql, "postgres_dir": pg, "clickhouse_dir": ch}
    first = files.new("postgres", "add_share", **kw)
    assert first == pg / "002_add_share.sql"
    assert first.read_text().startswith("-- PostgreSQL migration 002: add share.")
    assert files.new("postgres", "more", **kw) == pg / "003_more.sql"
    assert [m.version for m in files.postgres_migrations(init_sql, pg)] == [1, 2, 3]
    # ClickHouse: the highest version of any mode, plus one
    (ch / "950_x.compose.sql").write_text("SELECT 1;")
    created = files.new("clickhouse", "minute_by_type", **kw)
    assert created == ch / "951_minute_by_type.sql"
    assert "ClickHouse has no transactions" in created.read_text()
    assert files.clickhouse_migrations("local", ch)[-1].path == created


def test_new_creates_the_postgres_directory(tmp_path: Path) -> None:
    init_sql = tmp_path / "init.sql"
    init_sql.write_text("SELECT 1;")
    path = files.new(
        "postgres", "x", init_sql=init_sql, postgres_dir=tmp_path / "pm", clickhouse_dir=tmp_path
    )
    assert path == tmp_path / "pm" / "002_x.sql"


@pytest.mark.parametrize("name", ["Add", "add-share", "", "add share", "ü"])
def test_new_refuses_a_bad_name(dirs: tuple[Path, Path, Path], name: str) -> None:
    init_sql, pg, ch = dirs
    with pytest.raises(MigrationNameError, match="a-z, 0-9 and _"):
        files.new("postgres", name, init_sql=init_sql, postgres_dir=pg, clickhouse_dir=ch)
    assert list(pg.iterdir()) == []


def test_new_refuses_an_unknown_database(dirs: tuple[Path, Path, Path]) -> None:
    init_sql, pg, ch = dirs
    with pytest.raises(MigrationNameError, match="postgres or clickhouse"):
        files.new("redis", "x", init_sql=init_sql, postgres_dir=pg, clickhouse_dir=ch)
