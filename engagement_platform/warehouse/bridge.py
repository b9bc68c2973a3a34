"""Bridge ``engagement_enriched`` into ClickHouse: local mode's stand-in for the Kafka engine.

chdb cannot run a Kafka-engine table, so this sink stage (:mod:`engagement_platform.streaming.sink`)
inserts each batch of message values, byte for byte, into ``engagement_enriched_queue``; the
materialized views behind it parse, route errors and deduplicate as behind the Kafka engine.
Offsets are committed after ClickHouse acknowledged the insert (replays are deduplicated by
event id), and each insert waits at the ingest gate while a migration replaces a view.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from confluent_kafka import Message

from engagement_platform.argtypes import positive_float
from engagement_platform.settings import Settings
from engagement_platform.streaming import kafka_io, sink
from engagement_platform.warehouse import ddl
from engagement_platform.warehouse.gate import IngestGate

log = logging.getLogger("engagement_platform.warehouse.bridge")


@dataclass(kw_only=True)
class Config(sink.SinkOptions):
    group: str = "warehouse"
    batch_size: int = 20_000
    # ClickHouse prefers fewer, larger inserts; a quarter second keeps rows queryable within
    # about half a second of their commit at a few inserts per second
    max_wait: float = 0.25
    table: str = ddl.QUEUE
    database: str | None = None  # None: settings.clickhouse_database


class WarehouseBridge(sink.SinkConsumer[list[bytes], int]):
    """consume -> insert raw batch -> commit; the benchmark and the tests drive the same object."""

    name = "warehouse"
    sink_name = "ClickHouse"
    # every record consumed goes into the queue table as it is (parsing happens in ClickHouse)
    records_in = records_out = "inserted"
    sink_errors = (ClickHouseError, OSError)

    def __init__(self, settings: Settings, config: Config, client: Client | None = None) -> None:
        super().__init__(settings, config)
        self.config: Config = config
        # uncompressed: the bridge runs beside its server (local mode), where lz4 only spends
        # both ends' CPU; a 20,000-row insert took 356 ms compressed, 120 ms not (docs/performance.md)
        self.client = (
            client
            if client is not None
            else ddl.connect_settings(settings, config.database, role="writer", compress=False)
        )
        self.inserted = 0  # messages acknowledged by ClickHouse (and then committed)
        self.gate = IngestGate(settings.ep_home)  # paused while migrations run

    def prepare(self, records: Sequence[Message]) -> list[bytes]:
        # a tombstone (no value) becomes '' and lands in engagement_enriched_errors as bad_json:
        # it is not a valid enriched event, and nothing is dropped without a trace
        return [m.value() or b"" for m in records]

    def write(self, prepared: list[bytes]) -> int:
        with self.gate.insert():
            return ddl.insert_raw(self.client, self.config.table, prepared)

    def written(self, prepared: list[bytes], result: int, seconds: float) -> None:
        self.inserted += len(prepared)
        self.summary.add(inserted=len(prepared), batches=1, insert_ms=int(seconds * 1000))

    def close_sink(self) -> None:
        self.client.close()
        self.gate.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = Config()
    sink.add_arguments(parser, d, batch="messages per insert at most")
    parser.add_argument(
        "--max-wait",
        type=positive_float,
        default=d.max_wait,
        help=f"seconds a batch may wait for more messages (default {d.max_wait})",
    )
    parser.add_argument(
        "--database", help="ClickHouse database (default: CLICKHOUSE_DATABASE); its schema must exist"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    kafka_io.setup_logging()
    config = Config.from_args(args)
    if settings.mode != "local":
        log.warning(
            "EP_MODE=%s: ClickHouse's Kafka engine already consumes %s; running the bridge too "
            "only adds duplicates (harmless, deduplicated) and load",
            settings.mode,
            config.topic,
        )
    stop = kafka_io.GracefulStop()
    bridge = WarehouseBridge(settings, config)
    log.info(
        "warehouse: topic=%s group=%s -> %s.%s at %s:%d, batch<=%d msgs / %.1fs",
        config.topic,
        config.group,
        config.database or settings.clickhouse_database,
        config.table,
        settings.clickhouse_host,
        settings.clickhouse_port,
        config.batch_size,
        config.max_wait,
    )
    code = bridge.serve(stop)
    if code == 0:
        log.info("warehouse: stopped cleanly after %d messages", bridge.inserted)
    return code
