"""Each migration test gets empty databases of its own on the session stack, and temp copies
of the migration directories it may edit."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engagement_platform.migrations import files
from engagement_platform.settings import Settings
from engagement_platform_tests.harness import StackHandle, scratch_databases


@dataclass
class Dirs:
    init_sql: Path
    postgres: Path
    clickhouse: Path

    def postgres_files(self) -> list[files.Migration]:
        return files.postgres_migrations(self.init_sql, self.postgres)

    def clickhouse_files(self) -> list[files.Migration]:
        return files.clickhouse_migrations("local", self.clickhouse)


@pytest.fixture
def dirs(tmp_path: Path) -> Dirs:
    init_sql = tmp_path / "init.sql"
    shutil.copy(files.INIT_SQL, init_sql)
    (tmp_path / "postgres_migrations").mkdir()
    shutil.copytree(files.CLICKHOUSE_DIR, tmp_path / "clickhouse_ddl")
    return Dirs(init_sql, tmp_path / "postgres_migrations", tmp_path / "clickhouse_ddl")


@pytest.fixture
def scratch(stack: StackHandle) -> Iterator[Settings]:
    with scratch_databases(stack.settings, "mig") as settings:
        yield settings
