"""The join the peer apps share, without a broker or a framework: content semantics as ours
(upserts replace, tombstones and ``__deleted`` remove), events that wait for their content,
timeouts, and when a bounded run is done."""

from __future__ import annotations

import random
import time

import orjson
import pytest

from engagement_platform.bench.data import enriched, flat_content, flat_event, make_contents
from engagement_platform.bench.peer_apps import common
from engagement_platform.source.simulator import EventGenerator
from engagement_platform.streaming.enrich import Content
from engagement_platform_tests.harness import by_event_id


@pytest.fixture
def rows() -> tuple[list, list[tuple[bytes, bytes]]]:
    contents = make_contents(2, random.Random(1))
    events = EventGenerator(contents, users=10, seed=1).batch(4, lambda: contents[0].publish_ts)
    return contents, [flat_event(i, e) for i, e in enumerate(events, start=1)]


def test_events_join_as_ours_and_wait_for_content_that_comes_later(rows) -> None:
    contents, events = rows
    join = common.Join({}, stop_after=len(events))
    out = [r for i, (_key, value) in enumerate(events) for r in join.event(value, 0, i)]
    assert out == [] and len(join.pending) == len(events) and not join.done
    for key, value in map(flat_content, contents):
        out += join.content(key, value)
    assert join.done and join.emitted == len(events)
    assert by_event_id([(k, v) for v, k in out]) == by_event_id(list(enriched(contents, events)))


def test_content_upserts_replace_and_tombstones_or_deleted_rows_remove(rows) -> None:
    contents, _ = rows
    join = common.Join({})
    key, value = flat_content(contents[0])
    join.content(key, value)
    assert isinstance(join.cache[str(contents[0].id)], Content)
    join.content(key, None)  # tombstone
    assert join.cache == {}
    join.content(key, value)
    deleted = orjson.loads(value) | {"__deleted": "true"}
    join.content(key, orjson.dumps(deleted))
    assert join.cache == {}
    join.content(key, b"not json")
    assert join.invalid == 1


def test_an_event_left_waiting_leaves_flagged_content_missing(rows) -> None:
    _, events = rows
    join = common.Join({}, pending_timeout=5.0)
    assert join.event(events[0][1], 0, 0) == []
    (value, key), *_ = join.expired(time.monotonic() + 10)
    record = orjson.loads(value)
    assert record["content_missing"] is True and key == record["content_id"].encode()
    assert join.emitted == 1 and not join.pending
    assert join.event(b"{", 0, 1) == [] and join.invalid == 1 and join.processed == 2
