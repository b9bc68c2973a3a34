"""Benchmark the enrichment consumer against the original design and against the transport ceiling.

Variants, each ``--runs`` times side by side: ours (the ``consume enrich`` code path), the
original design's baseline, the transport ceiling, ``json_relay`` and the peers (Faust, Quix
Streams). How each is measured, and the figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer

from engagement_platform.argtypes import UsageError, positive_int
from engagement_platform.bench import peers, report, transport
from engagement_platform.bench.data import flat_content, synthetic
from engagement_platform.bench.report import Bar, Run
from engagement_platform.kafka_config import client_config
from engagement_platform.settings import Settings
from engagement_platform.streaming import kafka_io
from engagement_platform.streaming.enrich_runner import EnrichOptions, EnrichRunner

TARGETS = report.Targets(ours_vs_baseline=10.0, ours_vs_ceiling=0.9)  # issue 13


@dataclass(frozen=True)
class Input:
    """The pre-loaded topics every variant reads, and where its own scratch goes."""

    settings: Settings
    scratch: transport.Scratch
    events_topic: str
    content_topic: str


def enrich_ours(inp: Input, output: str, group: str, n: int, bar: Bar) -> Run:
    """The consumer itself, driven to the end of the pre-loaded topic, into ``output``
    (created by the runner, as ``consume enrich`` does)."""
    options = EnrichOptions(
        group=inp.scratch.group(group),
        events_topic=inp.events_topic,
        content_topic=inp.content_topic,
        output_topic=inp.scratch.topic(output, create=False),
        dlq_topic=inp.scratch.topic(f"{output}.dlq", create=False),
        summary_every=3600.0,
    )

    def done(r: EnrichRunner) -> bool:
        bar.update(r.processed)
        return r.processed >= n and not r.pending

    runner = EnrichRunner(inp.settings, options, stop_when=done)
    code = runner.run()
    end = time.monotonic()
    if code != 0 or runner.first_event_at is None:
        raise RuntimeError(f"the enrichment runner failed (exit {code})")
    if runner.emitted != n:
        raise RuntimeError(f"ours emitted {runner.emitted:,} of {n:,} events")
    return Run(n, end - runner.first_event_at)


def run_ours(inp: Input, n: int, i: int, bar: Bar) -> Run:
    output = f"bench-enrich-{inp.scratch.run_id}.ours{i}"
    try:
        return enrich_ours(inp, output, f"bench-enrich-ours-{inp.scratch.run_id}-{i}", n, bar)
    finally:
        inp.scratch.drop([output, f"{output}.dlq"])


def enrich_peer(name: str, inp: Input, output: str, group: str, n: int, bar: Bar) -> Run:
    """Peer ``name`` over the same input into ``output``, made as ours makes its output topic;
    every event must be there once it stops."""
    inp.scratch.topic(output)
    inp.scratch.topics.extend(peers.internal_topics(name, inp.scratch.group(group)))
    run = peers.run(
        name,
        inp.settings,
        group=group,
        events=inp.events_topic,
        content=inp.content_topic,
        output=output,
        n=n,
        bar=bar,
    )
    written = transport.count(inp.settings, output)
    if written != n:
        raise RuntimeError(f"peer {name}: {written:,} records in {output}, {n:,} expected")
    return run


def run_peer(name: str) -> report.Contender[Input]:
    def run(inp: Input, n: int, i: int, bar: Bar) -> Run:
        output = f"bench-enrich-{inp.scratch.run_id}.{name}{i}"
        group = f"bench-enrich-{name}-{inp.scratch.run_id}-{i}"
        try:
            return enrich_peer(name, inp, output, group, n, bar)
        finally:
            inp.scratch.drop([output, *peers.internal_topics(name, group)])

    return run


def run_baseline(inp: Input, n: int, i: int, bar: Bar) -> Run:
    """The original shape: per-message poll, stdlib json, produce + flush per event."""
    consumer = Consumer(
        client_config(
            inp.settings.kafka_bootstrap_servers,
            extra={
                "group.id": inp.scratch.group(f"bench-enrich-baseline-{inp.scratch.run_id}-{i}"),
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
                "session.timeout.ms": 6000,
                "logger": kafka_io.CLIENT_LOG,  # the clients' lines as ours log them, not raw on stderr
            },
        )
    )
    producer = Producer(
        client_config(inp.settings.kafka_bootstrap_servers, extra={"logger": kafka_io.CLIENT_LOG})
    )
    out = inp.scratch.topic(f"bench-enrich-{inp.scratch.run_id}.baseline{i}")
    cache: dict[str, dict[str, Any]] = {}
    consumer.subscribe([inp.content_topic, inp.events_topic])
    done, started = 0, None
    try:
        while done < n:
            msg = consumer.poll(1.0)
            if msg is None or msg.error() is not None or (value := msg.value()) is None:
                continue
            if msg.topic() == inp.content_topic:
                row = json.loads(value)
                cache[row["id"]] = row
                continue
            if started is None:
                started = time.monotonic()
            event = json.loads(value)
            content = cache.get(event["content_id"], {})
            duration = event.get("duration_ms")
            length = content.get("length_seconds")
            seconds = duration / 1000 if duration is not None else None
            record = {
                "event_id": event["id"],
                "content_id": event["content_id"],
                "user_id": event["user_id"],
                "event_type": event["event_type"],
                "event_ts": event["event_ts"],
                "device": event["device"],
                "duration_ms": duration,
                "engagement_seconds": seconds,
                "engagement_pct": round(100 * seconds / length, 2)
                if seconds is not None and length
                else None,
                "content_type": content.get("content_type"),
                "title": content.get("title"),
                "slug": content.get("slug"),
                "length_seconds": length,
                "publish_ts": content.get("publish_ts"),
                "enriched_at": datetime.now(UTC).isoformat(),
            }
            producer.produce(out, json.dumps(record).encode(), event["content_id"].encode())
            producer.flush()
            done += 1
            if done % 500 == 0:
                bar.update(done)
        end = time.monotonic()
    finally:
        consumer.close()
    inp.scratch.drop([out])
    assert started is not None
    return Run(done, end - started)


def run_ceiling(inp: Input, n: int, i: int, bar: Bar) -> Run:
    out = inp.scratch.topic(f"bench-enrich-{inp.scratch.run_id}.ceiling{i}")
    group = inp.scratch.group(f"bench-enrich-ceiling-{inp.scratch.run_id}-{i}")
    run = transport.relay(inp.settings, inp.events_topic, out, group, n, EnrichOptions().batch_size, bar)
    inp.scratch.drop([out])
    return run


def reencode(value: bytes) -> bytes:
    """The least a consumer that reads and writes JSON does to a record (orjson both ways)."""
    return orjson.dumps(orjson.loads(value))


def run_json_relay(inp: Input, n: int, i: int, bar: Bar) -> Run:
    out = inp.scratch.topic(f"bench-enrich-{inp.scratch.run_id}.json_relay{i}")
    group = inp.scratch.group(f"bench-enrich-json-relay-{inp.scratch.run_id}-{i}")
    batch = EnrichOptions().batch_size
    run = transport.relay(inp.settings, inp.events_topic, out, group, n, batch, bar, transform=reencode)
    inp.scratch.drop([out])
    return run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    report.add_arguments(parser, "events", 200_000, 10_000)
    parser.add_argument("--content", type=positive_int, default=500, help="content rows (default 500)")
    parser.add_argument(
        "--no-peers",
        action="store_true",
        help=f"leave out the peers ({', '.join(peers.MODULES)}: the same join in other frameworks)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    report.setup_logging()
    if not args.no_peers and (why := peers.missing()):
        raise UsageError(f"{why}; or pass --no-peers")
    n = args.events
    n_baseline = min(args.baseline_events, n)
    scratch = transport.Scratch(settings, uuid.uuid4().hex[:8])
    parts = settings.topic_partitions
    try:
        inp = Input(
            settings,
            scratch,
            events_topic=scratch.topic(f"bench-enrich-{scratch.run_id}.engagement_events.flat"),
            content_topic=scratch.topic(
                f"bench-enrich-{scratch.run_id}.content.flat", {"cleanup.policy": "compact"}
            ),
        )
        report.say(f"bench enrich: {n:,} events and {args.content} content rows into {inp.events_topic}")
        contents, records = synthetic(args.content, n)
        transport.preload(settings, inp.content_topic, map(flat_content, contents), len(contents), "content")
        seconds = transport.preload(settings, inp.events_topic, records, n, "events")
        report.say(f"pre-loaded in {seconds:.1f}s")
        variants = report.compare(
            args.runs,
            inp,
            n,
            n_baseline,
            ours=run_ours,
            baseline=run_baseline,
            ceiling=run_ceiling,
            peers={
                "json_relay": run_json_relay,
                **({} if args.no_peers else {name: run_peer(name) for name in peers.MODULES}),
            },
        )
    finally:
        scratch.close()
    figures = report.figures("enrich", variants, TARGETS, events=n, content=args.content, partitions=parts)
    report.print_results(
        f"enrich: {n:,} pre-loaded events, {args.content} content rows, {parts} partitions, "
        f"{args.runs} run(s) each",
        figures,
        variants,
        notes=[
            "ceiling: consume -> produce of the raw bytes, nothing parsed; the transport limit",
            "json_relay: the ceiling with orjson loads + dumps of each record and nothing else, "
            "the least any Python consumer that reads and writes JSON pays",
            *([] if args.no_peers else ["faust, quix: the same join as a Faust app and a Quix Streams app"]),
        ],
    )
    report.write_json(args.json, figures)
    return 0
