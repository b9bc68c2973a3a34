"""One small stack (Postgres + ClickHouse) for the warehouse tests of this package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engagement_platform_tests.harness import StackHandle, start_stack, stop_stack


@pytest.fixture(scope="package")
def wh_stack() -> Iterator[StackHandle]:
    handle = start_stack("ep-wh-test-", ("postgres", "clickhouse"))
    try:
        yield handle
    finally:
        stop_stack(handle)
