"""Bridge ``engagement_enriched`` into ClickHouse: local mode's stand-in for the Kafka engine.

The local engine (chdb) cannot run a Kafka-engine table, so this consumer does its job: it
reads the topic in a stable group (default ``warehouse``) and INSERTs each batch of message
values, byte for byte, into ``engagement_enriched_queue`` (a Null table, one ``raw String``
column) over the ClickHouse HTTP interface. The materialized views behind that table parse,
route errors and deduplicate exactly as they do behind the Kafka engine in compose mode
(see ``clickhouse_ddl/``), so the bridge itself never looks inside a message.

Offsets are committed only after ClickHouse acknowledged the insert. A crash in between
replays the batch; that is safe because ``engagement_enriched`` is a ReplacingMergeTree on
the event id (read with FINAL) and the minute rollup keeps only replay-idempotent states.

Batches close at ``--batch-size`` messages or ``--max-wait`` seconds after their first
message (1 s by default), whichever comes first, so latency stays bounded at low rates and
inserts stay large at high rates (ClickHouse prefers few large inserts to many small ones).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from confluent_kafka import Consumer, Message

from engagement_platform.argtypes import positive_float, positive_int
from engagement_platform.settings import Settings
from engagement_platform.streaming import kafka_io
from engagement_platform.streaming.topics import ENRICHED
from engagement_platform.warehouse import ddl

log = logging.getLogger("engagement_platform.streaming.warehouse")

DEFAULT_GROUP = "warehouse"
DEFAULT_BATCH_SIZE = 20_000
DEFAULT_MAX_WAIT = 1.0


@dataclass
class Config:
    topic: str = ENRICHED
    group: str = DEFAULT_GROUP
    table: str = ddl.QUEUE
    database: str | None = None  # None: settings.clickhouse_database
    batch_size: int = DEFAULT_BATCH_SIZE
    max_wait: float = DEFAULT_MAX_WAIT
    poll_timeout: float = 0.5
    summary_every: float = 5.0
    create_topic: bool = True
    consumer_overrides: dict[str, Any] = field(default_factory=dict)


class WarehouseBridge:
    """consume -> insert raw batch -> commit; the benchmark and the tests drive the same object."""

    def __init__(self, settings: Settings, config: Config, client: Client | None = None) -> None:
        self.settings = settings
        self.config = config
        self.client = client if client is not None else ddl.connect_settings(settings, config.database)
        self.summary = kafka_io.Summary("warehouse", every=config.summary_every)
        self.consumer: Consumer | None = None
        self.inserted = 0  # messages acknowledged by ClickHouse (and then committed)
        self.first_record_at: float | None = None  # monotonic; rates exclude the group join

    def open(self) -> Consumer:
        self.consumer = kafka_io.subscribed_consumer(
            self.settings,
            self.config.topic,
            self.config.group,
            create_topic=self.config.create_topic,
            **self.config.consumer_overrides,
        )
        return self.consumer

    def flush(self, records: Sequence[Message], stop: kafka_io.GracefulStop | None = None) -> int:
        """Insert one batch (retrying until ClickHouse answers), then commit its offsets."""
        if not records:
            return 0
        # a tombstone (no value) becomes '' and lands in engagement_enriched_errors as bad_json:
        # it is not a valid enriched event, and nothing is dropped without a trace
        values = [m.value() or b"" for m in records]
        started = time.monotonic()
        kafka_io.retry_sink(
            lambda: ddl.insert_raw(self.client, self.config.table, values),
            (ClickHouseError, OSError),
            "ClickHouse",
            stop,
        )
        elapsed = time.monotonic() - started
        assert self.consumer is not None
        kafka_io.commit_after(self.consumer, records)
        self.inserted += len(values)
        self.summary.add(inserted=len(values), batches=1, insert_ms=int(elapsed * 1000))
        return len(values)

    def lag(self) -> int:
        return kafka_io.consumer_lag(self.consumer) if self.consumer is not None else 0

    def loop(
        self,
        stop: kafka_io.GracefulStop | None = None,
        until: Callable[[], bool] | None = None,
    ) -> None:
        """Consume until SIGTERM/SIGINT (``stop``) or ``until()``; the batch in hand is inserted first."""
        consumer = self.consumer or self.open()
        config = self.config
        extra = lambda: {"lag": self.lag()}  # noqa: E731
        batch: list[Message] = []
        deadline = 0.0

        def stopping() -> bool:
            return (stop is not None and stop.requested) or (until is not None and until())

        while not stopping():
            timeout = (
                config.poll_timeout
                if not batch
                else max(0.0, min(config.poll_timeout, deadline - time.monotonic()))
            )
            msgs = consumer.consume(num_messages=config.batch_size - len(batch), timeout=timeout)
            records = kafka_io.records_of(msgs) if msgs else []
            if records and not batch:
                deadline = time.monotonic() + config.max_wait
                if self.first_record_at is None:
                    self.first_record_at = time.monotonic()
            batch.extend(records)
            if batch and (len(batch) >= config.batch_size or time.monotonic() >= deadline):
                self.flush(batch, stop)
                batch = []
            self.summary.maybe_log(extra)
        self.flush(batch, stop)  # drain: what was consumed is stored and committed before exit
        self.summary.log_now(extra)

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()  # leave the group now, so a restart does not wait for the session
            self.consumer = None
        self.client.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", default=ENRICHED, help=f"input topic (default {ENRICHED})")
    parser.add_argument("--group", default=DEFAULT_GROUP, help=f"consumer group (default {DEFAULT_GROUP})")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"messages per insert at most (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--max-wait",
        type=positive_float,
        default=DEFAULT_MAX_WAIT,
        help=f"seconds a batch may wait for more messages (default {DEFAULT_MAX_WAIT})",
    )
    parser.add_argument(
        "--database", help="ClickHouse database (default: CLICKHOUSE_DATABASE); its schema must exist"
    )
    parser.add_argument(
        "--summary-every", type=positive_float, default=5.0, help="seconds between summary lines (default 5)"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    kafka_io.setup_logging()
    config = Config(
        topic=args.topic,
        group=args.group,
        database=args.database,
        batch_size=args.batch_size,
        max_wait=args.max_wait,
        summary_every=args.summary_every,
    )
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
    try:
        bridge.open()
        bridge.loop(stop)
    finally:
        bridge.close()
    log.info("warehouse: stopped cleanly after %d messages", bridge.inserted)
    return 0
