"""The peers of ``bench enrich`` (the Faust app, the Quix Streams app) do our work: on the same
input they write the same records as ours, record for record, keys included."""

from __future__ import annotations

import uuid

from confluent_kafka import Message

from engagement_platform.bench import peers, report, transport
from engagement_platform.bench.data import enriched, flat_content, synthetic
from engagement_platform.bench.enrich import Input, enrich_ours, enrich_peer
from engagement_platform_tests.harness import StackHandle, by_event_id, read_topic

EVENTS = 400
CONTENT = 25


def all_written(msgs: list[Message]) -> bool:
    return len(msgs) >= EVENTS


def test_faust_and_quix_write_what_ours_writes(stack: StackHandle) -> None:
    assert peers.missing() is None, peers.missing()
    settings = stack.settings
    scratch = transport.Scratch(settings, uuid.uuid4().hex[:8])
    base = f"test-peers-{scratch.run_id}"
    try:
        inp = Input(
            settings,
            scratch,
            events_topic=scratch.topic(f"{base}.engagement_events.flat"),
            content_topic=scratch.topic(f"{base}.content.flat", {"cleanup.policy": "compact"}),
        )
        contents, records = synthetic(CONTENT, EVENTS)
        events = list(records)
        transport.preload(settings, inp.content_topic, map(flat_content, contents), CONTENT, "content")
        transport.preload(settings, inp.events_topic, events, EVENTS, "events")

        outputs = {}
        for name in ("ours", *peers.MODULES):
            output, group = f"{base}.{name}", f"{base}-{name}"
            with report.progress(name, EVENTS) as bar:
                if name == "ours":
                    enrich_ours(inp, output, group, EVENTS, bar)
                else:
                    enrich_peer(name, inp, output, group, EVENTS, bar)
            msgs = read_topic(settings.kafka_bootstrap_servers, output, until=all_written, settle=0.5)
            outputs[name] = by_event_id([(m.key(), m.value()) for m in msgs])
    finally:
        scratch.close()

    expected = by_event_id(list(enriched(contents, events)))  # the enricher's hot path, no broker
    assert len(expected) == EVENTS
    assert outputs["ours"] == expected
    for name in peers.MODULES:
        assert outputs[name] == outputs["ours"], f"{name} differs from ours"
