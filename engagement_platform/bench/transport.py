"""The Kafka side every benchmark shares: scratch topics and groups, pre-loading, consuming N
records, the transport ceilings, clean-up.

A ceiling is the transport limit for the same input in the same run: the consumer's loop with
its work taken out. ``relay`` consumes and produces the raw bytes, nothing parsed (the most an
enricher could reach); ``drain`` consumes and decodes as the consumer does, with no sink (the
most a sink consumer could reach). Both commit once at the end. Rates run from the first
record received to the last commit, so group joins (seconds on the local broker) never count.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from engagement_platform.bench.report import Bar, Run, progress, say
from engagement_platform.kafka_config import client_config
from engagement_platform.settings import Settings
from engagement_platform.streaming import kafka_io
from engagement_platform.streaming.checkpoint import next_offsets
from engagement_platform.streaming.topics import (
    TopicSpec,
    ensure_topics,
    settings_bounds,
    settings_replication,
)

Records = Iterable[tuple[bytes | None, bytes | None]]


@dataclass
class Scratch:
    """The topics and groups a run creates, removed when it ends: a run writes millions of
    records that would otherwise sit in the broker's page cache and data directory until
    retention, and slow the next runs."""

    settings: Settings
    run_id: str
    topics: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    def topic(self, name: str, config: dict[str, str] | None = None, *, create: bool = True) -> str:
        """A scratch topic (created unless its consumer creates it), deleted at the end."""
        if create:
            ensure_topics(
                self.settings.kafka_bootstrap_servers,
                [TopicSpec(name, self.settings.topic_partitions, config or {})],
                bounds=settings_bounds(self.settings),
                replication=settings_replication(self.settings),
            )
        self.topics.append(name)
        return name

    def group(self, name: str) -> str:
        self.groups.append(name)
        return name

    def drop(self, names: Sequence[str]) -> None:
        """Delete topics now rather than at the end: one run's output is garbage to the next."""
        admin = self.admin()  # kept referenced until the futures are done
        self._delete(admin.delete_topics(list(names), operation_timeout=30), "topic")
        self.topics = [t for t in self.topics if t not in names]

    def close(self) -> None:
        admin = self.admin()
        if self.groups:
            self._delete(admin.delete_consumer_groups(self.groups), "group")
        if self.topics:
            self._delete(admin.delete_topics(self.topics, operation_timeout=30), "topic")
        self.topics, self.groups = [], []

    def admin(self) -> AdminClient:
        return AdminClient(client_config(self.settings.kafka_bootstrap_servers))

    @staticmethod
    def _delete(futures: dict[str, Future[None]], what: str) -> None:
        for name, future in futures.items():
            try:
                future.result(30)
            except KafkaException as exc:  # a leftover scratch object is not worth failing the run
                say(f"could not delete {what} {name}: {exc}")


def preload(settings: Settings, topic: str, records: Records, total: int, label: str = "pre-load") -> float:
    """Produce ``records`` (key, value) and wait until all are acknowledged; returns seconds."""
    producer = Producer(kafka_io.producer_config(settings))
    failed: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failed.append(str(err))

    started = time.monotonic()
    with progress(label, total) as bar:
        n = 0
        for n, (key, value) in enumerate(records, start=1):
            kafka_io.produce(producer, topic, value, key, on_delivery=on_delivery)
            if n % 10_000 == 0:
                producer.poll(0)
                bar.update(n)
        left = producer.flush(60)
        bar.update(n)
    if left or failed:
        raise RuntimeError(f"pre-loading {topic}: {failed[:3] or f'{left} records not acknowledged'}")
    return time.monotonic() - started


def count(settings: Settings, topic: str) -> int:
    """Records in ``topic`` now (high minus low watermarks): what a producer got acknowledged."""
    consumer = Consumer(client_config(settings.kafka_bootstrap_servers, extra={"group.id": "bench-count"}))
    try:
        parts = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        marks = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30) for p in parts]
    finally:
        consumer.close()
    return sum(high - low for low, high in marks)


@dataclass
class Consumed:
    records: int = 0
    batches: int = 0
    started: float | None = None  # monotonic, at the first record

    def since_first(self) -> float:
        assert self.started is not None
        return time.monotonic() - self.started


def consume_n(
    consumer: Consumer,
    n: int,
    batch_size: int,
    handle: Callable[[list[Message]], object],
    bar: Bar,
    timeout: float = 0.5,
) -> Consumed:
    """Consume batches and ``handle`` each, as it comes (the consumers sort out errors
    themselves), until ``n`` messages were handled."""
    got = Consumed()
    while got.records < n:
        msgs = consumer.consume(num_messages=batch_size, timeout=timeout)
        if not msgs:
            continue
        if got.started is None:
            got.started = time.monotonic()
        handle(msgs)
        got.records += len(msgs)
        got.batches += 1
        bar.update(got.records)
    return got


def drain(
    settings: Settings,
    topic: str,
    group: str,
    n: int,
    batch_size: int,
    bar: Bar,
    decode: Callable[[list[Message]], object],
    finish: Callable[[], object] = lambda: None,
) -> Run:
    """Ceiling: consume and ``decode`` each batch as the consumer does, with no sink; then
    ``finish`` and one commit."""
    consumer = Consumer(kafka_io.consumer_config(settings, group))
    consumer.subscribe([topic])
    ends: dict[tuple[str, int], TopicPartition] = {}  # what to commit: per partition, past the last record

    def keep(msgs: list[Message]) -> None:
        records = kafka_io.records_of(msgs)
        decode(records)
        for tp in next_offsets(records):
            ends[(tp.topic, tp.partition)] = tp

    try:
        got = consume_n(consumer, n, batch_size, keep, bar)
        finish()
        consumer.commit(offsets=list(ends.values()), asynchronous=False)
        seconds = got.since_first()
    finally:
        consumer.close()
    return Run(got.records, seconds)


def relay(
    settings: Settings,
    topic: str,
    out_topic: str,
    group: str,
    n: int,
    batch_size: int,
    bar: Bar,
    transform: Callable[[bytes], bytes] | None = None,
) -> Run:
    """Ceiling: consume -> produce the raw bytes (ours' producer settings), flush, commit;
    with ``transform``, each value goes through it on the way (a floor for consumers that do
    at least that)."""
    failed: list[str] = []
    producer = Producer(
        kafka_io.producer_config(
            settings,
            **{"delivery.report.only.error": True, "on_delivery": lambda err, _m: failed.append(str(err))},
        )
    )
    produce = kafka_io.produce  # as the enrichment runner produces

    def forward(records: list[Message]) -> None:
        for m in records:
            value = m.value()
            if transform is not None and value is not None:
                value = transform(value)
            produce(producer, out_topic, value, m.key())
        producer.poll(0)

    def flush() -> None:
        if producer.flush(60) or failed:
            raise RuntimeError(f"ceiling: records not acknowledged {failed[:3]}")

    return drain(settings, topic, group, n, batch_size, bar, forward, flush)
