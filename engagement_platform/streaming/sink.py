"""The stage of a consumer that writes a topic into a store (Redis, ClickHouse).

A sink supplies only its write (:meth:`SinkConsumer.prepare`, :meth:`~SinkConsumer.write`,
:meth:`~SinkConsumer.written`); the loop is :class:`.runtime.ConsumerRuntime`. A batch is
committed only after the sink applied all of it, so the write must be idempotent (by event
id). A sink that is down is retried, never skipped. One write is in flight while the next
batch is prepared, yet writes and commits stay one at a time and in order.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from confluent_kafka import Consumer, Message

from engagement_platform.settings import Settings
from engagement_platform.streaming import kafka_io, options
from engagement_platform.streaming.errors import DeadLetters, retry_sink
from engagement_platform.streaming.metrics import ConsumerMetrics
from engagement_platform.streaming.runtime import ConsumerRuntime, Stage
from engagement_platform.streaming.topics import ENRICHED, ENRICHED_DLQ

P = TypeVar("P")  # a batch made ready for the sink
R = TypeVar("R")  # what the sink answered


@dataclass(kw_only=True)
class SinkOptions(options.ConsumerOptions):
    topic: str = ENRICHED
    poll_timeout: float = 0.5
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


class SinkConsumer(Stage, Generic[P, R]):
    """prepare -> write (retried, in a writer thread) -> dead letters -> commit -> count; the
    benchmarks and the tests drive the same object as ``consume NAME``."""

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
        self.dead = DeadLetters(settings, config.dlq_topic, self.summary)
        self._writer: ThreadPoolExecutor | None = None
        self.in_flight: InFlight[P, R] | None = None
        self.stop: kafka_io.GracefulStop | None = None
        self.runtime = ConsumerRuntime(
            settings, config, self, topic=config.topic, create_topic=config.create_topic
        )

    # --- what a sink supplies ------------------------------------------------------------

    def prepare(self, records: Sequence[Message]) -> P:
        """Turn records into what one write sends (once per batch, not per retry)."""
        raise NotImplementedError

    def write(self, prepared: P) -> R:
        """Apply the batch to the sink; raise one of ``sink_errors`` to be retried. Must be
        idempotent: after a crash the same batch comes again."""
        raise NotImplementedError

    def written(self, prepared: P, result: R, seconds: float) -> None:
        """Count a batch the sink applied and whose offsets were committed."""
        raise NotImplementedError

    def dead_letters(self, prepared: P, records: Sequence[Message]) -> list[tuple[Message, str]]:
        """The records of the batch the sink refused, each with its reason (default: none)."""
        return []

    def close_sink(self) -> None:
        """Release the sink's client, if this consumer owns one."""

    # --- the stage ----------------------------------------------------------------------

    def client_config(self) -> dict[str, Any]:
        return dict(self.config.consumer_overrides)

    def handle(self, records: list[Message]) -> None:
        self.submit(records, self.stop)

    def service(self) -> None:
        if self.in_flight is not None and self.in_flight.result.done():
            self.settle()

    def busy(self) -> bool:
        return self.in_flight is not None

    def finish(self) -> None:
        self.settle()

    def close(self, clean: bool = True) -> None:
        """Leave the group, let a write in flight finish (uncommitted), release the sink."""
        if self.runtime.consumer is not None:
            self.runtime.close(clean)  # leaves the group, then comes back here
            return
        if self._writer is not None:
            self._writer.shutdown(wait=True)  # a write in flight finishes; it stays uncommitted
            self._writer = None
        self.close_sink()

    # --- the write pipeline -------------------------------------------------------------

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
            retry_sink, lambda: self.write(prepared), self.sink_errors, self.sink_name, stop
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
        for msg, reason in self.dead_letters(done.prepared, done.records):
            self.dead.send(msg, reason)
        self.dead.acknowledge()  # a refused record is never lost
        self.runtime.checkpoint.consumed(done.records)
        self.runtime.commit()
        self.metrics.batch(len(done.records), seconds)
        self.written(done.prepared, result, seconds)
        return result

    def flush(self, records: Sequence[Message], stop: kafka_io.GracefulStop | None = None) -> R | None:
        """Write one batch (retrying until the sink answers) and commit it, waiting for both;
        with no records, settle the write in flight."""
        self.submit(records, stop)
        return self.settle()

    # --- driving it ---------------------------------------------------------------------

    @property
    def consumer(self) -> Consumer | None:
        return self.runtime.consumer

    @property
    def first_record_at(self) -> float | None:
        return self.runtime.first_record_at

    def open(self) -> Consumer:
        return self.runtime.open()

    def loop(
        self, stop: kafka_io.GracefulStop | None = None, until: Callable[[], bool] | None = None
    ) -> None:
        """Consume until SIGTERM/SIGINT (``stop``) or ``until()``; the batch in hand is written first."""
        self.stop = self.runtime.stop = stop
        self.runtime.loop(until)

    def lag(self) -> int:
        consumer = self.runtime.consumer
        lag = kafka_io.consumer_lag(consumer) if consumer is not None else 0
        self.metrics.lag(lag)
        return lag

    def serve(self, stop: kafka_io.GracefulStop) -> int:
        """What ``consume NAME`` runs: until stopped, then leave the group."""
        self.stop = self.runtime.stop = stop
        return self.runtime.serve()
