"""What a consumer that holds records back may commit, per partition of the topic it reads.

Committing offset N tells the group "everything before N is done". For a consumer that
parks some records (an event waiting for its content), done is not "consumed": a partition
may be committed up to its lowest offset still waiting, and only when nothing waits there,
to one past the last record consumed. A crash then replays the waiting records, never
skips them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from confluent_kafka import Message


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
                if len(seen) >= everything:
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
