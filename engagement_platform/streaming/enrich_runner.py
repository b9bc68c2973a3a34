"""Join engagement events with their content and write `engagement_enriched` (at-least-once).

How it stays exact:

* The content cache is rebuilt from ``content.flat`` read from the beginning at every start
  (a consumer with ``assign()``, no group, no commits), and kept current while running:
  upserts replace, tombstones and ``__deleted`` rows remove. Events wait until the cache
  has caught up with the topic's end, so a restart does not park every event.
* An event whose content is unknown waits in a bounded buffer. It leaves as soon as its
  content arrives, or after ``--pending-timeout`` seconds flagged ``content_missing`` (and
  counted) — never silently enriched with nulls. When the buffer is full the event
  partitions are paused (back-pressure) until it drains.
* Offsets are committed only for what is acknowledged: at each commit the producer is
  flushed first, and each partition is committed up to its lowest offset still waiting
  in the buffer (or one past the last consumed). A crash therefore replays, never loses.
  Duplicates are possible by design; every sink dedupes on ``event_id``. A delivery
  failure stops the process (exit 1) without committing past it.
* SIGTERM / Ctrl-C: finish the batch, flush, commit, leave the group, exit 0. Events still
  waiting for content are not emitted then: they are not committed, so the next run
  (which reloads the content) handles them.

Output records are keyed by ``content_id`` (UTF-8) with the JSON value of
:func:`engagement_platform.streaming.enrich.enrich`.

Bad input records (events and content alike) go to ``engagement_enriched.dlq`` under their
original key: a JSON value ``{"reason", "topic", "partition", "offset", "timestamp_ms",
"original", "original_encoding"}`` (the original bytes as UTF-8 text, base64, or null for a
tombstone) and headers ``dlq.reason``/``dlq.topic``/``dlq.partition``/``dlq.offset``; see
:mod:`engagement_platform.streaming.dlq`.

The pieces are pure and tested without a broker: :mod:`.content_cache`, :mod:`.pending`
(buffer and back-pressure), :mod:`.offsets` and :mod:`.dlq`; this module only wires them
to the clients.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as TP

from engagement_platform.argtypes import positive_float, positive_int
from engagement_platform.settings import Settings
from engagement_platform.streaming import kafka_io, membership, options, topics
from engagement_platform.streaming.content_cache import ContentCache
from engagement_platform.streaming.dlq import dlq_record_of
from engagement_platform.streaming.enrich import (
    Content,
    Event,
    InvalidRecord,
    enrich_bytes,
    now_iso_ms,
    process_event,
)
from engagement_platform.streaming.metrics import ConsumerMetrics
from engagement_platform.streaming.offsets import OffsetTracker
from engagement_platform.streaming.pending import BackPressure, PendingBuffer

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


class FatalError(RuntimeError):
    """The process cannot go on without risking loss (e.g. a produced record was refused)."""


class EnrichRunner:
    """The consumer loop; ``stop_when`` lets the benchmark end it after N events."""

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
        self.stop = stop if stop is not None else kafka_io.GracefulStop()
        self.stop_when = stop_when
        self.cache = ContentCache()
        self.pending = PendingBuffer()
        self.offsets = OffsetTracker()
        self.backpressure = BackPressure(options.max_pending)
        self.metrics = ConsumerMetrics("enrich", records_in="processed", records_out="emitted")
        self.summary = kafka_io.Summary(
            f"enrich[{options.group}]", every=options.summary_every, metrics=self.metrics
        )
        # every counter from the first line on, so a health check can rely on the fields
        self.summary.add(processed=0, emitted=0, dlq=0, content_missing=0, waited=0, released=0, skipped=0)
        self.summary.add(content=0)
        self._delivery_errors: list[str] = []
        self.watch = membership.watch(settings.kafka_bootstrap_servers, options.group, lambda: self.consumer)
        self.first_event_at: float | None = None
        self.processed = 0  # events consumed (all outcomes)
        self.emitted = 0
        self.consumer: Consumer | None = None
        self.content_consumer: Consumer | None = None
        self.producer: Producer | None = None

    # --- setup --------------------------------------------------------------------------

    def _ensure_topics(self) -> None:
        o, n = self.opts, self.settings.topic_partitions
        specs = [
            topics.TopicSpec(o.content_topic, n, {"cleanup.policy": "compact"}),
            topics.TopicSpec(o.events_topic, n),
            topics.TopicSpec(o.output_topic, n),
            topics.TopicSpec(o.dlq_topic, n),
        ]
        created = topics.ensure_topics(
            self.settings.kafka_bootstrap_servers, specs, bounds=topics.settings_bounds(self.settings)
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

    def _open(self) -> None:
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
        content = {"enable.partition.eof": True, **self._fetch_config()}
        self.content_consumer = Consumer(kafka_io.consumer_config(s, f"{o.group}.content-cache", **content))
        self.consumer = self._events_consumer()

    def _fetch_config(self) -> dict[str, Any]:
        return {"fetch.wait.max.ms": self.opts.fetch_wait_ms, "error_cb": self._on_error}

    def _events_consumer(self) -> Consumer:
        return Consumer(kafka_io.consumer_config(self.settings, self.opts.group, **self._fetch_config()))

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
        while not self.cache.caught_up and not self.stop.requested:
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

    # --- the loop -----------------------------------------------------------------------

    def run(self) -> int:
        o = self.opts
        try:
            self._ensure_topics()
            self._open()
            self._load_content()
        except KafkaException as exc:
            log.error("cannot start: %s", exc)
            self._close(commit=False)
            return 1
        assert self.consumer is not None and self.producer is not None
        self._subscribe()
        log.info(
            "consuming %s as group %r -> %s (dlq %s)", o.events_topic, o.group, o.output_topic, o.dlq_topic
        )
        code = 0
        next_commit = time.monotonic() + o.commit_interval
        try:
            while not self.stop.requested:
                if self.stop_when is not None and self.stop_when(self):
                    break
                self._poll_content(timeout=0, emit=True)
                msgs = kafka_io.next_batch(self.consumer, o.batch_size, o.poll_timeout, o.fill_wait)
                if msgs:
                    began = time.monotonic()
                    self._process(msgs)
                    self.metrics.batch(len(msgs), time.monotonic() - began)
                now = time.monotonic()
                if self.pending:
                    self._expire(now)
                    self._backpressure()
                elif self.backpressure.paused:
                    self._backpressure()
                self.producer.poll(0)
                if self._delivery_errors:
                    raise FatalError(self._delivery_errors[0])
                if now >= next_commit:
                    self._commit()
                    next_commit = time.monotonic() + o.commit_interval
                if self.watch.forgotten(bool(self.consumer.assignment())):
                    self._rejoin()
                self.summary.maybe_log(self._health)
        except FatalError as exc:
            log.error("stopping without committing further: %s", exc)
            code = 1
        except KafkaException as exc:
            log.error("kafka error: %s", exc)
            code = 1
        self._close(commit=code == 0)
        self.summary.log_now(self._health)
        return code

    def _health(self) -> dict[str, object]:
        lag = kafka_io.consumer_lag(self.consumer) if self.consumer is not None else 0
        self.metrics.lag(lag)
        return {"pending": len(self.pending), "lag": lag, "cached_content": len(self.cache)}

    def _poll_content(self, timeout: float, emit: bool) -> None:
        """Apply content records; with ``emit``, events waiting for an upserted content leave."""
        assert self.content_consumer is not None
        msgs = self.content_consumer.consume(10_000, timeout)
        if not msgs:
            return
        applied = self.cache.apply(msgs)
        for err in applied.errors:
            log.warning("content consumer: %s", err)
        for m, reason in applied.invalid:
            self._dlq(m, reason)
        if emit:
            for content in applied.upserts:
                if self.pending.waiting_for(content.id):
                    self._emit_waiting(content)
        self.summary.add(content=applied.records)

    def _process(self, msgs: list[Message]) -> None:
        if self.first_event_at is None:
            self.first_event_at = time.monotonic()
        enriched_at = now_iso_ms()
        now = time.monotonic()
        cache = self.cache.items
        pending = self.pending
        producer = self.producer
        produce = kafka_io.produce
        out = self.opts.output_topic
        emitted = skipped = waiting = 0
        for m in msgs:
            if m.error() is not None:
                self._consumer_error(m)
                continue
            try:
                out_value = process_event(m.value(), cache, enriched_at)
            except InvalidRecord as exc:
                self._dlq(m, exc.reason)
                continue
            if type(out_value) is tuple:
                produce(producer, out, out_value[0], out_value[1])  # type: ignore[arg-type]
                emitted += 1
            elif out_value is None:  # tombstone or deleted source row: nothing to enrich
                skipped += 1
            else:
                pending.add(m.partition(), m.offset(), out_value, now)  # type: ignore[arg-type]
                waiting += 1
        self.offsets.consumed(msgs)
        n = len(msgs)
        self.processed += n
        self.emitted += emitted
        self.summary.add(processed=n, emitted=emitted, skipped=skipped, waited=waiting)

    def _consumer_error(self, m: Message) -> None:
        err = m.error()
        if err.fatal():
            raise FatalError(str(err))
        log.warning("events consumer: %s", err)

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

    def _backpressure(self) -> None:
        """Pause event partitions while the buffer is full; resume once it drained enough."""
        assert self.consumer is not None
        size = len(self.pending)
        was_paused = self.backpressure.paused
        action = self.backpressure.update(size)
        if action is None:
            return
        assignment = self.consumer.assignment()
        if action == "pause":
            if assignment:
                self.consumer.pause(assignment)  # repeated: newly assigned partitions too
            if not was_paused:
                log.warning("%d events wait for content: pausing consumption", size)
        else:
            if assignment:
                self.consumer.resume(assignment)
            log.info("pending buffer drained to %d: resuming", size)

    def _dlq(self, m: Message, reason: str) -> None:
        assert self.producer is not None
        value, headers = dlq_record_of(m, reason)
        kafka_io.produce(self.producer, self.opts.dlq_topic, value, m.key(), headers=headers)
        self.summary.add(dlq=1)
        log.debug("dlq %s[%d]@%d: %s", m.topic(), m.partition(), m.offset(), reason)

    # --- offsets ------------------------------------------------------------------------

    def _commit(self, partitions: set[int] | None = None, timeout: float | None = None) -> bool:
        """Flush, then commit each partition up to its lowest offset still waiting."""
        assert self.consumer is not None and self.producer is not None
        offsets = self.offsets.to_commit(self.pending.lowest_offset, partitions)
        if not offsets:
            return True
        remaining = self.producer.flush(self.opts.flush_timeout if timeout is None else timeout)
        if self._delivery_errors:
            raise FatalError(self._delivery_errors[0])
        if remaining:
            log.warning("%d produced records not acknowledged yet: commit postponed", remaining)
            return False
        topic = self.opts.events_topic
        try:
            self.consumer.commit(offsets=[TP(topic, p, o) for p, o in offsets.items()], asynchronous=False)
        except KafkaException as exc:
            log.warning("commit failed (will retry): %s", exc)
            return False
        self.offsets.committed(offsets)
        self.metrics.committed()
        self.metrics.lag(kafka_io.consumer_lag(self.consumer))
        return True

    def _subscribe(self) -> None:
        assert self.consumer is not None
        topic = self.opts.events_topic
        self.consumer.subscribe(
            [topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def _rejoin(self) -> None:
        """A new events consumer in place of one its group forgot: what the old one held was
        revoked or lost already (and left to the next owner), so nothing is committed here."""
        assert self.consumer is not None
        membership.warn_rejoin(self.summary.name, self.opts.group)
        self._forget(set(self.offsets.assigned))
        self.consumer.close()
        self.consumer = self._events_consumer()
        self._subscribe()

    def _on_assign(self, _consumer: Consumer, partitions: list[TP]) -> None:
        self.offsets.assign(tp.partition for tp in partitions)
        log.info(
            "assigned %s (now %s)", sorted(tp.partition for tp in partitions), sorted(self.offsets.assigned)
        )

    def _on_revoke(self, _consumer: Consumer, partitions: list[TP]) -> None:
        revoked = {tp.partition for tp in partitions}
        log.info("revoked %s", sorted(revoked))
        try:
            self._commit(revoked)
        except FatalError as exc:
            self._delivery_errors.append(str(exc))
        self._forget(revoked)

    def _on_lost(self, _consumer: Consumer, partitions: list[TP]) -> None:
        lost = {tp.partition for tp in partitions}
        log.warning("lost %s (not committing them)", sorted(lost))
        self._forget(lost)

    def _forget(self, partitions: set[int]) -> None:
        dropped = self.pending.drop_partitions(partitions)
        if dropped:
            log.info("%d waiting events of revoked partitions left to their next owner", dropped)
        self.offsets.forget(partitions)

    def _close(self, commit: bool) -> None:
        if self.consumer is not None:
            if commit:
                try:
                    self._commit()
                except FatalError as exc:
                    log.error("final commit skipped: %s", exc)
                    commit = False
            if not commit:
                self.offsets.abandon()  # the revoke callback must not commit either
            try:
                self.consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("closing consumer: %s", exc)
            self.consumer = None
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
    return runner.run()
