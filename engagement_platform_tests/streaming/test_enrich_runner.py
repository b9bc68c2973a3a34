"""The enrichment consumer as a real process against the session stack's broker.

Synthetic Debezium flat records go straight into the flat topics. Each test has its own
topics and group, so tests cannot see each other's records or offsets. (The pieces it is
made of are unit-tested without a broker: test_content_cache, test_pending, test_offsets,
test_dlq.)
"""

from __future__ import annotations

import base64
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from confluent_kafka import Message, Producer

from engagement_platform.bench.data import flat_content, synthetic
from engagement_platform.domain import Content
from engagement_platform.streaming import kafka_io, topics
from engagement_platform_tests import harness
from engagement_platform_tests.harness import Child, StackHandle

PARTITIONS = 3


class Topics:
    def __init__(self, handle: StackHandle) -> None:
        tag = uuid.uuid4().hex[:8]
        self.bootstrap = handle.settings.kafka_bootstrap_servers
        self.events = f"t-{tag}.engagement_events.flat"
        self.content = f"t-{tag}.content.flat"
        self.output = f"t-{tag}.engagement_enriched"
        self.dlq = f"t-{tag}.engagement_enriched.dlq"
        self.group = f"t-{tag}-enrich"
        topics.ensure_topics(
            self.bootstrap,
            [topics.TopicSpec(t, PARTITIONS) for t in (self.events, self.content, self.output, self.dlq)],
            bounds=topics.settings_bounds(handle.settings),
        )
        self.producer = Producer(
            {"bootstrap.servers": self.bootstrap, "linger.ms": 5, "enable.idempotence": True}
        )
        # event id -> (partition, offset) as acknowledged by the broker
        self.written: dict[int, tuple[int, int]] = {}

    def produce(self, topic: str, records: Any, ids: list[int] | None = None) -> None:
        if ids is None:
            harness.produce_records(self.producer, topic, records, on_delivery=self._ok)
            return
        for (key, value), event_id in zip(records, ids, strict=True):
            kafka_io.produce(
                self.producer, topic, value, key, on_delivery=lambda e, m, x=event_id: self._written(e, m, x)
            )
        assert self.producer.flush(30) == 0

    def _ok(self, err: Any, _msg: Any) -> None:
        assert err is None, err

    def _written(self, err: Any, msg: Any, event_id: int) -> None:
        self._ok(err, msg)
        self.written[event_id] = (msg.partition(), msg.offset())

    def args(self, *extra: str) -> list[str]:
        return [
            "consume",
            "enrich",
            "--group",
            self.group,
            "--events-topic",
            self.events,
            "--content-topic",
            self.content,
            "--output-topic",
            self.output,
            "--dlq-topic",
            self.dlq,
            "--summary-every",
            "1",
            "--commit-interval",
            "0.3",
            *extra,
        ]


@pytest.fixture
def procs(spawn: Callable[..., Child]) -> Callable[..., Child]:
    """``procs(t, *flags, name=...)`` starts ``consume enrich`` on the topics of ``t``."""
    return lambda t, *extra, name="enrich": spawn(*t.args(*extra), name=name)


def _event_id(value: dict[str, Any]) -> Any:
    return value.get("event_id")


def read_topic(
    bootstrap: str, topic: str, *, until: int, timeout: float = 60, key: Callable[[Any], Any] = _event_id
) -> list[Any]:
    """Every message of ``topic`` as (key, value dict, headers), once ``until`` distinct ``key(value)``
    (and a short while after: late duplicates are part of the answer)."""
    distinct: set[Any] = set()
    done = 0

    def enough(messages: list[Message]) -> bool:
        nonlocal done
        distinct.update(key(orjson.loads(m.value())) for m in messages[done:])
        done = len(messages)
        return len(distinct) >= until

    messages = harness.read_topic(bootstrap, topic, until=enough, timeout=timeout, settle=0.3)
    return [(m.key(), orjson.loads(m.value()), m.headers()) for m in messages]


Records = list[tuple[bytes, bytes]]


def dataset(n_content: int, n_events: int, first_id: int = 1) -> tuple[list[Content], Records]:
    contents, events = synthetic(n_content, n_events, seed=first_id, first_id=first_id)
    return contents, list(events)


