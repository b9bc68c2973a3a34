"""DLQ replay: decoding dead letters back to their original bytes, the filters, the CLI's usage errors
(pure); and on a real stack, a replay twice through enrich, the leaderboard and the warehouse bridge,
each sink holding every event once."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import redis
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message, Producer

from engagement_platform import cli
from engagement_platform.argtypes import UsageError
from engagement_platform.defs.kafka.dlq import dlq_records_sensor, dlq_replay_job
from engagement_platform.replay import Filters, Report, parse_since, reason_code
from engagement_platform.streaming import kafka_io, topics
from engagement_platform.streaming.dlq import dlq_record, dlq_record_of
from engagement_platform.streaming.dlq_replay import UNREADABLE, decode_letter
from engagement_platform.warehouse import backfill
from engagement_platform_tests import harness
from engagement_platform_tests.defs import resources as test_resources
from engagement_platform_tests.defs.warehouse.helpers import fresh_database
from engagement_platform_tests.harness import Child, StackHandle


def message(value: bytes | None, key: bytes | None = b"k") -> Message:
    return Message(
        topic="events", partition=2, offset=41, key=key, value=value, timestamp=(TIMESTAMP_CREATE_TIME, 1234)
    )


def as_dlq_message(original: Message, reason: str) -> Message:
    value, headers = dlq_record_of(original, reason)
    return Message(
        topic="dlq", partition=0, offset=7, key=original.key(), value=value, headers=headers,
        timestamp=(TIMESTAMP_CREATE_TIME, 5678),
    )  # fmt: skip


@pytest.mark.parametrize("original", [b'{"id": 1}', b"\xff\xfe not utf-8", None])
def test_a_dead_letter_decodes_to_its_original_key_bytes_and_place(original: bytes | None) -> None:
    letter = decode_letter(as_dlq_message(message(original), "unknown_event_type: 'share'"))
    assert (letter.topic, letter.partition, letter.key, letter.value) == ("events", 2, b"k", original)
    assert letter.reason == "unknown_event_type: 'share'"


@pytest.mark.parametrize(
    "value",
    [b"not json", b"[1]", b'{"reason": "x"}', b'{"reason": "x", "topic": "t", "partition": 0, '
     b'"original": "a", "original_encoding": "rot13"}'],
)  # fmt: skip
def test_a_record_not_in_the_dlq_format_is_refused(value: bytes) -> None:
    with pytest.raises(ValueError):
        decode_letter(message(value))


def test_filters_take_a_reason_prefix_and_a_time_since() -> None:
    since = datetime(2026, 11, 29, 19, tzinfo=UTC)
    f = Filters("unknown_event_type", since)
    assert f.keep("unknown_event_type: 'share'", since)
    assert not f.keep("unknown_event_type: 'share'", since - timedelta(milliseconds=1))
    assert not f.keep("bad_json: x", since)
    assert Filters().keep("anything", datetime(1970, 1, 1, tzinfo=UTC))


def test_since_is_utc_unless_it_says_otherwise_and_a_bad_one_is_a_usage_error() -> None:
    assert parse_since("2026-11-29T19:00:00") == datetime(2026, 11, 29, 19, tzinfo=UTC)
    assert parse_since("2026-11-29T20:00:00+01:00") == datetime(2026, 11, 29, 19, tzinfo=UTC)
    assert parse_since("2026-11-29T19:00:00Z") == datetime(2026, 11, 29, 19, tzinfo=UTC)
    with pytest.raises(UsageError, match="ISO-8601"):
        parse_since("yesterday")


def test_counts_group_by_the_reason_code() -> None:
    report = Report("dlq", dry_run=True)
    report.count("unknown_event_type: 'share'").replayed += 1
    report.count("unknown_event_type: 'like'").skipped += 1
    report.count(UNREADABLE).skipped += 1
    assert reason_code("bad_json: expecting value") == "bad_json"
    assert report.records_by_reason() == {UNREADABLE: 1, "unknown_event_type": 2}
    assert (report.replayed, report.skipped) == (1, 2)


def test_a_bad_since_on_the_command_line_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["dlq", "replay", "--since", "last tuesday"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--since" in err and "ISO-8601" in err


def test_topic_and_warehouse_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["dlq", "replay", "--warehouse", "--topic", "x.dlq"]) == 2
    assert "--warehouse" in capsys.readouterr().err


# --- on a real stack ----------------------------------------------------------------------

N = 20  # valid events the enricher once refused


def run_names() -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    return {
        "run": run,
        "events": f"t-{run}.engagement_events.flat",
        "content": f"t-{run}.content.flat",
        "enriched": f"t-{run}.engagement_enriched",
        "dlq": f"t-{run}.engagement_enriched.dlq",
        "prefix": f"t{run}:",
    }


def dead_letters(names: dict[str, str], event_ts: datetime) -> list[tuple[bytes | None, bytes, list]]:
    """N valid flat events dead-lettered for a reason since fixed, and 3 that stay bad."""
    content_id = str(uuid.uuid4())
    letters = []
    for i in range(1, N + 1):
        row = (i, content_id, str(uuid.uuid4()), "play", event_ts, 1000 * i, "ios")
        value = backfill.event_record(row)
        record, headers = dlq_record("unknown_event_type: 'play'", names["events"], i % 2, i, 0, value)
        letters.append((content_id.encode(), record, headers))
    for i in range(3):
        record, headers = dlq_record("bad_json: expecting value", names["events"], 0, 100 + i, 0, b"{nope")
        letters.append((None, record, headers))
    return letters


def content_record(content_id: str) -> tuple[bytes, bytes]:
    row = (None,) * 7 + (content_id, "a-slug", "A Title", "podcast", 600, datetime(2026, 1, 1, tzinfo=UTC))
    found = backfill.content_record(row)
    assert found is not None
    return found


def high_watermarks(settings, topic: str) -> dict[int, int]:  # type: ignore[no-untyped-def]
    marks = harness.watermarks(settings.kafka_bootstrap_servers, topic)
    return {p: high for p, (_low, high) in marks.items() if high > 0}


@pytest.mark.slow
def test_replaying_twice_changes_no_count_in_any_sink(
    stack: StackHandle, spawn: Callable[..., Child]
) -> None:
    settings = stack.settings
    names = run_names()
    bootstrap = settings.kafka_bootstrap_servers
    topics.ensure_topics(
        bootstrap,
        [topics.TopicSpec(names[t], 2) for t in ("events", "content", "enriched", "dlq")],
        bounds=topics.settings_bounds(settings),
    )
    event_ts = datetime.now(UTC).replace(second=0, microsecond=0)
    letters = dead_letters(names, event_ts)
    content_id = letters[0][0].decode()  # type: ignore[union-attr]
    producer = Producer(kafka_io.producer_config(settings))
    harness.produce_records(producer, names["content"], [content_record(content_id)])
    for key, value, headers in letters:
        kafka_io.produce(producer, names["dlq"], value, key, headers=headers)
    assert producer.flush(30) == 0

    # a dry run counts and sends nothing
    out = stack.cli("dlq", "replay", "--topic", names["dlq"], "--reason", "unknown_event_type", "--dry-run")
    assert "would replay 20" in out.stdout and "skipped 3" in out.stdout, out.stdout
    assert high_watermarks(settings, names["events"]) == {}

    with fresh_database(settings, "dlq") as (database, client):
        run = names["run"]
        procs = [
            spawn("consume", "enrich", "--group", f"e-{run}", "--events-topic", names["events"],
                  "--content-topic", names["content"], "--output-topic", names["enriched"],
                  "--dlq-topic", names["dlq"], name="enrich"),
            spawn("consume", "leaderboard", "--group", f"l-{run}", "--topic", names["enriched"],
                  "--key-prefix", names["prefix"], name="leaderboard"),
            spawn("consume", "warehouse", "--group", f"w-{run}", "--topic", names["enriched"],
                  name="warehouse", env={"CLICKHOUSE_DATABASE": database}),
        ]  # fmt: skip
        r = redis.Redis.from_url(settings.redis_url)
        bucket = f"{names['prefix']}zset:eng:minute:{event_ts:%Y%m%d%H%M}"
        groups = {f"e-{run}": names["events"], f"l-{run}": names["enriched"], f"w-{run}": names["enriched"]}

        def settled() -> bool:
            """Every consumer committed everything its input holds (the replay went all the way)."""
            for group, topic in groups.items():
                committed = harness.committed_offsets(bootstrap, group, topic)
                if any(committed.get(p) != high for p, high in high_watermarks(settings, topic).items()):
                    return False
            return True

        def sinks() -> tuple[set[int], int, list[int], float]:
            ids = harness.topic_event_ids(bootstrap, names["enriched"], "event_id")
            final = client.query("SELECT event_id FROM engagement_enriched FINAL ORDER BY event_id")
            count = int(client.command("SELECT count() FROM engagement_enriched FINAL"))
            score = sum(s for _m, s in r.zrange(bucket, 0, -1, withscores=True))
            return ids, count, [row[0] for row in final.result_rows], score

        try:
            want = set(range(1, N + 1))
            for attempt in (1, 2):
                out = stack.cli("dlq", "replay", "--topic", names["dlq"], "--reason", "unknown_event_type")
                assert "replayed 20" in out.stdout and "skipped 3" in out.stdout, out.stdout
                assert f"replayed 20 to {names['events']}" in out.stdout
                harness.wait_for(
                    lambda: settled() and sinks()[1] == N,
                    120,
                    f"replay {attempt} through every sink",
                    alive=lambda: all(p.alive() for p in procs),
                    describe=lambda: "\n".join(p.output()[-2000:] for p in procs),
                )
                ids, count, final_ids, score = sinks()
                assert ids == want and count == N and final_ids == sorted(want), attempt
                assert score == N, (attempt, score)
            # nothing was dead-lettered again: the DLQ holds what it held
            assert sum(high_watermarks(settings, names["dlq"]).values()) == len(letters)
            # the replayed records carry where they came from
            replayed = harness.read_topic(
                bootstrap, names["events"], until=lambda ms: len(ms) >= 2 * N, settle=0
            )
            headers = dict(replayed[0].headers() or [])
            assert headers["dlq.reason"] == b"unknown_event_type: 'play'" and b"T" in headers["dlq.replayed"]
            # the Dagster job counts the same, and shows the DLQ's records by reason
            result = dlq_replay_job.execute_in_process(
                run_config={
                    "ops": {"replay_dead_letters": {"config": {"dry_run": True, "topic": names["dlq"]}}}
                },
                resources={
                    "kafka": test_resources.kafka(settings),
                    "clickhouse": test_resources.clickhouse(settings, database),
                },
            )
            assert result.success
            [observation] = [
                e.asset_observation_data.asset_observation
                for e in result.all_events
                if e.event_type_value == "ASSET_OBSERVATION"
            ]
            assert observation.asset_key == dg.AssetKey(["kafka", "engagement_enriched_dlq"])
            assert observation.metadata["records_by_reason"].value == {
                "bad_json": 3,
                "unknown_event_type": 20,
            }
        finally:
            for p in procs:
                assert p.stop() == 0, p.output()[-3000:]
            r.close()


def test_the_sensor_observes_the_dlq_records_by_reason(stack: StackHandle) -> None:
    settings = stack.settings
    bootstrap = settings.kafka_bootstrap_servers
    topics.ensure_topics(
        bootstrap, [topics.TopicSpec(topics.ENRICHED_DLQ, 1)], bounds=topics.settings_bounds(settings)
    )
    code = f"test_{uuid.uuid4().hex[:8]}"
    producer = Producer(kafka_io.producer_config(settings))
    for i in range(2):
        value, headers = dlq_record(f"{code}: detail {i}", "somewhere", 0, i, 0, b"x")
        kafka_io.produce(producer, topics.ENRICHED_DLQ, value, None, headers=headers)
    assert producer.flush(30) == 0
    instance = dg.DagsterInstance.ephemeral()
    result, cursor = harness.tick(dlq_records_sensor, instance, {"kafka": test_resources.kafka(settings)})
    [observation] = result.asset_events
    assert observation.asset_key == dg.AssetKey(["kafka", "engagement_enriched_dlq"])
    assert observation.metadata["records_by_reason"].value[code] == 2
    # nothing new: no second observation
    again, _ = harness.tick(dlq_records_sensor, instance, {"kafka": test_resources.kafka(settings)}, cursor)
    assert not again.asset_events and again.skip_reason is not None
