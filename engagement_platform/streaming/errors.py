"""What a consumer does with what it cannot process: the error policy of the runtime.

A record it cannot read goes to the dead-letter topic (see :mod:`.dlq`), acknowledged before
its offset is committed, so a refused record is never lost. A store that is down is retried,
never skipped. Anything that would risk loss (a produced record refused, a fatal client
error) is a :class:`FatalError`: the process stops without committing past it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from confluent_kafka import Message, Producer

from engagement_platform.settings import Settings
from engagement_platform.streaming import dlq, kafka_io, topics

log = logging.getLogger("engagement_platform.streaming")
T = TypeVar("T")


class FatalError(RuntimeError):
    """The process cannot go on without risking loss (e.g. a produced record was refused)."""


class DeadLetters:
    """Routes refused records to ``topic`` with their reason. With ``producer`` the records
    travel with the consumer's output (acknowledged by its flush); without, a producer of its
    own is made at the first letter and :meth:`acknowledge` flushes it."""

    def __init__(
        self, settings: Settings, topic: str, summary: kafka_io.Summary, producer: Producer | None = None
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.summary = summary
        self.producer = producer
        self._own = producer is None

    def send(self, msg: Message, reason: str) -> None:
        if self.producer is None:
            spec = topics.TopicSpec(self.topic, self.settings.topic_partitions)
            bounds = topics.settings_bounds(self.settings)
            replication = topics.settings_replication(self.settings)
            topics.ensure_topics(
                self.settings.kafka_bootstrap_servers, [spec], bounds=bounds, replication=replication
            )
            self.producer = Producer(kafka_io.producer_config(self.settings))
        value, headers = dlq.dlq_record_of(msg, reason)
        kafka_io.produce(self.producer, self.topic, value, msg.key(), headers=headers)
        self.summary.add(dlq=1)
        log.debug("dlq %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), reason)

    def acknowledge(self, timeout: float = 30.0) -> None:
        """Wait until the broker has every letter of our own producer; raise if it has not."""
        if self._own and self.producer is not None and self.producer.flush(timeout):
            raise FatalError(f"DLQ records not acknowledged by {self.topic}: batch not committed")


def retry_sink(
    write: Callable[[], T],
    errors: tuple[type[BaseException], ...],
    sink: str,
    stop: kafka_io.GracefulStop | None,
) -> T:
    """Retry a sink write with backoff while the sink is down; never skip a batch.

    When a stop is requested meanwhile, give up *without* committing: the next start
    replays the batch, and replays are deduplicated by event id.
    """
    delay = 0.5
    while True:
        try:
            return write()
        except errors as exc:
            if stop is not None and stop.requested:
                raise RuntimeError(
                    f"stopping while {sink} is unavailable ({exc}); batch not committed"
                ) from exc
            log.warning("%s unavailable (%s); retrying the batch in %.1fs", sink, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
