"""What the peer enrichers (the Faust and Quix Streams apps) share: flags, the join, the report.

The peers are other frameworks doing our join, for ``bench enrich`` to measure beside ours.
They live in their own virtual environment (``.venv-peers``: Quix Streams pins
confluent-kafka below the platform's), so this module imports only the standard library and
the enricher's pure modules. The record itself comes from
:func:`~engagement_platform.streaming.enrich.process_event`, as ours: the same bytes modulo
``enriched_at``, keys included.

Semantics beside ours: an event whose content is unknown waits in the same
:class:`~engagement_platform.streaming.pending.PendingBuffer` and leaves when the content
comes, or flagged ``content_missing`` after ``--pending-timeout`` (checked when a record or,
in Faust, a timer comes: no back-pressure). Invalid records are counted and dropped, not
sent to a DLQ. A waiting event counts as handled for the framework's offsets, so a crash
may lose it (ours never commits past it).

Progress and the result go to stdout as ``@peer {json}`` lines (frameworks print their own
lines too); ``bench enrich`` reads them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

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
from engagement_platform.streaming.pending import PendingBuffer

REPORT_PREFIX = "@peer "
PROGRESS_EVERY = 0.5  # seconds between progress lines

Output = tuple[bytes, bytes]  # (value, key) of an engagement_enriched record


@dataclass(frozen=True)
class PeerOptions:
    bootstrap: str
    group: str
    events_topic: str
    content_topic: str
    output_topic: str
    partitions: int
    stop_after: int  # events; 0: run until stopped
    pending_timeout: float
    producer_config: dict[str, Any]  # librdkafka names, as ours produces (kafka_io.producer_config)
    workdir: str  # the framework's local state directory


def parse_args(argv: list[str] | None = None, description: str = "") -> PeerOptions:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--group", required=True, help="consumer group (Faust: the app id)")
    p.add_argument("--events-topic", required=True)
    p.add_argument("--content-topic", required=True)
    p.add_argument("--output-topic", required=True)
    p.add_argument("--partitions", type=int, default=3, help="partitions of the input topics")
    p.add_argument("--stop-after", type=int, default=0, help="stop once this many events were handled")
    p.add_argument("--pending-timeout", type=float, default=60.0)
    p.add_argument("--producer-config", type=orjson.loads, default={}, help="JSON object, librdkafka names")
    p.add_argument("--workdir", default=None, help="local state directory (default: a new temporary one)")
    a = p.parse_args(argv)
    return PeerOptions(**{**vars(a), "workdir": a.workdir or tempfile.mkdtemp(prefix=f"{a.group}-")})


def report(**fields: Any) -> None:
    sys.stdout.write(REPORT_PREFIX + orjson.dumps(fields).decode() + "\n")
    sys.stdout.flush()


@dataclass
class Join:
    """Events joined with ``cache`` (any mapping: Faust's table, a dict), counted, and the
    events that wait for their content."""

    cache: MutableMapping[str, Content]
    stop_after: int = 0
    pending_timeout: float = 60.0
    pending: PendingBuffer = field(default_factory=PendingBuffer)
    processed: int = 0  # events consumed, all outcomes
    emitted: int = 0
    invalid: int = 0
    first_event_at: float | None = None  # monotonic
    _reported_at: float = 0.0

    def event(self, value: bytes | None, partition: int, offset: int) -> list[Output]:
        """Records to produce for this event (none while it waits), expired ones included."""
        now = time.monotonic()
        if self.first_event_at is None:
            self.first_event_at = now
        self.processed += 1
        out: list[Output] = []
        try:
            joined = process_event(value, self.cache, now_iso_ms())  # type: ignore[arg-type]  # None: skipped
        except InvalidRecord:
            self.invalid += 1
        else:
            if type(joined) is tuple:
                out.append(joined)  # type: ignore[arg-type]  # type() is tuple
            elif joined is not None:
                self.pending.add(partition, offset, joined, now)  # type: ignore[arg-type]  # an Event here
        self.emitted += len(out)
        if self.pending:
            out += self.expired(now)
        if now - self._reported_at >= PROGRESS_EVERY:
            self._reported_at = now
            report(processed=self.processed)
        return out

    def content(self, key: bytes | None, value: bytes | None) -> list[Output]:
        """Apply a ``content.flat`` record: upserts replace and release the events waiting for
        them, tombstones and ``__deleted`` rows remove."""
        try:
            change = parse_content(key, value)
        except InvalidRecord:
            self.invalid += 1
            return []
        if type(change) is ContentDeleted:
            self.cache.pop(change.id, None)
            return []
        content: Content = change  # type: ignore[assignment]  # not ContentDeleted
        self.cache[content.id] = content
        out = self._outputs(self.pending.pop_content(content.id), content)
        self.emitted += len(out)
        return out

    def expired(self, now: float) -> list[Output]:
        """Events that waited too long, flagged ``content_missing``."""
        out = self._outputs(self.pending.pop_expired(now - self.pending_timeout), None)
        self.emitted += len(out)
        return out

    @staticmethod
    def _outputs(events: list[Event], content: Content | None) -> list[Output]:
        stamp = now_iso_ms()
        return [
            (enrich_bytes(e, content, stamp), content.key if content else e.content_id.encode())
            for e in events
        ]

    @property
    def done(self) -> bool:
        return 0 < self.stop_after <= self.processed and not self.pending

    def result(self, end: float) -> None:
        """The last line: what was done, and the seconds from the first event to ``end``."""
        seconds = end - self.first_event_at if self.first_event_at is not None else 0.0
        report(processed=self.processed, emitted=self.emitted, invalid=self.invalid, seconds=seconds)
