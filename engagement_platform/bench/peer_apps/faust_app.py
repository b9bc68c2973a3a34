"""Our join written as a Faust app (``faust-streaming``): the seed's alternative, a peer in
``bench enrich``.

A Faust user's shape: one agent reads ``content.flat`` into a memory ``GlobalTable`` keyed
by content id (upserts replace, tombstones and ``__deleted`` rows delete; the table keeps
:class:`~engagement_platform.streaming.enrich.Content` objects, the same our cache holds,
through a codec for its changelog), another joins each event of ``engagement_events.flat``
with it and sends our record (:mod:`.common`) to the output topic. A GlobalTable because the
events are keyed differently from the content: with a plain (sharded) table, several
workers would need the events repartitioned by content id first.

Unlike ours, Faust does not read the content topic to its end before the first event: both
agents start together, so early events may find no content yet. They wait (:mod:`.common`)
and leave when it comes, joined with the first version of it read, where ours would use
the latest one in the topic. (Waiting in the agent instead would stall the shared fetch
loop, and the content with it.) After a restart the table is recovered from its changelog
before the agents start.

Faust runs on aiokafka, not librdkafka: the producer gets ours' settings where Faust exposes
them (acks=all, linger, lz4, batch size; no idempotence outside transactions). Run in
``.venv-peers``: ``python -m engagement_platform.bench.peer_apps.faust_app --help``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
import orjson
from faust.serializers import codecs

from engagement_platform.bench.peer_apps import common
from engagement_platform.streaming.enrich import Content

CONTENT_CODEC = "ep-content"


class ContentCodec(codecs.Codec):
    """The table's changelog values: a :class:`Content` as JSON, and back."""

    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps({name: getattr(obj, name) for name in Content.__slots__ if name != "key"})

    def _loads(self, s: bytes) -> Any:
        return Content(**orjson.loads(s))


def faust_settings(opts: common.PeerOptions) -> dict[str, Any]:
    """Faust's names for ours' producer settings, its web server off, its state in ``workdir``."""
    p = opts.producer_config
    return {
        "broker": f"kafka://{opts.bootstrap}",
        "store": "memory://",
        "web_enabled": False,
        "datadir": opts.workdir,
        "topic_partitions": opts.partitions,
        "topic_replication_factor": 1,
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_interval": 1.0,  # ours: --commit-interval 1
        "producer_acks": -1 if str(p.get("acks", "all")) in ("all", "-1") else int(p["acks"]),
        "producer_linger": float(p.get("linger.ms", 5)) / 1000,
        "producer_compression_type": p.get("compression.type"),
        "producer_max_batch_size": int(p.get("batch.size", 1_000_000)),
    }


def build(opts: common.PeerOptions, on_done: Any) -> tuple[faust.App, common.Join]:
    """The app and its join; ``on_done(app, join)`` is awaited once ``--stop-after`` is reached."""
    codecs.register(CONTENT_CODEC, ContentCodec())
    app = faust.App(opts.group, **faust_settings(opts))
    table = app.GlobalTable("content", default=None, partitions=opts.partitions)
    table.value_serializer = CONTENT_CODEC  # before its changelog topic is made
    join = common.Join(table, opts.stop_after, opts.pending_timeout)
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    output = app.topic(opts.output_topic, **raw)
    finishing: list[asyncio.Task[None]] = []

    async def send(records: list[common.Output]) -> None:
        for value, key in records:
            await output.send(key=key, value=value)
        if join.done and not finishing:
            finishing.append(asyncio.ensure_future(on_done(app, join)))

    @app.agent(app.topic(opts.content_topic, **raw))
    async def content(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await send(join.content(event.key, event.value))

    @app.agent(app.topic(opts.events_topic, **raw))
    async def enrich(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await send(join.event(event.value, event.message.partition, event.message.offset))

    @app.timer(1.0)
    async def expire() -> None:
        if join.pending:
            await send(join.expired(time.monotonic()))

    return app, join


def main(argv: list[str] | None = None) -> None:
    opts = common.parse_args(argv, "Our enrichment join as a Faust app (a bench enrich peer).")
    worker: faust.Worker | None = None

    async def done(app: faust.App, join: common.Join) -> None:
        await app.producer.flush()  # every record acknowledged
        await app.consumer.commit()
        join.result(time.monotonic())
        assert worker is not None
        await worker.stop()

    app, _join = build(opts, done)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    # The terminal spinner (always on at WARNING) sets the root logger to DEBUG so that it
    # spins on every record: aiokafka's debug lines would then cost ~10% of the CPU.
    worker.spinner = None
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
