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

DLQ records (``engagement_enriched.dlq``) keep the original key as their key. Their value
is a JSON object ``{"reason", "topic", "partition", "offset", "timestamp_ms",
"original", "original_encoding"}`` where ``original`` is the original value as text
(``original_encoding`` "utf-8"), as base64 ("base64") when it is not UTF-8, or null for a
tombstone. The same reason/topic/partition/offset also travel as headers
``dlq.reason``, ``dlq.topic``, ``dlq.partition``, ``dlq.offset``, so tools can route
without parsing. Invalid content records go there too (with their own topic name).
"""

from __future__ import annotations

import argparse
import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as TP

from engagement_platform.argtypes import positive_float, positive_int
from engagement_platform.settings import Settings
from engagement_platform.streaming import kafka_io, topics
from engagement_platform.streaming.enrich import (
    Content,
    ContentDeleted,
    Event,
    InvalidRecord,
    enrich_bytes,
    now_iso_ms,
    parse_content,
    process_event,
)

log = logging.getLogger("engagement_platform.streaming.enrich")


@dataclass
class EnrichOptions:
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
    summary_every: float = 5.0
    catchup_timeout: float = 60.0
    flush_timeout: float = 30.0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EnrichOptions:
        return cls(**{k: getattr(args, k) for k in cls.__dataclass_fields__ if hasattr(args, k)})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = EnrichOptions()
    parser.add_argument("--group", default=d.group, help=f"consumer group id (default {d.group!r})")
    parser.add_argument("--events-topic", default=d.events_topic, help=f"default {d.events_topic}")
    parser.add_argument("--content-topic", default=d.content_topic, help=f"default {d.content_topic}")
    parser.add_argument("--output-topic", default=d.output_topic, help=f"default {d.output_topic}")
    parser.add_argument("--dlq-topic", default=d.dlq_topic, help=f"default {d.dlq_topic}")
    parser.add_argument(
        "--batch-size", type=positive_int, default=d.batch_size, help=f"max events per poll ({d.batch_size})"
    )
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
        "--summary-every",
        type=positive_float,
        default=d.summary_every,
        help=f"seconds between summary lines (default {d.summary_every:g})",
    )
    parser.add_argument(
        "--catchup-timeout",
        type=positive_float,
        default=d.catchup_timeout,
        help=f"max seconds to load the content topic before consuming events (default {d.catchup_timeout:g})",
    )


class FatalError(RuntimeError):
    """The process cannot go on without risking loss (e.g. a produced record was refused)."""


class PendingBuffer:
    """Events waiting for their content, indexed by content id, by partition and by age.

    Dicts keep insertion order, which is arrival order (for timeouts) and, within a
    partition, offset order (so the lowest waiting offset is the first key).
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[int, int], tuple[Event, float]] = {}
        self._by_content: dict[str, dict[tuple[int, int], None]] = {}
        self._by_partition: dict[int, dict[int, None]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, partition: int, offset: int, event: Event, now: float) -> None:
        key = (partition, offset)
        self._entries[key] = (event, now)
        self._by_content.setdefault(event.content_id, {})[key] = None
        self._by_partition.setdefault(partition, {})[offset] = None

    def _remove(self, key: tuple[int, int]) -> Event:
        event, _ = self._entries.pop(key)
        offsets = self._by_partition[key[0]]
        del offsets[key[1]]
        if not offsets:
            del self._by_partition[key[0]]
        return event

    def waiting_for(self, content_id: str) -> bool:
        return content_id in self._by_content

    def pop_content(self, content_id: str) -> list[Event]:
        keys = self._by_content.pop(content_id, None)
        return [self._remove(k) for k in keys] if keys else []

    def pop_expired(self, deadline: float) -> list[Event]:
        """Events that arrived before ``deadline``, oldest first."""
        expired = []
        for key, (event, arrived) in self._entries.items():
            if arrived > deadline:
                break
            expired.append((key, event))
        out = []
        for key, event in expired:
            self._remove(key)
            keys = self._by_content[event.content_id]
            del keys[key]
            if not keys:
                del self._by_content[event.content_id]
            out.append(event)
        return out

    def drop_partitions(self, partitions: set[int]) -> int:
        """Forget events of partitions this process no longer owns (their next owner rereads them)."""
        keys = [k for k in self._entries if k[0] in partitions]
        for key in keys:
            event = self._remove(key)
            content_keys = self._by_content[event.content_id]
            del content_keys[key]
            if not content_keys:
                del self._by_content[event.content_id]
        return len(keys)

    def lowest_offset(self, partition: int) -> int | None:
        offsets = self._by_partition.get(partition)
        return next(iter(offsets)) if offsets else None


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
        self.cache: dict[str, Content] = {}
        self.pending = PendingBuffer()
        self.summary = kafka_io.Summary(f"enrich[{options.group}]", every=options.summary_every)
        # every counter from the first line on, so a health check can rely on the fields
        self.summary.add(processed=0, emitted=0, dlq=0, content_missing=0, waited=0, released=0, skipped=0)
        self.summary.add(content=0)
        # partition -> offset after the last consumed event (what we may commit at most)
        self._next: dict[int, int] = {}
        self._committed: dict[int, int] = {}
        self._delivery_errors: list[str] = []
        self._paused = False
        self._assigned: set[int] = set()
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
            log.warning("kafka: %s", err)

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
        self.content_consumer = Consumer(
            kafka_io.consumer_config(
                s, f"{o.group}.content-cache", **{"enable.partition.eof": True, "error_cb": self._on_error}
            )
        )
        self.consumer = Consumer(kafka_io.consumer_config(s, o.group, error_cb=self._on_error))

    def _load_content(self) -> None:
        """Read the content topic from the beginning up to its end before any event."""
        assert self.content_consumer is not None
        o = self.opts
        meta = self.content_consumer.list_topics(o.content_topic, timeout=30)
        parts = sorted(meta.topics[o.content_topic].partitions)
        self.content_consumer.assign([TP(o.content_topic, p, OFFSET_BEGINNING) for p in parts])
        at_end: set[int] = set()
        deadline = time.monotonic() + o.catchup_timeout
        started = time.monotonic()
        while len(at_end) < len(parts) and not self.stop.requested:
            if time.monotonic() > deadline:
                log.warning(
                    "content topic not loaded after %.0fs (%d of %d partitions at end); going on",
                    o.catchup_timeout,
                    len(at_end),
                    len(parts),
                )
                break
            at_end |= self._poll_content(timeout=0.5, emit=False)
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
        self.consumer.subscribe(
            [o.events_topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        log.info(
            "consuming %s as group %r -> %s (dlq %s)", o.events_topic, o.group, o.output_topic, o.dlq_topic
        )
        code = 0
        next_commit = time.monotonic() + o.commit_interval
        consume = self.consumer.consume
        try:
            while not self.stop.requested:
                if self.stop_when is not None and self.stop_when(self):
                    break
                self._poll_content(timeout=0, emit=True)
                msgs = consume(o.batch_size, o.poll_timeout)
                if msgs:
                    self._process(msgs)
                now = time.monotonic()
                if self.pending:
                    self._expire(now)
                    self._backpressure()
                elif self._paused:
                    self._backpressure()
                self.producer.poll(0)
                if self._delivery_errors:
                    raise FatalError(self._delivery_errors[0])
                if now >= next_commit:
                    self._commit()
                    next_commit = time.monotonic() + o.commit_interval
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
        return {"pending": len(self.pending), "lag": lag, "cached_content": len(self.cache)}

    def _poll_content(self, timeout: float, emit: bool) -> set[int]:
        """Apply content records; return the partitions that reported end-of-partition."""
        assert self.content_consumer is not None
        at_end: set[int] = set()
        msgs = self.content_consumer.consume(10_000, timeout)
        if not msgs:
            return at_end
        cache = self.cache
        n = 0
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(m.partition())
                else:
                    log.warning("content consumer: %s", err)
                continue
            n += 1
            try:
                change = parse_content(m.key(), m.value())
            except InvalidRecord as exc:
                self._dlq(m, exc.reason)
                continue
            if type(change) is ContentDeleted:
                cache.pop(change.id, None)
            else:
                cache[change.id] = change  # type: ignore[assignment]
                if emit and self.pending.waiting_for(change.id):
                    self._emit_waiting(change)  # type: ignore[arg-type]
        self.summary.add(content=n)
        return at_end

    def _produce(self, value: bytes, key: bytes) -> None:
        assert self.producer is not None
        while True:
            try:
                self.producer.produce(self.opts.output_topic, value, key)
                return
            except BufferError:  # local queue full: let deliveries drain it
                self.producer.poll(0.05)

    def _process(self, msgs: list[Message]) -> None:
        if self.first_event_at is None:
            self.first_event_at = time.monotonic()
        enriched_at = now_iso_ms()
        now = time.monotonic()
        cache = self.cache
        pending = self.pending
        nxt = self._next
        produce = self.producer.produce  # type: ignore[union-attr]
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
                try:
                    produce(out, out_value[0], out_value[1])
                except BufferError:
                    self._produce(out_value[0], out_value[1])
                emitted += 1
            elif out_value is None:  # tombstone or deleted source row: nothing to enrich
                skipped += 1
            else:
                pending.add(m.partition(), m.offset(), out_value, now)  # type: ignore[arg-type]
                waiting += 1
        # consume() returns each partition's messages in offset order: the last one of each
        # partition in the batch is how far this batch got there
        seen: set[int] = set()
        everything = len(self._assigned)
        for m in reversed(msgs):
            if m.error() is not None:
                continue
            p = m.partition()
            if p not in seen:
                seen.add(p)
                nxt[p] = m.offset() + 1
                if len(seen) >= everything:
                    break
        n = len(msgs)
        self.processed += n
        self.emitted += emitted
        self.summary.add(processed=n, emitted=emitted, skipped=skipped, waited=waiting)

    def _consumer_error(self, m: Message) -> None:
        err = m.error()
        if err.fatal():
            raise FatalError(str(err))
        log.warning("events consumer: %s", err)

    def _emit_waiting(self, content: Content) -> None:
        events = self.pending.pop_content(content.id)
        enriched_at = now_iso_ms()
        for event in events:
            self._produce(enrich_bytes(event, content, enriched_at), content.key)
        self.emitted += len(events)
        self.summary.add(emitted=len(events), released=len(events))

    def _expire(self, now: float) -> None:
        expired = self.pending.pop_expired(now - self.opts.pending_timeout)
        if not expired:
            return
        enriched_at = now_iso_ms()
        for event in expired:
            self._produce(enrich_bytes(event, None, enriched_at), event.content_id.encode())
        self.emitted += len(expired)
        self.summary.add(emitted=len(expired), content_missing=len(expired))
        log.warning(
            "%d events emitted flagged content_missing after waiting %gs",
            len(expired),
            self.opts.pending_timeout,
        )

    def _backpressure(self) -> None:
        """Pause event partitions while the buffer is full; resume once it is 80% drained."""
        assert self.consumer is not None
        size, limit = len(self.pending), self.opts.max_pending
        assignment = self.consumer.assignment()
        if size >= limit:
            if assignment:
                self.consumer.pause(assignment)  # repeated: newly assigned partitions too
            if not self._paused:
                log.warning("%d events wait for content: pausing consumption", size)
                self._paused = True
        elif self._paused and size < limit * 0.8:
            if assignment:
                self.consumer.resume(assignment)
            self._paused = False
            log.info("pending buffer drained to %d: resuming", size)

    def _dlq(self, m: Message, reason: str) -> None:
        value = m.value()
        if value is None:
            original, encoding = None, None
        else:
            try:
                original, encoding = value.decode(), "utf-8"
            except UnicodeDecodeError:
                original, encoding = base64.b64encode(value).decode(), "base64"
        _ts_type, ts = m.timestamp()
        record = {
            "reason": reason,
            "topic": m.topic(),
            "partition": m.partition(),
            "offset": m.offset(),
            "timestamp_ms": ts,
            "original": original,
            "original_encoding": encoding,
        }
        headers = [
            ("dlq.reason", reason.encode()),
            ("dlq.topic", (m.topic() or "").encode()),
            ("dlq.partition", str(m.partition()).encode()),
            ("dlq.offset", str(m.offset()).encode()),
        ]
        assert self.producer is not None
        while True:
            try:
                self.producer.produce(self.opts.dlq_topic, orjson.dumps(record), m.key(), headers=headers)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.summary.add(dlq=1)
        log.debug("dlq %s[%d]@%d: %s", m.topic(), m.partition(), m.offset(), reason)

    # --- offsets ------------------------------------------------------------------------

    def _commit(self, partitions: set[int] | None = None, timeout: float | None = None) -> bool:
        """Flush, then commit each partition up to its lowest offset still waiting."""
        assert self.consumer is not None and self.producer is not None
        topic = self.opts.events_topic
        offsets = []
        for p, nxt in self._next.items():
            if partitions is not None and p not in partitions:
                continue
            low = self.pending.lowest_offset(p)
            target = nxt if low is None else low
            if self._committed.get(p) != target:
                offsets.append(TP(topic, p, target))
        if not offsets:
            return True
        remaining = self.producer.flush(self.opts.flush_timeout if timeout is None else timeout)
        if self._delivery_errors:
            raise FatalError(self._delivery_errors[0])
        if remaining:
            log.warning("%d produced records not acknowledged yet: commit postponed", remaining)
            return False
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("commit failed (will retry): %s", exc)
            return False
        for tp in offsets:
            self._committed[tp.partition] = tp.offset
        return True

    def _on_assign(self, _consumer: Consumer, partitions: list[TP]) -> None:
        self._assigned |= {tp.partition for tp in partitions}
        log.info("assigned %s (now %s)", sorted(tp.partition for tp in partitions), sorted(self._assigned))

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
        self._assigned -= partitions
        dropped = self.pending.drop_partitions(partitions)
        if dropped:
            log.info("%d waiting events of revoked partitions left to their next owner", dropped)
        for p in partitions:
            self._next.pop(p, None)
            self._committed.pop(p, None)

    def _close(self, commit: bool) -> None:
        if self.consumer is not None:
            if commit:
                try:
                    self._commit()
                except FatalError as exc:
                    log.error("final commit skipped: %s", exc)
                    commit = False
            if not commit:
                self._next.clear()  # the revoke callback must not commit either
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
    return EnrichRunner(settings, EnrichOptions.from_args(args)).run()