def ids_of(records: list[tuple[bytes, bytes]]) -> list[int]:
    return [orjson.loads(v)["id"] for _k, v in records]


# --- integration ----------------------------------------------------------------------


def test_events_before_their_content_are_emitted_when_it_arrives(
    stack: StackHandle, procs: Callable[..., Child]
) -> None:
    t = Topics(stack)
    contents, records = dataset(6, 600, first_id=1)
    early, late = contents[:3], contents[3:]
    late_ids = {str(c.id) for c in late}
    t.produce(t.content, [flat_content(c) for c in early])
    t.produce(t.events, records, ids_of(records))
    expected = {orjson.loads(v)["id"]: orjson.loads(v) for _k, v in records}
    known = [i for i, v in expected.items() if v["content_id"] not in late_ids]

    proc = procs(t, "--pending-timeout", "120")
    read_topic(t.bootstrap, t.output, until=len(known))
    proc.wait_for_log(r"pending=[1-9]")  # the others are waiting, not emitted with nulls
    t.produce(t.content, [flat_content(c) for c in late])
    out = read_topic(t.bootstrap, t.output, until=len(expected))
    assert proc.stop() == 0

    by_id = {v["event_id"]: (k, v) for k, v, _h in out}
    assert set(by_id) == set(expected)
    by_content = {str(c.id): c for c in contents}
    for event_id, (key, v) in by_id.items():
        src = expected[event_id]
        c = by_content[src["content_id"]]
        assert key == src["content_id"].encode()
        assert v["content_missing"] is False
        assert (v["title"], v["slug"], v["content_type"]) == (c.title, c.slug, c.content_type)
        assert v["length_seconds"] == c.length_seconds
        assert v["event_ts"] == src["event_ts"][:23] + "Z"
        assert v["duration_ms"] == src["duration_ms"]
        if src["duration_ms"] is None:
            assert v["engagement_seconds"] is None and v["engagement_pct"] is None
        else:
            seconds = src["duration_ms"] / 1000
            assert v["engagement_seconds"] == seconds
            want = round(100 * seconds / c.length_seconds, 2) if c.length_seconds else None
            assert v["engagement_pct"] == want
    assert re.search(r"released=[1-9]", proc.output())


def test_content_that_never_arrives_times_out_flagged(
    stack: StackHandle, procs: Callable[..., Child]
) -> None:
    t = Topics(stack)
    contents, records = dataset(2, 200, first_id=10_000)
    t.produce(t.content, [flat_content(contents[0])])
    t.produce(t.events, records, ids_of(records))
    proc = procs(t, "--pending-timeout", "1.5")
    out = read_topic(t.bootstrap, t.output, until=len(records))
    assert proc.stop() == 0
    missing_id = str(contents[1].id)
    assert len({v["event_id"] for _k, v, _h in out}) == len(records)
    for _k, v, _h in out:
        assert v["content_missing"] is (v["content_id"] == missing_id)
        if v["content_missing"]:
            assert v["title"] is None and v["engagement_pct"] is None
    assert re.search(r"content_missing=[1-9]", proc.output())


