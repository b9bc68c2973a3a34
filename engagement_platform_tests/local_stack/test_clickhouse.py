"""The local ClickHouse server's process, as the stack starts it."""

from __future__ import annotations

import psutil

from engagement_platform.local_stack.clickhouse import MALLOC_ARENA_MAX
from engagement_platform_tests.harness import StackHandle


def test_the_server_runs_with_few_malloc_arenas(stack: StackHandle) -> None:
    # chdb allocates through glibc's malloc: with an arena per thread (~160 threads) the
    # server kept growing over an hour's soak; the environment is how glibc takes the cap
    record = stack.supervisor.running("clickhouse")
    assert record is not None, "the clickhouse service is not running"
    assert psutil.Process(record.pid).environ().get("MALLOC_ARENA_MAX") == MALLOC_ARENA_MAX == "2"
