"""The content rows enrichment joins with, as ``content.flat`` says they are now.

The cache is rebuilt from the compacted topic read from its beginning (no group, no
commits), so it needs no storage of its own: upserts replace, tombstones and ``__deleted``
rows remove. Events must not be joined before the cache has *caught up* (every partition
read to the end it had when loading began), else a restart would park every event.
End-of-partition markers (``enable.partition.eof``) say when a partition got there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Message

from engagement_platform.streaming.enrich import Content, ContentDeleted, InvalidRecord, parse_content


@dataclass
class Applied:
    """What one batch of content messages did."""

    records: int = 0  # messages that carried a record (valid or not)
    upserts: list[Content] = field(default_factory=list)  # in topic order; events may wait for them
    invalid: list[tuple[Message, str]] = field(default_factory=list)  # (message, reason) for the DLQ
    errors: list[KafkaError] = field(default_factory=list)  # client errors other than end-of-partition


class ContentCache:
    """Content id -> :class:`Content`; ``items`` is the dict the enrichment hot path reads."""

    def __init__(self) -> None:
        self.items: dict[str, Content] = {}
        self._partitions = 0
        self._behind: set[int] = set()

    def __len__(self) -> int:
        return len(self.items)

    def get(self, content_id: str) -> Content | None:
        return self.items.get(content_id)

    def expect(self, partitions: Iterable[int]) -> None:
        """Loading starts: the cache has caught up once each of ``partitions`` reported its end."""
        self._behind = set(partitions)
        self._partitions = len(self._behind)

    @property
    def caught_up(self) -> bool:
        return not self._behind

    @property
    def partitions_at_end(self) -> int:
        return self._partitions - len(self._behind)

    def apply(self, msgs: Sequence[Message]) -> Applied:
        """Apply a batch of content messages in order; invalid records are returned, not raised."""
        out = Applied()
        items = self.items
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._behind.discard(m.partition())
                else:
                    out.errors.append(err)
                continue
            out.records += 1
            try:
                change = parse_content(m.key(), m.value())
            except InvalidRecord as exc:
                out.invalid.append((m, exc.reason))
                continue
            if type(change) is ContentDeleted:
                items.pop(change.id, None)
            else:
                items[change.id] = change  # type: ignore[assignment]  # not ContentDeleted: a Content
                out.upserts.append(change)  # type: ignore[arg-type]  # a Content, as above
        return out