def test_poison_messages_go_to_the_dlq_and_the_stream_goes_on(
    stack: StackHandle, procs: Callable[..., Child]
) -> None:
    t = Topics(stack)
    contents, records = dataset(3, 300, first_id=20_000)
    t.produce(t.content, [flat_content(c) for c in contents])
    good = dict(orjson.loads(records[0][1]))
    key = records[0][0]

    def variant(**changes: Any) -> bytes:
        value = {**good, **changes}
        return orjson.dumps({k: v for k, v in value.items() if v is not None or k not in changes})

    missing_id = dict(good)
    del missing_id["id"]
    poison: list[tuple[bytes, str]] = [
        (b"{this is not json", "bad_json"),
        (b"\xff\xfe\xfa not utf-8", "bad_json"),
        (b"[1, 2, 3]", "wrong_type"),
        (orjson.dumps(missing_id), "missing_field"),
        (variant(id="12"), "wrong_type"),
        (variant(duration_ms="long"), "wrong_type"),
        (variant(content_id=7), "wrong_type"),
        (variant(event_type="Teleport"), "unknown_event_type"),
        (variant(duration_ms=-20), "negative_duration"),
        (variant(event_ts="yesterday at noon"), "bad_timestamp"),
    ]
    # poison spread through the stream, not just at its start
    mixed: list[tuple[bytes, bytes]] = []
    for i, (k, v) in enumerate(records[1:]):
        mixed.append((k, v))
        if i % 30 == 0 and poison[i // 30 :]:
            mixed.append((key, poison[i // 30][0]))
    t.produce(t.events, mixed)
    bad_content = orjson.dumps({"id": "x", "content_type": "radio"})
    t.produce(t.content, [(b'{"id":"x"}', bad_content)])

    proc = procs(t)
    out = read_topic(t.bootstrap, t.output, until=len(records) - 1)
    dlq = read_topic(t.bootstrap, t.dlq, until=len(poison) + 1, key=lambda v: (v["topic"], v["offset"]))
    assert proc.stop() == 0

    assert {v["event_id"] for _k, v, _h in out} == set(ids_of(records[1:]))
    by_original: dict[str, dict[str, Any]] = {}
    for dkey, v, headers in dlq:
        text = v["original"]
        original = base64.b64decode(text) if v["original_encoding"] == "base64" else text.encode()
        by_original[original] = v
        h = dict(headers or [])
        assert h["dlq.reason"].decode() == v["reason"]
        assert h["dlq.topic"].decode() == v["topic"]
        assert int(h["dlq.offset"]) == v["offset"]
        if v["topic"] == t.events:
            assert dkey == key  # the original key travels with it
    assert len(dlq) == len(poison) + 1
    for raw, code in poison:
        assert by_original[raw]["reason"].startswith(code + ":"), (raw, by_original[raw]["reason"])
        assert by_original[raw]["topic"] == t.events
    assert by_original[bad_content]["topic"] == t.content
    assert by_original[bad_content]["reason"].startswith("unknown_content_type")


def test_new_types_and_columns_while_events_flow_change_nothing_but_the_output(
    stack: StackHandle, procs: Callable[..., Child]
) -> None:
    """Issue 18: a new event type and a column added to both source tables mid-stream reach
    the output (the column verbatim, under its own name) with no DLQ record and no restart."""
    t = Topics(stack)
    contents, records = dataset(4, 400, first_id=40_000)
    first, second = records[:200], records[200:]
    t.produce(t.content, [flat_content(c) for c in contents])
    t.produce(t.events, first, ids_of(first))
    proc = procs(t)
    read_topic(t.bootstrap, t.output, until=len(first))

    # ALTER TABLE ... ADD COLUMN on both tables, and a type the CHECK now allows
    t.produce(
        t.content,
        [(k, orjson.dumps({**orjson.loads(v), "language": "en"})) for k, v in map(flat_content, contents)],
    )
    changed = []
    for i, (k, v) in enumerate(second):
        row = {**orjson.loads(v), "app_version": f"6.{i % 3}.0"}
        if i % 4 == 0:
            row["event_type"] = "share"
        changed.append((k, orjson.dumps(row)))
    t.produce(t.events, changed, ids_of(changed))
    out = read_topic(t.bootstrap, t.output, until=len(records))
    dlq = harness.read_topic(t.bootstrap, t.dlq, until=lambda _m: True, timeout=30, settle=0.5)
    assert proc.stop() == 0

    assert dlq == []
    by_id = {v["event_id"]: v for _k, v, _h in out}
    assert set(by_id) == set(ids_of(records))
    for _k, v in changed:
        src, got = orjson.loads(v), by_id[orjson.loads(v)["id"]]
        assert got["app_version"] == src["app_version"] and got["event_type"] == src["event_type"]
        assert got["content_missing"] is False and "language" not in got and "raw_payload" not in got
    assert all("app_version" not in by_id[i] for i in ids_of(first))
    assert sum(v["event_type"] == "share" for v in by_id.values()) == 50


def test_kill_9_mid_stream_then_restart_loses_nothing(
    stack: StackHandle, procs: Callable[..., Child]
) -> None:
    t = Topics(stack)
    contents, records = dataset(50, 20_000, first_id=100_000)
    t.produce(t.content, [flat_content(c) for c in contents])
    all_ids = set(ids_of(records))

    # the stream keeps flowing while the consumer dies and comes back
    def feed() -> None:
        for start in range(0, len(records), 1000):
            t.produce(t.events, records[start : start + 1000])
            time.sleep(0.15)

    feeder = threading.Thread(target=feed)
    first = procs(t, "--batch-size", "500", name="first")
    first.wait_for_log(r"assigned \[\d")
    feeder.start()
    read_topic(t.bootstrap, t.output, until=4_000)
    assert feeder.is_alive(), "the stream ended before the consumer could be killed in its middle"
    first.kill()  # SIGKILL: no flush, no commit, no goodbye
    second = procs(t, "--batch-size", "500", name="second")
    feeder.join(60)
    out = read_topic(t.bootstrap, t.output, until=len(all_ids), timeout=90)
    assert second.stop() == 0

    seen = Counter(v["event_id"] for _k, v, _h in out)
    assert set(seen) == all_ids, f"missing {len(all_ids - set(seen))} event ids"
    assert all(v["content_missing"] is False for _k, v, _h in out)
    # replay after the kill may duplicate (sinks dedupe on event_id); it must never lose
    print(f"duplicates after kill -9: {sum(seen.values()) - len(seen)}")


def test_two_instances_in_one_group_share_the_partitions(
    stack: StackHandle, procs: Callable[..., Child]
) -> None:
    t = Topics(stack)
    contents, records = dataset(60, 10_000, first_id=200_000)
    t.produce(t.content, [flat_content(c) for c in contents])
    a = procs(t, name="a")
    a.wait_for_log(r"assigned \[\d")
    b = procs(t, name="b")
    b.wait_for_log(r"assigned \[\d", timeout=45)
    t.produce(t.events, records)
    out = read_topic(t.bootstrap, t.output, until=len(records))
    assert a.stop() == 0 and b.stop() == 0

    seen = Counter(v["event_id"] for _k, v, _h in out)
    assert set(seen) == set(ids_of(records))
    processed = []
    for proc in (a, b):
        counts = re.findall(r"processed=([\d,]+)", proc.output())
        processed.append(int(counts[-1].replace(",", "")) if counts else 0)
    assert all(n > 0 for n in processed), processed  # both did part of the work
    print(f"processed per instance: {processed}, duplicates: {sum(seen.values()) - len(seen)}")


def test_sigterm_commits_up_to_the_first_waiting_event_and_exits_zero(
    stack: StackHandle, procs: Callable[..., Child]
) -> None:
    t = Topics(stack)
    contents, records = dataset(4, 2_000, first_id=300_000)
    held_back = contents[0]
    t.produce(t.content, [flat_content(c) for c in contents[1:]])
    t.produce(t.events, records, ids_of(records))
    values = [orjson.loads(v) for _k, v in records]
    held_ids = [v["id"] for v in values if v["content_id"] == str(held_back.id)]
    assert held_ids
    proc = procs(t, "--pending-timeout", "300")
    read_topic(t.bootstrap, t.output, until=len(records) - len(held_ids))
    proc.wait_for_log(rf"pending={len(held_ids)}\b")
    assert proc.stop() == 0
    assert "stop requested (SIGTERM)" in proc.output()

    # every partition is committed to its end, except where an event still waits: there the
    # commit stops at the first waiting event, so the next run reads it again
    ends: dict[int, int] = {}
    for partition, offset in t.written.values():
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    first_waiting: dict[int, int] = {}
    for event_id in held_ids:
        partition, offset = t.written[event_id]
        first_waiting[partition] = min(first_waiting.get(partition, offset), offset)
    offsets = harness.committed_offsets(t.bootstrap, t.group, t.events)
    for partition, end in ends.items():
        assert offsets[partition] == first_waiting.get(partition, end), (partition, offsets, first_waiting)

    # the content shows up; a restarted consumer emits the held-back events, enriched
    t.produce(t.content, [flat_content(held_back)])
    again = procs(t, name="again")
    out = read_topic(t.bootstrap, t.output, until=len(records))
    assert again.stop() == 0
    held = [v for _k, v, _h in out if v["event_id"] in set(held_ids)]
    assert {v["event_id"] for v in held} == set(held_ids)
    assert all(v["content_missing"] is False and v["title"] == held_back.title for v in held)
