"""Pause the warehouse's ingestion while ClickHouse migrations run, so none loses or doubles a row.

A migration may drop and re-create a materialized view of the parse chain; a block inserted
in between would pass through the Null tables with no view to carry it on, and be lost.

- compose mode: ``DETACH TABLE engagement_enriched_queue_mv`` ... ``ATTACH TABLE``: with no
  view reading it, a Kafka-engine table stops consuming (ClickHouse's documented way), and
  its committed offsets make it resume exactly where it stopped.
- local mode: the bridge (``consume warehouse``) takes a *shared* ``flock`` on a gate file
  under EP_HOME around each insert; the migration run takes it *exclusively*. Taking the
  exclusive lock waits for the insert in flight, then holds every later one back; the bridge
  commits offsets only after its insert, so nothing is lost. Why flock: the kernel releases it
  when its holder dies (a crashed migration can never leave the bridge stuck, and there is no
  stale lock to clean), it costs two syscalls per insert, and it needs no service to be up.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from clickhouse_connect.driver.client import Client

log = logging.getLogger("engagement_platform.migrations")

CONSUME_VIEW = "engagement_enriched_queue_mv"  # 090_consume.sql: the queue's only reader
GATE_FILE = "warehouse-ingest.gate"


def gate_path(ep_home: Path) -> Path:
    """The gate file the bridge and the migration runner of one EP_HOME share."""
    return Path(ep_home) / GATE_FILE


class IngestGate:
    """The bridge's side of the local-mode pause: ``with gate.insert(): client.insert(...)``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd

    @contextlib.contextmanager
    def insert(self) -> Iterator[None]:
        """Hold the shared lock for one insert; waits (and logs one line) while a migration runs."""
        fd = self._open()
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


def view_exists(client: Client, name: str = CONSUME_VIEW) -> bool:
    return bool(
        int(
            client.command(
                "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = {n:String}",
                parameters={"n": name},
            )
        )
    )


@contextlib.contextmanager
def ingest_paused(client: Client, mode: str, ep_home: Path) -> Iterator[None]:
    """No block reaches the parse chain of ``client``'s database inside the block; ingestion
    resumes when it ends, however it ends.

    compose: the consume view is detached, and attached again after unless the block
    re-created it. local: the gate under ``ep_home`` is held exclusively (see the module).
    """
    if mode == "compose":
        client.command(f"DETACH TABLE {CONSUME_VIEW}")
        try:
            yield
        finally:
            if not view_exists(client):  # a migration may have re-created it itself
                client.command(f"ATTACH TABLE {CONSUME_VIEW}")
        return
    path = gate_path(ep_home)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits for the insert in flight, then holds the next
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
