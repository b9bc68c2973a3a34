"""Join engagement events with their content and write `engagement_enriched` (at-least-once).

The stage of ``consume enrich`` in :class:`.runtime.ConsumerRuntime`: events whose content is
cached leave at once; the others wait in a bounded buffer (:mod:`.pending`) until their content
arrives or ``--pending-timeout`` passes (then flagged ``content_missing``). The content cache
(:mod:`.content_cache`) is rebuilt from ``content.flat`` at every start. A partition is committed
only up to its lowest waiting event, after the producer flushed; bad records go to the DLQ.
Design notes: docs/design/consumers.md.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer
from confluent_kafka import TopicPartition as TP

from engagement_platform.argtypes import positive_float, positive_int
from engagement_platform.settings import Settings
from engagement_platform.streaming import kafka_io, options, topics
from engagement_platform.streaming.content_cache import ContentCache
from engagement_platform.streaming.enrich import (
    Content,
    Event,
    InvalidRecord,
    enrich_bytes,
    now_iso_ms,
    process_event,
)
from engagement_platform.streaming.errors import DeadLetters, FatalError
from engagement_platform.streaming.metrics import ConsumerMetrics
from engagement_platform.streaming.pending import PendingBuffer
from engagement_platform.streaming.runtime import ConsumerRuntime, Stage

log = logging.getLogger("engagement_platform.streaming.enrich")


@dataclass(kw_only=True)
class EnrichOptions(options.ConsumerOptions):
    group: str = "enrich"
    events_topic: str = topics.EVENTS_FLAT
    content_topic: str = topics.CONTENT_FLAT
    output_topic: str = topics.ENRICHED
    dlq_topic: str = topics.ENRICHED_DLQ
    batch_size: int = 5000
    poll_timeout: float = 0.1
    pending_timeout: float = 60.0
    max_pending: int = 100_000
    commit_interval: float = 1.0
    catchup_timeout: float = 60.0
    flush_timeout: float = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = EnrichOptions()
    options.add_arguments(parser, d, batch="max events per poll")
    for flag, default in (
        ("--events-topic", d.events_topic),
        ("--content-topic", d.content_topic),
        ("--output-topic", d.output_topic),
        ("--dlq-topic", d.dlq_topic),
    ):
        parser.add_argument(flag, default=default, help=f"default {default}")
    parser.add_argument(
        "--pending-timeout",
        type=positive_float,
        default=d.pending_timeout,
        help=f"seconds an event waits for its content before leaving flagged content_missing "
        f"(default {d.pending_timeout:g})",
    )
    parser.add_argument(
        "--max-pending",
        type=positive_int,
        default=d.max_pending,
        help=f"events waiting for content before consumption pauses (default {d.max_pending:,})",
    )
    parser.add_argument(
        "--commit-interval",
        type=positive_float,
        default=d.commit_interval,
        help=f"seconds between flush+commit cycles (default {d.commit_interval:g})",
    )
    parser.add_argument(
        "--catchup-timeout",
        type=positive_float,
        default=d.catchup_timeout,
        help=f"max seconds to load the content topic before consuming events (default {d.catchup_timeout:g})",
    )


class EnrichRunner(Stage):
    """The enrichment stage and its runtime; ``stop_when`` lets the benchmark end it after N events."""

    name = "enrich"

    def __init__(
        self,
        settings: Settings,
        options: EnrichOptions,
        *,
        stop: kafka_io.GracefulStop | None = None,
        stop_when: Callable[[EnrichRunner], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.opts = options
        self.stop_when = stop_when
        self.cache = ContentCache()
        self.pending = PendingBuffer()
        self.metrics = ConsumerMetrics("enrich", records_in="processed", records_out="emitted")
        self.summary = kafka_io.Summary(
            f"enrich[{options.group}]", every=options.summary_every, metrics=self.metrics
        )
        # every counter from the first line on, so a health check can rely on the fields
        self.summary.add(processed=0, emitted=0, dlq=0, content_missing=0, waited=0, released=0, skipped=0)
        self.summary.add(content=0)
        self._delivery_errors: list[str] = []
        self.processed = 0  # events consumed (all outcomes)
        self.emitted = 0
        self.content_consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.dead: DeadLetters | None = None
        self.runtime = ConsumerRuntime(
            settings,
            options,
            self,
            topic=options.events_topic,
            max_backlog=options.max_pending,
            stop=stop if stop is not None else kafka_io.GracefulStop(),
        )

    @property
    def consumer(self) -> Consumer | None:
        return self.runtime.consumer

    @property
    def first_event_at(self) -> float | None:
        return self.runtime.first_record_at

    def run(self) -> int:
        stop_when = self.stop_when
        return self.runtime.run(None if stop_when is None else lambda: stop_when(self))

    # --- setup --------------------------------------------------------------------------

    def start(self, runtime: ConsumerRuntime) -> None:
        """Topics, the producer, then the content cache loaded before any event."""
        self._ensure_topics()
        s, o = self.settings, self.opts
        self.producer = Producer(
            kafka_io.producer_config(
                s,
                **{
                    "delivery.report.only.error": True,
                    "on_delivery": self._on_delivery,
                    "error_cb": self._on_error,
                },
            )
        )
        self.dead = DeadLetters(s, o.dlq_topic, self.summary, self.producer)
        content = {"enable.partition.eof": True, **self.client_config()}
        self.content_consumer = Consumer(kafka_io.consumer_config(s, f"{o.group}.content-cache", **content))
        self._load_content()
        log.info(
            "consuming %s as group %r -> %s (dlq %s)", o.events_topic, o.group, o.output_topic, o.dlq_topic
        )

    def _ensure_topics(self) -> None:
        o, n = self.opts, self.settings.topic_partitions
        specs = [
            topics.TopicSpec(o.content_topic, n, {"cleanup.policy": "compact"}),
            topics.TopicSpec(o.events_topic, n),
            topics.TopicSpec(o.output_topic, n),
            topics.TopicSpec(o.dlq_topic, n),
        ]
        created = topics.ensure_topics(
            self.settings.kafka_bootstrap_servers,
            specs,
            bounds=topics.settings_bounds(self.settings),
            replication=topics.settings_replication(self.settings),
        )
        if created:
            log.info("created topics %s", ", ".join(created))

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        # only called for failures ("delivery.report.only.error"): no per-message cost
        if err is not None:
            self._delivery_errors.append(f"{msg.topic()}: {err}")

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._delivery_errors.append(f"fatal client error: {err}")
        else:
            kafka_io.CLIENT_LOG.warning("%s", err)

    def client_config(self) -> dict[str, Any]:
        return {"fetch.wait.max.ms": self.opts.fetch_wait_ms, "error_cb": self._on_error}

    def _load_content(self) -> None:
        """Read the content topic from the beginning up to its end before any event."""
        assert self.content_consumer is not None
        o = self.opts
        meta = self.content_consumer.list_topics(o.content_topic, timeout=30)
        parts = sorted(meta.topics[o.content_topic].partitions)
        self.content_consumer.assign([TP(o.content_topic, p, OFFSET_BEGINNING) for p in parts])
        self.cache.expect(parts)
        deadline = time.monotonic() + o.catchup_timeout
        started = time.monotonic()
        stop = self.runtime.stop
        while not self.cache.caught_up and not (stop is not None and stop.requested):
            if time.monotonic() > deadline:
                log.warning(
                    "content topic not loaded after %.0fs (%d of %d partitions at end); going on",
                    o.catchup_timeout,
                    self.cache.partitions_at_end,
                    len(parts),
                )
                break
            self._poll_content(timeout=0.5, emit=False)
        log.info(
            "content cache loaded: %d items from %s in %.1fs",
            len(self.cache),
            o.content_topic,
            time.monotonic() - started,
        )

    # --- the stage ----------------------------------------------------------------------

    def service(self) -> None:
        """Content that arrived, events whose wait is over, delivery reports."""
        assert self.producer is not None
        self._poll_content(timeout=0, emit=True)
        if self.pending:
            self._expire(time.monotonic())
        self.producer.poll(0)
        if self._delivery_errors:
            raise FatalError(self._delivery_errors[0])

    def health(self) -> dict[str, object]:
        return {"pending": len(self.pending), "cached_content": len(self.cache)}

    def _poll_content(self, timeout: float, emit: bool) -> None:
        """Apply content records; with ``emit``, events waiting for an upserted content leave."""
        assert self.content_consumer is not None and self.dead is not None
        msgs = self.content_consumer.consume(10_000, timeout)
        if not msgs:
            return
        applied = self.cache.apply(msgs)
        for err in applied.errors:
            log.warning("content consumer: %s", err)
        for m, reason in applied.invalid:
            self.dead.send(m, reason)
        if emit:
            for content in applied.upserts:
                if self.pending.waiting_for(content.id):
                    self._emit_waiting(content)
        self.summary.add(content=applied.records)

    def handle(self, records: list[Message]) -> None:
        began = time.monotonic()
        enriched_at = now_iso_ms()
        now = time.monotonic()
        cache = self.cache.items
        pending = self.pending
        producer = self.producer
        dead = self.dead
        assert dead is not None
        produce = kafka_io.produce
        out = self.opts.output_topic
        emitted = skipped = waiting = 0
        for m in records:
            try:
                out_value = process_event(m.value(), cache, enriched_at)
            except InvalidRecord as exc:
                dead.send(m, exc.reason)
                continue
            if type(out_value) is tuple:
                produce(producer, out, out_value[0], out_value[1])  # type: ignore[arg-type]  # type() is tuple
                emitted += 1
            elif out_value is None:  # tombstone or deleted source row: nothing to enrich
                skipped += 1
            else:
                pending.add(m.partition(), m.offset(), out_value, now)  # type: ignore[arg-type]  # an Event here
                waiting += 1
        self.runtime.checkpoint.consumed(records)
        n = len(records)
        self.processed += n
        self.emitted += emitted
        self.summary.add(processed=n, emitted=emitted, skipped=skipped, waited=waiting)
        self.metrics.batch(n, time.monotonic() - began)

    def _emit(self, events: list[Event], content: Content | None) -> None:
        """Produce events that waited, joined with ``content`` (None: flagged content_missing)."""
        assert self.producer is not None
        enriched_at = now_iso_ms()
        out = self.opts.output_topic
        for event in events:
            key = content.key if content is not None else event.content_id.encode()
            kafka_io.produce(self.producer, out, enrich_bytes(event, content, enriched_at), key)
        self.emitted += len(events)

    def _emit_waiting(self, content: Content) -> None:
        events = self.pending.pop_content(content.id)
        self._emit(events, content)
        self.summary.add(emitted=len(events), released=len(events))

    def _expire(self, now: float) -> None:
        expired = self.pending.pop_expired(now - self.opts.pending_timeout)
        if not expired:
            return
        self._emit(expired, None)
        self.summary.add(emitted=len(expired), content_missing=len(expired))
        log.warning(
            "%d events emitted flagged content_missing after waiting %gs",
            len(expired),
            self.opts.pending_timeout,
        )

    def held(self, partition: int) -> int | None:
        return self.pending.lowest_offset(partition)

    def backlog(self) -> int:
        return len(self.pending)

    def acknowledge(self) -> bool:
        """Flush the producer: the output and DLQ records of what is committed are acknowledged."""
        assert self.producer is not None
        remaining = self.producer.flush(self.opts.flush_timeout)
        if self._delivery_errors:
            raise FatalError(self._delivery_errors[0])
        if remaining:
            log.warning("%d produced records not acknowledged yet: commit postponed", remaining)
            return False
        return True

    def forget(self, partitions: set[int]) -> None:
        dropped = self.pending.drop_partitions(partitions)
        if dropped:
            log.info("%d waiting events of revoked partitions left to their next owner", dropped)

    def close(self, clean: bool) -> None:
        if self.content_consumer is not None:
            self.content_consumer.close()
            self.content_consumer = None
        if self.producer is not None:
            left = self.producer.flush(self.opts.flush_timeout)
            if left:
                log.warning("%d records not delivered at exit (not committed: they will be replayed)", left)
            self.producer = None


def run(args: argparse.Namespace, settings: Settings) -> int:
    kafka_io.setup_logging()
    runner = EnrichRunner(settings, EnrichOptions.from_args(args))
    runner.metrics.serve(settings, runner.opts.metrics_port)
    return runner.runtime.run()
