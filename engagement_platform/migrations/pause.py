"""Pause the warehouse's ingestion while ClickHouse migrations run, so none loses or doubles a row.

The writers of the parse chain wait at the ingest gate (``warehouse.gate``: the bridge,
``history_backfill``, ``dlq replay --warehouse``), which the run closes. In compose mode the
Kafka-engine table consumes by itself, so its view is also detached
(``DETACH TABLE engagement_enriched_queue_mv`` ... ``ATTACH TABLE``: ClickHouse's documented way
to stop it; its committed offsets make it resume exactly where it stopped). On a cluster (a
``Replicated`` database) the detach is ``PERMANENTLY``, the kind such a database accepts and
replicates, so every replica's queue stops.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from clickhouse_connect.driver.client import Client

from engagement_platform.warehouse import ddl, gate

CONSUME_VIEW = "engagement_enriched_queue_mv"  # 090_consume.sql: the queue's only reader


def view_exists(client: Client, name: str = CONSUME_VIEW) -> bool:
    return ddl.table_exists(client, name)


@contextlib.contextmanager
def ingest_paused(client: Client, mode: str, ep_home: Path) -> Iterator[None]:
    """No block reaches the parse chain of ``client``'s database inside the block; ingestion
    resumes when it ends, however it ends.

    The gate under ``ep_home`` is closed; in compose mode the consume view is also detached,
    and attached again after unless the block re-created it.
    """
    with gate.closed(ep_home):
        if mode not in ("compose", "cluster"):
            yield
            return
        client.command(f"DETACH TABLE {CONSUME_VIEW}" + (" PERMANENTLY" if mode == "cluster" else ""))
        try:
            yield
        finally:
            if not view_exists(client):  # a migration may have re-created it itself
                client.command(f"ATTACH TABLE {CONSUME_VIEW}")
