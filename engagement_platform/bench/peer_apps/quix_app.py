"""Our join written as a Quix Streams app (``quixstreams`` 3.x), a peer in ``bench enrich``.

Quix has no global table: its state is per message key and per partition, and events are
keyed differently from content, so a state join (``join_asof``) would first repartition
every event by content id through another topic. What a Quix user writes for a small,
compacted dimension topic instead is the GlobalKTable pattern by hand: read the content
topic from its beginning to its end into a dict before ``app.run()`` (as ours loads its
cache), then keep that dict current with a second dataframe on the same topic, which skips
the records the load already applied (on a fresh group it starts from the beginning too).
Each event is joined in the events dataframe; both dataframes produce our record
(:mod:`.common`) to the output topic, keyed by content id.

The producer is a librdkafka one, configured exactly as ours (``--producer-config``).
Run in ``.venv-peers``: ``python -m engagement_platform.bench.peer_apps.quix_app --help``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from quixstreams import Application, message_context
from quixstreams.models.serializers import Serializer

from engagement_platform.bench.peer_apps import common
from engagement_platform.kafka_config import client_config
from engagement_platform.streaming.enrich import Content

log = logging.getLogger("engagement_platform.bench.peer_apps.quix_app")


class _RecordValue(Serializer):
    """The dataframes carry ``(value, key)`` pairs; the value is already our record's bytes."""

    def __call__(self, value: common.Output, ctx: Any) -> bytes:
        return value[0]


def _key(value: common.Output) -> bytes:
    return value[1]


def load_content(opts: common.PeerOptions, join: common.Join) -> dict[int, int]:
    """Read the content topic to its end into ``join.cache``; returns, per partition, the
    offset the load stopped before."""
    consumer = Consumer(
        client_config(
            opts.bootstrap,
            extra={
                "group.id": f"{opts.group}.content-load",  # assigned, never committed
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            },
        )
    )
    try:
        parts = sorted(
            consumer.list_topics(opts.content_topic, timeout=30).topics[opts.content_topic].partitions
        )
        consumer.assign([TopicPartition(opts.content_topic, p, OFFSET_BEGINNING) for p in parts])
        loaded = dict.fromkeys(parts, 0)
        behind = set(parts)
        while behind:
            for m in consumer.consume(10_000, 1.0):
                err = m.error()
                if err is None:
                    join.content(m.key(), m.value())  # nothing waits yet: releases nothing
                    loaded[m.partition()] = m.offset() + 1
                elif err.code() == KafkaError._PARTITION_EOF:
                    behind.discard(m.partition())
                else:
                    log.warning("content load: %s", err)
    finally:
        consumer.close()
    return loaded


def build(opts: common.PeerOptions) -> tuple[Application, common.Join]:
    cache: dict[str, Content] = {}
    join = common.Join(cache, opts.stop_after, opts.pending_timeout)
    loaded = load_content(opts, join)
    app = Application(
        broker_address=opts.bootstrap,
        consumer_group=opts.group,
        auto_offset_reset="earliest",
        commit_interval=1.0,  # ours: --commit-interval 1
        producer_extra_config=opts.producer_config,
        state_dir=opts.workdir,
        use_changelog_topics=False,  # no state: the content dict is rebuilt at every start
        loglevel="WARNING",
    )
    raw = {"key_deserializer": "bytes", "value_deserializer": "bytes"}
    output = app.topic(opts.output_topic, key_serializer="bytes", value_serializer=_RecordValue())

    def on_content(value: bytes | None, key: bytes | None, _ts: int, _headers: Any) -> list[common.Output]:
        ctx = message_context()
        if ctx.offset < loaded.get(ctx.partition, 0):
            return []  # applied by the load
        return finish(join.content(key, value))

    def on_event(value: bytes | None) -> list[common.Output]:
        ctx = message_context()
        return finish(join.event(value, ctx.partition, ctx.offset))

    def finish(records: list[common.Output]) -> list[common.Output]:
        if join.done:
            app.stop()  # after this message: the checkpoint (flush, then commit) runs on exit
        return records

    app.dataframe(app.topic(opts.content_topic, **raw)).apply(
        on_content, expand=True, metadata=True
    ).to_topic(output, key=_key)
    app.dataframe(app.topic(opts.events_topic, **raw)).apply(on_event, expand=True).to_topic(output, key=_key)
    return app, join


def main(argv: list[str] | None = None) -> None:
    opts = common.parse_args(argv, "Our enrichment join as a Quix Streams app (a bench enrich peer).")
    app, join = build(opts)
    app.run()
    join.result(time.monotonic())


if __name__ == "__main__":
    main()
