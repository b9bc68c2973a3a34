"""Pure tests of comparing files with what a database recorded."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from engagement_platform.migrations.files import Migration, MigrationError
from engagement_platform.migrations.status import Applied, compare

AT = datetime(2026, 1, 1, tzinfo=UTC)


def m(version: int, checksum: str = "c") -> Migration:
    return Migration(
        version, f"v{version}", Path(f"/x/clickhouse_ddl/{version:03d}_v{version}.sql"), checksum
    )


def a(version: int, checksum: str = "c") -> Applied:
    return Applied(version, f"v{version}", checksum, AT)


def test_applied_pending_edited_missing() -> None:
    status = compare("clickhouse", [m(10), m(20, "new"), m(30)], [a(10), a(20, "old"), a(25)])
    assert [x.version for x in status.applied] == [10, 20, 25]
    assert [x.version for x in status.pending] == [30]
    assert [x.version for x in status.edited] == [20]
    assert [x.version for x in status.missing] == [25]
    assert not status.clean
    assert status.as_json()["edited"] == [
        {"version": 20, "name": "v20", "file": "clickhouse_ddl/020_v20.sql"}
    ]


def test_clean_when_everything_is_applied_unchanged() -> None:
    status = compare("postgres", [m(1), m(2)], [a(1), a(2)])
    assert status.clean
    status.refuse_edited()  # nothing to refuse


def test_an_edited_file_is_refused_in_one_line_naming_it() -> None:
    status = compare("clickhouse", [m(60, "now")], [a(60, "then")])
    with pytest.raises(MigrationError) as info:
        status.refuse_edited()
    assert str(info.value) == (
        "clickhouse_ddl/060_v60.sql was edited after it was applied (version 60): never edit an "
        "applied migration; add one with 'engagement-platform migrate new clickhouse NAME'"
    )
