"""The one consumer loop: enrich, the leaderboard and the warehouse bridge each run in it.

A consumer is its :class:`Stage` (its transformation plus its sink); the runtime owns the rest:
the group consumer and its rebalance callbacks, poll and batching, back-pressure, commits
(through :class:`.checkpoint.Checkpoint`, only of acknowledged output), the group watch
(:mod:`.membership`), the summary line, and the drain on SIGTERM/SIGINT. Delivery is
at-least-once; every sink deduplicates by event id. Design notes: docs/design/consumers.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

from confluent_kafka import Consumer, KafkaException, Message
from confluent_kafka import TopicPartition as TP

from engagement_platform.settings import Settings
from engagement_platform.streaming import kafka_io, membership, topics
from engagement_platform.streaming.checkpoint import Checkpoint
from engagement_platform.streaming.errors import FatalError
from engagement_platform.streaming.metrics import ConsumerMetrics
from engagement_platform.streaming.options import ConsumerOptions
from engagement_platform.streaming.pending import BackPressure

log = logging.getLogger("engagement_platform.streaming")

SETTLE_POLL_S = 0.02  # the longest a poll waits while the stage has work finishing


class Stage:
    """What one consumer does with its records; the runtime calls these hooks. The defaults
    suit a stage that holds nothing back and has nothing to flush."""

    name: ClassVar[str]  # the summary line's name
    metrics: ConsumerMetrics
    summary: kafka_io.Summary

    def start(self, runtime: ConsumerRuntime) -> None:
        """Open the stage's own clients before the group is joined (may raise KafkaException)."""

    def handle(self, records: list[Message]) -> None:
        """Take one batch of records (none with an error)."""
        raise NotImplementedError

    def service(self) -> None:
        """Between two polls: work that records do not drive (timers, a write that finished)."""

    def busy(self) -> bool:
        """True while work is finishing that the loop should come back for soon."""
        return False

    def acknowledge(self) -> bool:
        """Make the output of every record the checkpoint holds acknowledged; False: not yet."""
        return True

    def finish(self) -> None:
        """Complete the work in hand (a write in flight) before a drain or a rejoin."""

    def held(self, partition: int) -> int | None:
        """The lowest offset of ``partition`` still held back (None: none)."""
        return None

    def backlog(self) -> int:
        """Records held back, for back-pressure."""
        return 0

    def forget(self, partitions: set[int]) -> None:
        """The partitions are no longer ours: drop what is held of them (the next owner rereads it)."""

    def client_config(self) -> dict[str, Any]:
        """Overrides of the group consumer's config."""
        return {}

    def health(self) -> dict[str, object]:
        """Fields the summary line ends with."""
        return {}

    def close(self, clean: bool) -> None:
        """Release the stage's clients; ``clean`` False after a failure."""


