"""Offset commits, in one place: what a consumer may commit, and the commit itself.

Committing offset N tells the group "everything before N is done", so a consumer commits only
records whose output was acknowledged (produced and flushed, or written to its store). A
consumer that parks records (an event waiting for its content) commits a partition up to its
lowest offset still held; a crash then replays what was held, never skips it. Replays are
expected: every sink deduplicates by event id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from engagement_platform.streaming.kafka_io import consumer_lag
from engagement_platform.streaming.metrics import ConsumerMetrics

log = logging.getLogger("engagement_platform.streaming")


class OffsetTracker:
    """The assignment, how far each partition was consumed, and what was committed last."""

    def __init__(self) -> None:
        self.assigned: set[int] = set()
        self._next: dict[int, int] = {}  # partition -> offset after the last consumed record
        self._committed: dict[int, int] = {}

    def assign(self, partitions: Iterable[int]) -> None:
        self.assigned |= set(partitions)

    def consumed(self, msgs: Sequence[Message]) -> None:
        """Advance past ``msgs`` (one consume() batch: each partition's records in offset order)."""
        seen: set[int] = set()
        everything = len(self.assigned)
        nxt = self._next
        # the last record of each partition in the batch is how far the batch got there;
        # walking back from the end stops once every assigned partition was seen
        for m in reversed(msgs):
            if m.error() is not None:
                continue
            p = m.partition()
            if p not in seen:
                seen.add(p)
                nxt[p] = m.offset() + 1
                if len(seen) >= everything > 0:  # no assignment known: walk them all
                    break

    def to_commit(
        self, lowest_waiting: Callable[[int], int | None], partitions: set[int] | None = None
    ) -> dict[int, int]:
        """Partition -> offset to commit now, for the partitions (default all) that moved since
        the last :meth:`committed`: the lowest offset still waiting, else one past the last consumed."""
        offsets = {}
        for p, nxt in self._next.items():
            if partitions is not None and p not in partitions:
                continue
            low = lowest_waiting(p)
            target = nxt if low is None else low
            if self._committed.get(p) != target:
                offsets[p] = target
        return offsets

    def committed(self, offsets: Mapping[int, int]) -> None:
        """The broker accepted ``offsets``."""
        self._committed.update(offsets)

    def forget(self, partitions: set[int]) -> None:
        """The partitions are no longer ours (revoked or lost): nothing of them is committed any more."""
        self.assigned -= partitions
        for p in partitions:
            self._next.pop(p, None)
            self._committed.pop(p, None)

    def abandon(self) -> None:
        """Commit nothing from now on (a failed run: what was consumed will be replayed)."""
        self._next.clear()


def next_offsets(msgs: Sequence[Message]) -> list[TopicPartition]:
    """The offsets past ``msgs``, records of one topic: past each partition's last record."""
    last = {m.partition(): m for m in msgs}
    return [TopicPartition(m.topic(), p, m.offset() + 1) for p, m in last.items()]


def nothing_held(_partition: int) -> int | None:
    return None


class Checkpoint:
    """The tracker of one consumer's topic and the commit: ``consumed`` what is handed on,
    ``commit`` once ``acknowledge`` says the outputs are acknowledged."""

    def __init__(
        self, topic: str, metrics: ConsumerMetrics, held: Callable[[int], int | None] = nothing_held
    ) -> None:
        self.topic = topic
        self.metrics = metrics
        self.held = held  # the lowest offset a partition still holds back (None: none)
        self.tracker = OffsetTracker()

    def consumed(self, msgs: Sequence[Message]) -> None:
        """``msgs`` are handed on: committable once acknowledged."""
        self.tracker.consumed(msgs)

    def commit(
        self, consumer: Consumer, acknowledge: Callable[[], bool], partitions: set[int] | None = None
    ) -> bool:
        """Commit what moved (of ``partitions``, default all) once ``acknowledge()`` is True; a
        failed commit is retried at the next one, or replayed by the partition's next owner."""
        offsets = self.tracker.to_commit(self.held, partitions)
        if not offsets:
            return True
        if not acknowledge():
            return False
        try:
            consumer.commit(
                offsets=[TopicPartition(self.topic, p, o) for p, o in offsets.items()], asynchronous=False
            )
        except KafkaException as exc:
            log.warning("offset commit failed (%s); retried, or replayed and deduplicated", exc)
            return False
        self.tracker.committed(offsets)
        self.metrics.committed()
        self.metrics.lag(consumer_lag(consumer))
        return True
