"""What every Kafka client of the platform shares: configs, produce, poll, graceful stop, summaries.

Consumers commit by hand (:mod:`.checkpoint`), only after their output is acknowledged:
delivery is at-least-once and every sink is idempotent by event id.
"""

from __future__ import annotations

import logging
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from engagement_platform.kafka_config import FETCH_WAIT_MS as FETCH_WAIT_MS
from engagement_platform.kafka_config import client_config
from engagement_platform.settings import Settings
from engagement_platform.streaming.metrics import ConsumerMetrics

log = logging.getLogger("engagement_platform.streaming")


def setup_logging(level: int = logging.INFO) -> None:
    """One readable line per event worth knowing, on stderr."""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )


class Repeats(logging.Filter):
    """Lets one of each kind of message through per ``window`` seconds; the next one says how
    many it stood for. While the broker is away librdkafka retries every ~50 ms and logs each
    failed connect: tens of identical lines a second per client, burying what matters."""

    def __init__(self, window: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self._last: dict[str, tuple[float, int]] = {}  # kind -> (last let through, held back since)

    def filter(self, record: logging.LogRecord) -> bool:
        kind = re.sub(r"\d+", "#", record.getMessage())  # ports, timestamps, "after 0ms" vary
        now = self.clock()
        last, held = self._last.get(kind, (now - self.window, 0))
        if now - last < self.window:
            self._last[kind] = (last, held + 1)
            return False
        self._last[kind] = (now, 0)
        if held:
            record.msg = f"{record.msg} (and {held} like it in {now - last:.0f}s)"
        return True


# librdkafka's own log lines, through the ``logger`` client setting rather than raw stderr
CLIENT_LOG = logging.getLogger("engagement_platform.kafka")
CLIENT_LOG.addFilter(Repeats())


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    extra = {"group.id": group_id, "logger": CLIENT_LOG, **overrides}
    return client_config(settings.kafka_bootstrap_servers, "consumer", extra)


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    return client_config(settings.kafka_bootstrap_servers, "producer", {"logger": CLIENT_LOG, **overrides})


class GracefulStop:
    """SIGINT/SIGTERM ask the loop to finish its batch, flush, commit and exit."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.requested:  # a second Ctrl-C means now
            raise KeyboardInterrupt
        self.requested = True
        log.info("stop requested (%s): draining", signal.Signals(signum).name)


@dataclass
class Summary:
    """Counters logged as one line at most every ``every`` seconds (and, with ``metrics``, also
    counted as Prometheus counters)."""

    name: str
    every: float = 5.0
    metrics: ConsumerMetrics | None = None
    counters: dict[str, int] = field(default_factory=dict)
    _window: dict[str, int] = field(default_factory=dict)
    _last: float = field(default_factory=time.monotonic)

    def add(self, **counts: int) -> None:
        for k, v in counts.items():
            self.counters[k] = self.counters.get(k, 0) + v
            self._window[k] = self._window.get(k, 0) + v
            if self.metrics is not None:
                self.metrics.count(k, v)

    def maybe_log(self, extra: Callable[[], dict[str, object]] | None = None) -> None:
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self.log_now(extra, now)

    def log_now(self, extra: Callable[[], dict[str, object]] | None = None, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        elapsed = max(now - self._last, 1e-9)
        parts = [f"{k}={v:,} (+{self._window.get(k, 0) / elapsed:,.0f}/s)" for k, v in self.counters.items()]
        if extra is not None:
            parts += [f"{k}={v}" for k, v in extra().items()]
        log.info("%s: %s", self.name, " ".join(parts) if parts else "idle")
        self._window.clear()
        self._last = now


def produce(
    producer: Producer,
    topic: str,
    value: bytes | None,
    key: bytes | None = None,
    *,
    headers: Sequence[tuple[str, bytes]] | None = None,
    on_delivery: Callable[[Any, Any], None] | None = None,
    partition: int | None = None,
) -> None:
    """Produce one record, waiting while librdkafka's local queue is full.

    A full queue (BufferError) means deliveries are behind, not that the record is bad: serve
    delivery reports until there is room, so back-pressure reaches the caller as a pause.
    Keywords are passed only when set: explicit Nones cost a third of the call.
    """
    extra: dict[str, Any] = {}
    if headers is not None:
        extra["headers"] = headers
    if on_delivery is not None:
        extra["on_delivery"] = on_delivery
    if partition is not None:  # else the partitioner picks by key
        extra["partition"] = partition
    while True:
        try:
            producer.produce(topic, value, key, **extra)
            return
        except BufferError:
            producer.poll(0.05)


def next_batch(
    consumer: Consumer, max_messages: int, timeout: float, fill_wait: float = 0.0
) -> list[Message]:
    """Up to ``max_messages``: wait up to ``timeout`` for the first, then ``fill_wait`` more for
    the rest.

    ``Consumer.consume(n, timeout)`` alone returns only once it has ``n`` messages or the timeout
    passed, so at a few hundred events per second every record sat out the whole timeout: that
    wait was most of the pipeline's latency. With ``fill_wait`` 0 a batch is what is already
    queued locally when its first record arrives -- full batches under load, no waiting when quiet.
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    if max_messages <= 1:
        return [first]
    return [first, *consumer.consume(num_messages=max_messages - 1, timeout=fill_wait)]


def consumer_lag(consumer: Any) -> int:
    """Messages behind the high watermark over the current assignment.

    Uses the watermark that Fetch responses carry (``cached=True``): no broker round trip
    on the consumer's hot path.
    """
    total = 0
    assignment = consumer.assignment()
    if not assignment:
        return 0
    for tp in consumer.position(assignment):
        _low, high = consumer.get_watermark_offsets(tp, cached=True)
        if high >= 0 and tp.offset >= 0:
            total += max(high - tp.offset, 0)
    return total


def records_of(msgs: Sequence[Message]) -> list[Message]:
    """The messages that carry records. A fatal client error raises; end-of-partition
    markers are dropped; other errors are transient (librdkafka retries) and only logged."""
    records = [m for m in msgs if m.error() is None]
    if len(records) == len(msgs):
        return records
    for msg in msgs:
        err = msg.error()
        if err is None:
            continue
        if err.fatal():
            raise KafkaException(err)
        if err.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error: %s", err)
    return records
