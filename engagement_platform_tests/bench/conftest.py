"""One set-up stack for the benchmark commands' end-to-end tests (e2e, soak): each starts the
platform's own processes on it, so they share its start-up cost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engagement_platform_tests.harness import StackHandle, set_up_stack


@pytest.fixture(scope="package")
def platform() -> Iterator[StackHandle]:
    with set_up_stack("ep-test-bench-") as handle:
        yield handle