class ConsumerRuntime:
    """poll -> batch -> ``stage.handle`` -> commit what is acknowledged, until stopped."""

    def __init__(
        self,
        settings: Settings,
        options: ConsumerOptions,
        stage: Stage,
        *,
        topic: str,
        create_topic: bool = False,
        max_backlog: int | None = None,
        stop: kafka_io.GracefulStop | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.stage = stage
        self.topic = topic
        self.create_topic = create_topic
        self.stop = stop
        self.consumer: Consumer | None = None
        self.checkpoint = Checkpoint(topic, stage.metrics, stage.held)
        self.backpressure = BackPressure(max_backlog) if max_backlog else None
        self.watch = membership.watch(settings.kafka_bootstrap_servers, options.group, lambda: self.consumer)
        self.first_record_at: float | None = None  # monotonic; rates exclude the group join
        self._failures: list[str] = []  # from callbacks, raised by the loop

    # --- the group consumer -------------------------------------------------------------

    def open(self) -> Consumer:
        """Join the group (the topic created first when asked, so a consumer started before
        its producer does not wait on a broker-default topic)."""
        s = self.settings
        if self.create_topic:
            spec = topics.TopicSpec(self.topic, s.topic_partitions)
            topics.ensure_topics(
                s.kafka_bootstrap_servers,
                [spec],
                bounds=topics.settings_bounds(s),
                replication=topics.settings_replication(s),
            )
        overrides = {"fetch.wait.max.ms": self.options.fetch_wait_ms, **self.stage.client_config()}
        consumer = Consumer(kafka_io.consumer_config(s, self.options.group, **overrides))
        consumer.subscribe(
            [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        self.consumer = consumer
        return consumer

    def _on_assign(self, _consumer: Consumer, partitions: list[TP]) -> None:
        tracker = self.checkpoint.tracker
        tracker.assign(tp.partition for tp in partitions)
        log.info("assigned %s (now %s)", sorted(tp.partition for tp in partitions), sorted(tracker.assigned))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TP]) -> None:
        revoked = {tp.partition for tp in partitions}
        log.info("revoked %s", sorted(revoked))
        try:
            self.commit(revoked)
        except FatalError as exc:
            self._failures.append(str(exc))
        self.forget(revoked)

    def _on_lost(self, _consumer: Consumer, partitions: list[TP]) -> None:
        lost = {tp.partition for tp in partitions}
        log.warning("lost %s (not committing them)", sorted(lost))
        self.forget(lost)

    def forget(self, partitions: set[int]) -> None:
        self.stage.forget(partitions)
        self.checkpoint.tracker.forget(partitions)

    def commit(self, partitions: set[int] | None = None) -> bool:
        """Commit what the stage acknowledged (of ``partitions``, default all)."""
        if self.consumer is None:
            return False
        return self.checkpoint.commit(self.consumer, self.stage.acknowledge, partitions)

    # --- the loop -----------------------------------------------------------------------

    def loop(self, until: Callable[[], bool] | None = None) -> None:
        """Consume until stopped (``stop``, or ``until()``); what is in hand is handled,
        acknowledged and committed before it returns."""
        consumer = self.consumer or self.open()
        o, stage = self.options, self.stage
        batch: list[Message] = []
        deadline = 0.0
        next_commit = time.monotonic() + o.commit_interval

        def stopping() -> bool:
            return (self.stop is not None and self.stop.requested) or (until is not None and until())

        while not stopping():
            timeout = (
                o.poll_timeout if not batch else max(0.0, min(o.poll_timeout, deadline - time.monotonic()))
            )
            if stage.busy():  # come back soon to commit it once written
                timeout = min(timeout, SETTLE_POLL_S)
            msgs = kafka_io.next_batch(consumer, o.batch_size - len(batch), timeout, o.fill_wait)
            if msgs:
                records = kafka_io.records_of(msgs)
                if records and not batch:
                    deadline = time.monotonic() + o.max_wait
                    if self.first_record_at is None:
                        self.first_record_at = time.monotonic()
                batch.extend(records)
            if batch and (len(batch) >= o.batch_size or time.monotonic() >= deadline):
                stage.handle(batch)
                batch = []
            stage.service()  # before the stop check: a write that just finished is committed now
            if self.backpressure is not None:
                self._backpressure()
            if self._failures:
                raise FatalError(self._failures[0])
            if o.commit_interval and time.monotonic() >= next_commit:
                self.commit()
                next_commit = time.monotonic() + o.commit_interval
            if self.watch.forgotten(bool(consumer.assignment())):
                consumer = self._rejoin(batch)
                batch = []
            stage.summary.maybe_log(self.health)
        if batch:  # drain: what was consumed is stored and committed before exit
            stage.handle(batch)
        stage.finish()
        self.commit()
        stage.summary.log_now(self.health)

    def _backpressure(self) -> None:
        """Pause the assignment while the stage holds too much back; resume once it drained."""
        assert self.backpressure is not None and self.consumer is not None
        size = self.stage.backlog()
        was_paused = self.backpressure.paused
        if not size and not was_paused:
            return
        action = self.backpressure.update(size)
        if action is None:
            return
        assignment = self.consumer.assignment()
        if action == "pause":
            if assignment:
                self.consumer.pause(assignment)  # repeated: newly assigned partitions too
            if not was_paused:
                log.warning("%d records held back: pausing consumption", size)
        else:
            if assignment:
                self.consumer.resume(assignment)
            log.info("held back records down to %d: resuming", size)

    def _rejoin(self, batch: list[Message]) -> Consumer:
        """A new consumer in place of one its group forgot. What is in hand is stored first
        (its commit fails: the partitions are gone, so the new owner replays it, deduplicated)."""
        assert self.consumer is not None
        membership.warn_rejoin(self.stage.name, self.options.group)
        if batch:
            self.stage.handle(batch)
        self.stage.finish()
        self.forget(set(self.checkpoint.tracker.assigned))
        self.consumer.close()
        self.consumer = None
        return self.open()

    def health(self) -> dict[str, object]:
        # "partitions=0" tells an idle consumer from one still waiting for its group assignment
        consumer = self.consumer
        partitions = len(consumer.assignment()) if consumer is not None else 0
        lag = kafka_io.consumer_lag(consumer) if consumer is not None else 0
        self.stage.metrics.lag(lag)
        return {"partitions": partitions, "lag": lag, **self.stage.health()}

    # --- the process --------------------------------------------------------------------

    def run(self, until: Callable[[], bool] | None = None) -> int:
        """Start, loop until stopped, close: 0, or 1 after a failure that risked loss (nothing
        committed past it). Other errors propagate, after a close that commits nothing."""
        clean = False
        try:
            try:
                self.stage.start(self)
                self.open()
            except KafkaException as exc:
                log.error("%s: cannot start: %s", self.stage.name, exc)
                return 1
            try:
                self.loop(until)
            except (FatalError, KafkaException) as exc:
                log.error("%s: stopping without committing further: %s", self.stage.name, exc)
                self.stage.summary.log_now(self.health)
                return 1
            clean = True
            return 0
        finally:
            self.close(clean)

    def close(self, clean: bool = True) -> None:
        """Leave the group now (a restart does not wait for the session) and release the stage;
        after a failure, nothing more is committed, not even by the revoke callback."""
        if self.consumer is not None:
            if not clean:
                self.checkpoint.tracker.abandon()
            try:
                self.consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("closing consumer: %s", exc)
            self.consumer = None
        self.stage.close(clean)

    def serve(self, until: Callable[[], bool] | None = None) -> int:
        """What ``consume NAME`` runs: /metrics, then :meth:`run`."""
        self.stage.metrics.serve(self.settings, self.options.metrics_port)
        return self.run(until)
