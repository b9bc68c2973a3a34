"""The pending buffer and back-pressure, as pure objects: no broker."""

from __future__ import annotations

from engagement_platform.streaming.enrich import Event
from engagement_platform.streaming.pending import BackPressure, PendingBuffer


def _event(event_id: int, content_id: str) -> Event:
    return Event(event_id, content_id, None, "click", "2026-01-01T00:00:00.000Z", None, None, None)


def test_pending_buffer_tracks_lowest_offset_per_partition() -> None:
    buf = PendingBuffer()
    buf.add(0, 10, _event(1, "a"), now=1.0)
    buf.add(0, 12, _event(2, "b"), now=2.0)
    buf.add(1, 5, _event(3, "a"), now=3.0)
    assert (buf.lowest_offset(0), buf.lowest_offset(1), buf.lowest_offset(2)) == (10, 5, None)
    assert [e.event_id for e in buf.pop_content("a")] == [1, 3]
    assert (buf.lowest_offset(0), buf.lowest_offset(1), len(buf)) == (12, None, 1)
    buf.add(2, 7, _event(4, "c"), now=4.0)
    assert [e.event_id for e in buf.pop_expired(deadline=3.5)] == [2]
    assert not buf.waiting_for("b") and buf.waiting_for("c")
    assert buf.drop_partitions({2}) == 1
    assert len(buf) == 0 and not buf.waiting_for("c")


def test_expiry_is_oldest_first_and_keeps_the_other_indexes_right() -> None:
    buf = PendingBuffer()
    for i, (partition, offset, content) in enumerate([(0, 3, "a"), (1, 8, "a"), (0, 4, "b"), (1, 9, "b")]):
        buf.add(partition, offset, _event(i, content), now=float(i))
    assert [e.event_id for e in buf.pop_expired(deadline=1.0)] == [0, 1]
    assert not buf.waiting_for("a") and buf.pop_content("a") == []
    assert (buf.lowest_offset(0), buf.lowest_offset(1)) == (4, 9)
    assert buf.drop_partitions({0}) == 1
    assert [e.event_id for e in buf.pop_content("b")] == [3]
    assert len(buf) == 0 and buf.lowest_offset(1) is None


def test_back_pressure_pauses_at_the_limit_and_resumes_once_80_percent_drained() -> None:
    bp = BackPressure(limit=100)
    assert [bp.update(n) for n in (10, 99)] == [None, None]
    assert bp.update(100) == "pause" and bp.paused
    # while full it says pause again: partitions assigned in the meantime must pause too
    assert bp.update(120) == "pause"
    assert [bp.update(n) for n in (99, 81, 80)] == [None, None, None]
    assert bp.paused
    assert bp.update(79) == "resume" and not bp.paused
    assert bp.update(50) is None
