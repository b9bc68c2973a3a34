"""One real ClickHouse HTTP server per test module that asks for ``server``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engagement_platform_tests.local_stack.clickhouse_http.server import Server, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("chserver")) as srv:
        yield srv
