"""The loop of a consumer that writes a topic into a store: consume, write, commit, repeat.

Delivery is at-least-once: a batch's offsets are committed only after the sink applied
the whole batch, so a crash in between replays it, and the sink's write must be
idempotent (by event id). A sink that is down is retried with backoff, never skipped; a
stop requested meanwhile exits *without* committing. A sink supplies only its write
(:meth:`SinkConsumer.prepare`, :meth:`~SinkConsumer.write`, :meth:`~SinkConsumer.written`).

Batches close at ``batch_size`` records or ``max_wait`` seconds after their first record,
whichever comes first (``max_wait`` 0: each consume() call's records are one batch).

One write is in flight while the next batch is consumed and prepared: the sink (Redis,
ClickHouse) works in its own process while this one parses, so on two cores neither waits
for the other. Writes still happen one at a time and in order, and a batch is committed
only after its own write returned, so the guarantee above is unchanged.
"""

from __future__ import annotations

import argparse
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from confluent_kafka import Consumer, Message, Producer

from engagement_platform.settings import Settings
from engagement_platform.streaming import dlq, kafka_io, membership, options, topics
from engagement_platform.streaming.metrics import ConsumerMetrics
from engagement_platform.streaming.topics import ENRICHED, ENRICHED_DLQ

SETTLE_POLL_S = 0.02  # the longest a consume() waits while a write is in flight
P = TypeVar("P")  # a batch made ready for the sink
R = TypeVar("R")  # what the sink answered


@dataclass(kw_only=True)
class SinkOptions(options.ConsumerOptions):
    topic: str = ENRICHED
    poll_timeout: float = 0.5
    max_wait: float = 0.0  # seconds a batch may wait for more records after its first
    dlq_topic: str = ENRICHED_DLQ  # where records the sink cannot take go, with the reason
    create_topic: bool = True  # the tests and benchmarks create theirs with their own partitions
    consumer_overrides: dict[str, Any] = field(default_factory=dict)


def add_arguments(parser: argparse.ArgumentParser, defaults: SinkOptions, *, batch: str) -> None:
    """``--topic`` and the flags every consumer has."""
    parser.add_argument("--topic", default=defaults.topic, help=f"input topic (default {defaults.topic})")
    options.add_arguments(parser, defaults, batch=batch)


@dataclass
class InFlight(Generic[P, R]):
    """A batch handed to the writer thread, not yet committed."""

    records: Sequence[Message]
    prepared: P
    result: Future[R]
    started: float  # monotonic, when its write began


