"""The ingest gate: every writer of the warehouse's parse chain waits while a ClickHouse
migration replaces a view of it, so no block reaches a missing view and is lost.

Writers hold a shared ``flock`` under EP_HOME around each insert, a migration run holds it
exclusively. Why a flock: docs/design/warehouse.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("engagement_platform.warehouse")

GATE_FILE = "warehouse-ingest.gate"


def gate_path(ep_home: Path) -> Path:
    """The gate file the writers and the migration runner of one EP_HOME share."""
    return Path(ep_home) / GATE_FILE


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


class IngestGate:
    """A writer's side of the gate: ``with gate.insert(): client.insert(...)``."""

    def __init__(self, ep_home: Path) -> None:
        self.path = gate_path(ep_home)
        self._fd: int | None = None

    @contextlib.contextmanager
    def insert(self) -> Iterator[None]:
        """Hold the shared lock for one insert; waits (and logs one line) while a migration runs."""
        if self._fd is None:
            self._fd = _open(self.path)
        fd = self._fd
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            started = time.monotonic()
            fcntl.flock(fd, fcntl.LOCK_SH)
            log.info(
                "warehouse: waited %.1fs for a schema migration to finish (%s)",
                time.monotonic() - started,
                self.path,
            )
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def closed(ep_home: Path) -> Iterator[None]:
    """The migration runner's side: no writer inserts inside the block."""
    fd = _open(gate_path(ep_home))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits for the insert in flight, then holds the next
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
