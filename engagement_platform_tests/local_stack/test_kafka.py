"""The local broker: explicit topics, keyed produce, consumer groups with manual commits."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

MESSAGES = 10_000


def consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )


def drain(c: Consumer, limit: int, *, idle_polls: int = 10) -> list:
    out, idle = [], 0
    while len(out) < limit and idle < idle_polls:
        batch = c.consume(num_messages=1000, timeout=1.0)
        idle = idle + 1 if not batch else 0
        out.extend(m for m in batch if m.error() is None)
    return out


def test_keyed_messages_round_trip_with_committed_resume(stack) -> None:
    bootstrap = stack.settings.kafka_bootstrap_servers
    topic = f"test.roundtrip.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 3

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i in range(MESSAGES):
        producer.produce(topic, key=f"k{i % 97}".encode(), value=str(i).encode())
    assert producer.flush(30) == 0

    group = f"test-group-{uuid.uuid4().hex[:8]}"
    c1 = consumer(bootstrap, group)
    c1.subscribe([topic])
    first = drain(c1, 4_000, idle_polls=30)[:4_000]
    # commit exactly what we processed, per partition: the next offset after the last seen
    last: dict[int, int] = {}
    for m in first:
        last[m.partition()] = max(last.get(m.partition(), -1), m.offset())
    c1.commit(offsets=[TopicPartition(topic, p, o + 1) for p, o in last.items()], asynchronous=False)
    c1.close()

    c2 = consumer(bootstrap, group)
    c2.subscribe([topic])
    rest = drain(c2, MESSAGES, idle_polls=10)
    c2.close()

    seen_first = {(m.partition(), m.offset()) for m in first}
    seen_rest = {(m.partition(), m.offset()) for m in rest}
    # the second consumer resumes right after the commit: nothing committed comes back,
    # nothing after it is missing
    assert seen_first.isdisjoint(seen_rest)
    assert all(off > last.get(p, -1) for p, off in seen_rest)
    assert len(first) + len(rest) == MESSAGES
    assert {int(m.value()) for m in first + rest} == set(range(MESSAGES))
    # a key always lands on the same partition
    by_key: dict[bytes, set[int]] = {}
    for m in first + rest:
        by_key.setdefault(m.key(), set()).add(m.partition())
    assert all(len(parts) == 1 for parts in by_key.values())


def test_cluster_ids_never_start_with_a_dash_so_the_storage_tool_takes_them() -> None:
    import base64

    from engagement_platform.local_stack.kafka import new_cluster_id

    ids = [new_cluster_id() for _ in range(10_000)]  # about 156 would start with '-' by chance
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