class SinkConsumer(ABC, Generic[P, R]):
    """consume -> prepare -> write (retried) -> commit -> count; the benchmarks and the tests
    drive the same object as ``consume NAME``."""

    name: ClassVar[str]  # the summary line's name
    sink_name: ClassVar[str]  # the store, as retry warnings name it
    sink_errors: ClassVar[tuple[type[BaseException], ...]]  # "the sink is unavailable": retry
    records_in: ClassVar[str] = "processed"  # the summary counter of records consumed
    records_out: ClassVar[str]  # the summary counter of records the sink took

    def __init__(self, settings: Settings, config: SinkOptions) -> None:
        self.settings = settings
        self.config = config
        self.metrics = ConsumerMetrics(self.name, records_in=self.records_in, records_out=self.records_out)
        self.summary = kafka_io.Summary(self.name, every=config.summary_every, metrics=self.metrics)
        self.consumer: Consumer | None = None
        self._dlq_producer: Producer | None = None
        self.first_record_at: float | None = None  # monotonic; rates exclude the group join
        self._writer: ThreadPoolExecutor | None = None
        self.in_flight: InFlight[P, R] | None = None
        self.watch = membership.watch(settings.kafka_bootstrap_servers, config.group, lambda: self.consumer)

    @abstractmethod
    def prepare(self, records: Sequence[Message]) -> P:
        """Turn records into what one write sends (once per batch, not per retry)."""

    @abstractmethod
    def write(self, prepared: P) -> R:
        """Apply the batch to the sink; raise one of ``sink_errors`` to be retried. Must be
        idempotent: after a crash the same batch comes again."""

    @abstractmethod
    def written(self, prepared: P, result: R, seconds: float) -> None:
        """Count a batch the sink applied and whose offsets were committed."""

    def dead_letters(self, prepared: P, records: Sequence[Message]) -> list[tuple[Message, str]]:
        """The records of the batch the sink refused, each with its reason (default: none)."""
        return []

    def close_sink(self) -> None:
        """Release the sink's client, if this consumer owns one."""

    def open(self) -> Consumer:
        self.consumer = kafka_io.subscribed_consumer(
            self.settings,
            self.config.topic,
            self.config.group,
            create_topic=self.config.create_topic,
            **{"fetch.wait.max.ms": self.config.fetch_wait_ms, **self.config.consumer_overrides},
        )
        return self.consumer

    def flush(self, records: Sequence[Message], stop: kafka_io.GracefulStop | None = None) -> R | None:
        """Write one batch (retrying until the sink answers) and commit it, waiting for both;
        with no records, settle the write in flight."""
        self.submit(records, stop)
        return self.settle()

    def submit(self, records: Sequence[Message], stop: kafka_io.GracefulStop | None = None) -> None:
        """Prepare ``records`` while the write in flight goes on, settle that write, then hand
        this batch to the writer thread; :meth:`settle` commits it."""
        if not records:
            return
        prepared = self.prepare(records)
        self.settle()
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-write")
        result = self._writer.submit(
            kafka_io.retry_sink, lambda: self.write(prepared), self.sink_errors, self.sink_name, stop
        )
        self.in_flight = InFlight(records, prepared, result, time.monotonic())

    def settle(self) -> R | None:
        """Wait for the write in flight (its error is raised here, uncommitted), then send its
        dead letters, commit its offsets and count it."""
        done = self.in_flight
        if done is None:
            return None
        self.in_flight = None
        result = done.result.result()
        seconds = time.monotonic() - done.started
        assert self.consumer is not None
        self.send_dead_letters(self.dead_letters(done.prepared, done.records))
        kafka_io.commit_after(self.consumer, done.records)
        self.metrics.committed()
        self.metrics.batch(len(done.records), seconds)
        self.lag()  # the gauge follows every commit
        self.written(done.prepared, result, seconds)
        return result

    def send_dead_letters(self, letters: Sequence[tuple[Message, str]]) -> None:
        """To the DLQ, acknowledged before the batch is committed: a refused record is never lost."""
        if not letters:
            return
        if self._dlq_producer is None:
            spec = topics.TopicSpec(self.config.dlq_topic, self.settings.topic_partitions)
            bounds = topics.settings_bounds(self.settings)
            topics.ensure_topics(self.settings.kafka_bootstrap_servers, [spec], bounds=bounds)
            self._dlq_producer = Producer(kafka_io.producer_config(self.settings))
        for msg, reason in letters:
            value, headers = dlq.dlq_record_of(msg, reason)
            kafka_io.produce(self._dlq_producer, self.config.dlq_topic, value, msg.key(), headers=headers)
        if self._dlq_producer.flush(30):
            raise RuntimeError(
                f"DLQ records not acknowledged by {self.config.dlq_topic}: batch not committed"
            )
        self.summary.add(dlq=len(letters))

    def lag(self) -> int:
        lag = kafka_io.consumer_lag(self.consumer) if self.consumer is not None else 0
        self.metrics.lag(lag)
        return lag

    def health(self) -> dict[str, object]:
        # "partitions=0" tells an idle consumer from one still waiting for its group assignment
        partitions = len(self.consumer.assignment()) if self.consumer is not None else 0
        return {"partitions": partitions, "lag": self.lag()}

    def loop(
        self, stop: kafka_io.GracefulStop | None = None, until: Callable[[], bool] | None = None
    ) -> None:
        """Consume until SIGTERM/SIGINT (``stop``) or ``until()``; the batch in hand is written first."""
        consumer = self.consumer or self.open()
        config = self.config
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
            if self.in_flight is not None:  # come back soon to commit it once written
                timeout = min(timeout, SETTLE_POLL_S)
            msgs = kafka_io.next_batch(consumer, config.batch_size - len(batch), timeout, config.fill_wait)
            records = kafka_io.records_of(msgs) if msgs else []
            if records and not batch:
                deadline = time.monotonic() + config.max_wait
                if self.first_record_at is None:
                    self.first_record_at = time.monotonic()
            batch.extend(records)
            if batch and (len(batch) >= config.batch_size or time.monotonic() >= deadline):
                self.submit(batch, stop)
                batch = []
            if self.in_flight is not None and self.in_flight.result.done():
                self.settle()
            if self.watch.forgotten(bool(consumer.assignment())):
                consumer = self.rejoin(batch, stop)
                batch = []
            self.summary.maybe_log(self.health)
        self.flush(batch, stop)  # drain: what was consumed is stored and committed before exit
        self.summary.log_now(self.health)

    def rejoin(self, batch: Sequence[Message], stop: kafka_io.GracefulStop | None) -> Consumer:
        """Store what is in hand (its commit fails: the partitions are gone, so the new owner
        replays it, deduplicated), then a new consumer joins the group."""
        membership.warn_rejoin(self.name, self.config.group)
        self.flush(batch, stop)
        assert self.consumer is not None
        self.consumer.close()
        self.consumer = None
        return self.open()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)  # a write in flight finishes; it stays uncommitted
            self._writer = None
        if self.consumer is not None:
            self.consumer.close()  # leave the group now, so a restart does not wait for the session
            self.consumer = None
        self.close_sink()

    def serve(self, stop: kafka_io.GracefulStop) -> None:
        """What ``consume NAME`` runs: until stopped, then leave the group."""
        self.metrics.serve(self.settings, self.config.metrics_port)
        try:
            self.open()
            self.loop(stop)
        finally:
            self.close()
