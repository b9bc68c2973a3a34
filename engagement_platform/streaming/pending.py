"""Events waiting for their content, and the back-pressure that bounds how many may wait.

An event whose content is not cached yet is neither dropped nor enriched with nulls: it
waits here until its content arrives or its time is up. The buffer also answers the offset
question "what is the lowest offset still waiting in this partition?", which is where a
commit must stop.
"""

from __future__ import annotations

from typing import Literal

from engagement_platform.streaming.enrich import Event


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

    def _remove_indexed(self, key: tuple[int, int]) -> Event:
        """Remove one entry that is still in the content index."""
        event = self._remove(key)
        keys = self._by_content[event.content_id]
        del keys[key]
        if not keys:
            del self._by_content[event.content_id]
        return event

    def waiting_for(self, content_id: str) -> bool:
        return content_id in self._by_content

    def pop_content(self, content_id: str) -> list[Event]:
        keys = self._by_content.pop(content_id, None)
        return [self._remove(k) for k in keys] if keys else []

    def pop_expired(self, deadline: float) -> list[Event]:
        """Events that arrived before ``deadline``, oldest first."""
        expired = []
        for key, (_event, arrived) in self._entries.items():
            if arrived > deadline:
                break
            expired.append(key)
        return [self._remove_indexed(key) for key in expired]

    def drop_partitions(self, partitions: set[int]) -> int:
        """Forget events of partitions this process no longer owns (their next owner rereads them)."""
        keys = [k for k in self._entries if k[0] in partitions]
        for key in keys:
            self._remove_indexed(key)
        return len(keys)

    def lowest_offset(self, partition: int) -> int | None:
        offsets = self._by_partition.get(partition)
        return next(iter(offsets)) if offsets else None


class BackPressure:
    """Pause consumption while ``limit`` events wait; resume once the buffer is below
    ``resume_at`` of it, so that a buffer hovering at the limit does not flap every batch."""

    def __init__(self, limit: int, resume_at: float = 0.8) -> None:
        self.limit = limit
        self.resume_below = limit * resume_at
        self.paused = False

    def update(self, size: int) -> Literal["pause", "resume"] | None:
        """What to do with the assignment now. "pause" repeats while full: partitions assigned
        in the meantime must be paused too."""
        if size >= self.limit:
            self.paused = True
            return "pause"
        if self.paused and size < self.resume_below:
            self.paused = False
            return "resume"
        return None
