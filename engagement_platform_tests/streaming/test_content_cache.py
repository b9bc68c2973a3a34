"""The content cache as a pure object: upserts, deletions, invalid rows, catch-up to the end."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from confluent_kafka import KafkaError, Message

from engagement_platform.bench.enrich import flat_content
from engagement_platform.domain import Content
from engagement_platform.streaming.content_cache import ContentCache

PUBLISHED = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)


def row(content_id: int, title: str = "A title") -> Content:
    return Content(content_id, f"slug-{content_id}", title, "podcast", 300, PUBLISHED)


def msg(key: bytes | None, value: bytes | None, partition: int = 0) -> Message:
    return Message(topic="content.flat", partition=partition, offset=0, key=key, value=value)


def upsert(c: Content, partition: int = 0) -> Message:
    return msg(*flat_content(c), partition=partition)


def eof(partition: int) -> Message:
    return Message(topic="content.flat", partition=partition, error=KafkaError(KafkaError._PARTITION_EOF))


def test_upserts_replace_and_are_reported_in_order() -> None:
    cache = ContentCache()
    applied = cache.apply([upsert(row(1, "old")), upsert(row(2)), upsert(row(1, "new"))])
    assert [c.title for c in applied.upserts] == ["old", "A title", "new"]
    assert (applied.records, len(cache)) == (3, 2)
    assert cache.get("1").title == "new"  # type: ignore[union-attr]
    assert cache.items["1"].key == b"1"


def test_tombstones_and_deleted_rows_remove() -> None:
    cache = ContentCache()
    cache.apply([upsert(row(1)), upsert(row(2)), upsert(row(3))])
    key2, value2 = flat_content(row(2))
    deleted = orjson.dumps({**orjson.loads(value2), "__deleted": "true", "__op": "d"})
    applied = cache.apply([msg(b'{"id":"1"}', None), msg(key2, deleted)])
    assert applied.upserts == [] and applied.invalid == []
    assert sorted(cache.items) == ["3"]
    cache.apply([msg(b'{"id":"nope"}', None)])  # deleting what is not there is fine
    assert sorted(cache.items) == ["3"]


def test_invalid_records_are_returned_for_the_dlq_and_change_nothing() -> None:
    cache = ContentCache()
    cache.apply([upsert(row(1))])
    radio = msg(b'{"id":"1"}', orjson.dumps({"id": "1", "content_type": "radio"}))
    garbage = msg(b'{"id":"1"}', b"{nope")
    applied = cache.apply([radio, garbage])
    assert applied.records == 2
    assert [(m is radio, reason.split(":")[0]) for m, reason in applied.invalid[:1]] == [
        (True, "unknown_content_type")
    ]
    assert applied.invalid[1][0] is garbage and applied.invalid[1][1].startswith("bad_json")
    assert cache.get("1").content_type == "podcast"  # type: ignore[union-attr]


def test_caught_up_once_every_partition_reported_its_end() -> None:
    cache = ContentCache()
    cache.expect([0, 1, 2])
    assert not cache.caught_up and cache.partitions_at_end == 0
    applied = cache.apply([upsert(row(1), 0), eof(0), upsert(row(2), 2)])
    assert (applied.records, cache.partitions_at_end, cache.caught_up) == (2, 1, False)
    other = Message(topic="content.flat", partition=1, error=KafkaError(KafkaError._TRANSPORT))
    assert cache.apply([other, eof(0)]).errors[0].code() == KafkaError._TRANSPORT
    assert not cache.caught_up
    cache.apply([eof(2), eof(1)])
    assert cache.caught_up and cache.partitions_at_end == 3
    cache.apply([eof(1)])  # markers after the catch-up (new content later) change nothing
    assert cache.caught_up
