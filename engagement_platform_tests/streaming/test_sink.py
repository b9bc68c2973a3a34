"""The sink consumers' shared loop and flags, with a scripted consumer and an in-memory sink: no broker.

What is checked is the order that makes delivery at-least-once: the sink has a batch
before its offsets are committed, a failed write commits nothing, and the batch in hand
is written before a stop; and that the next batch is prepared while a write is in flight.
The scripted consumer's "idle" comes from the loop's thread and a write from the writer's, so
tests compare the sink's own entries (:func:`sink_entries`) where the two may interleave.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, TopicPartition

from engagement_platform import settings
from engagement_platform.streaming import enrich_runner, leaderboard_runner
from engagement_platform.streaming.sink import SinkConsumer, SinkOptions
from engagement_platform.warehouse import bridge


class SinkDown(Exception):
    pass


class ScriptedConsumer:
    """Hands out the scripted batches, then nothing; commit() is recorded. A batch is what one
    ``kafka_io.next_batch`` gets: poll() its first record, the consume() that follows the rest."""

    def __init__(self, journal: list[Any], batches: list[list[Message]]) -> None:
        self.journal = journal
        self.batches = batches
        self.rest: list[Message] | None = None

    def poll(self, timeout: float) -> Message | None:
        if not self.batches:
            self.journal.append("idle")
            return None
        batch = self.batches.pop(0)
        if not batch:
            return None
        self.rest = batch[1:]
        return batch[0]

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        assert num_messages >= 1 and self.rest is not None
        rest, self.rest = self.rest, None
        assert len(rest) <= num_messages
        return rest

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert asynchronous is False
        self.journal.append(("commit", sorted((tp.partition, tp.offset) for tp in offsets)))

    def assignment(self) -> list[TopicPartition]:
        return []

    def close(self) -> None:
        self.journal.append("closed")


class MemorySink(SinkConsumer[list[bytes], int]):
    name = "memory"
    records_out = "written"
    sink_name = "memory"
    sink_errors = (SinkDown,)

    def __init__(self, config: SinkOptions, batches: list[list[Message]], failures: int = 0) -> None:
        super().__init__(settings.load({}), config)  # the defaults: no client is built from them
        self.journal: list[Any] = []
        self.runtime.consumer = ScriptedConsumer(self.journal, batches)  # type: ignore[assignment]
        self.failures = failures

    def prepare(self, records: Sequence[Message]) -> list[bytes]:
        return [m.value() for m in records]

    def write(self, prepared: list[bytes]) -> int:
        if self.failures:
            self.failures -= 1
            self.journal.append("down")
            raise SinkDown("not now")
        self.journal.append(("write", prepared))
        return len(prepared)

    def written(self, prepared: list[bytes], result: int, seconds: float) -> None:
        self.summary.add(written=result)


def sink_entries(journal: list[Any]) -> list[Any]:
    return [e for e in journal if e != "idle"]


def msgs(partition: int, *offsets: int) -> list[Message]:
    return [Message(topic="t", partition=partition, offset=o, value=b"%d" % o) for o in offsets]


class Stop:
    requested = False


def test_each_batch_is_written_then_committed_past_its_last_record() -> None:
    eof = Message(topic="t", partition=1, error=KafkaError(KafkaError._PARTITION_EOF))
    sink = MemorySink(SinkOptions(group="g", batch_size=10), [msgs(0, 1, 2) + msgs(1, 7), [eof], msgs(0, 3)])
    sink.loop(until=lambda: "idle" in sink.journal)
    assert sink_entries(sink.journal) == [
        ("write", [b"1", b"2", b"7"]),
        ("commit", [(0, 3), (1, 8)]),
        ("write", [b"3"]),
        ("commit", [(0, 4)]),
    ]
    assert sink.summary.counters == {"written": 4}
    assert sink.first_record_at is not None


def test_a_sink_that_is_down_is_retried_and_committed_only_after_it_took_the_batch() -> None:
    sink = MemorySink(SinkOptions(group="g", batch_size=10), [msgs(0, 5)], failures=1)
    sink.loop(until=lambda: "idle" in sink.journal)
    assert sink_entries(sink.journal) == ["down", ("write", [b"5"]), ("commit", [(0, 6)])]


def test_a_stop_while_the_sink_is_down_commits_nothing() -> None:
    sink = MemorySink(SinkOptions(group="g", batch_size=10), [msgs(0, 5)], failures=1)
    stop = Stop()
    stop.requested = True
    with pytest.raises(RuntimeError, match="batch not committed"):
        sink.flush(msgs(0, 5), stop)  # type: ignore[arg-type]
    assert sink.journal == ["down"]


def test_batches_fill_up_to_batch_size_before_max_wait() -> None:
    batches = [msgs(0, 1, 2), msgs(0, 3, 4), msgs(0, 5)]
    sink = MemorySink(SinkOptions(group="g", batch_size=4, max_wait=60.0), batches)
    sink.loop(until=lambda: "idle" in sink.journal)
    # 4 records make a batch; the 5th waits for more, then is written when the loop ends
    assert sink_entries(sink.journal) == [
        ("write", [b"1", b"2", b"3", b"4"]),
        ("commit", [(0, 5)]),
        ("write", [b"5"]),
        ("commit", [(0, 6)]),
    ]
    assert sink.journal.index(("write", [b"5"])) > sink.journal.index("idle")
    sink.close()
    assert sink.journal[-1] == "closed" and sink.consumer is None


class OverlapSink(MemorySink):
    """The first write holds on until the second batch is being prepared (or 5 s pass)."""

    def __init__(self, config: SinkOptions, batches: list[list[Message]], fail: bool = False) -> None:
        super().__init__(config, batches)
        self.second_prepared = threading.Event()
        self.fail = fail

    def prepare(self, records: Sequence[Message]) -> list[bytes]:
        if self.journal.count("prepare") == 1:
            self.second_prepared.set()
        self.journal.append("prepare")
        return super().prepare(records)

    def write(self, prepared: list[bytes]) -> int:
        if prepared == [b"1"]:
            overlapped = self.second_prepared.wait(5)
            self.journal.append(("overlapped", overlapped))
            if self.fail:
                raise ValueError("the sink refused the batch")
        return super().write(prepared)


def test_the_next_batch_is_prepared_while_a_write_is_in_flight_and_commits_stay_in_order() -> None:
    sink = OverlapSink(SinkOptions(group="g", batch_size=1), [msgs(0, 1), msgs(0, 2)])
    sink.loop(until=lambda: "idle" in sink.journal)
    assert sink_entries(sink.journal) == [
        "prepare",
        "prepare",  # batch 2, while batch 1's write waits for exactly that
        ("overlapped", True),
        ("write", [b"1"]),
        ("commit", [(0, 2)]),  # batch 1 committed before batch 2 is written
        ("write", [b"2"]),
        ("commit", [(0, 3)]),
    ]


def test_a_write_that_fails_in_flight_stops_the_loop_and_commits_nothing() -> None:
    sink = OverlapSink(SinkOptions(group="g", batch_size=1), [msgs(0, 1), msgs(0, 2)], fail=True)
    with pytest.raises(ValueError, match="refused"):
        sink.loop(until=lambda: "idle" in sink.journal)
    assert not [e for e in sink.journal if e[0] in ("commit", "write")]
    sink.close()


@pytest.mark.parametrize(
    ("module", "options"),
    [
        (enrich_runner, enrich_runner.EnrichOptions),
        (leaderboard_runner, leaderboard_runner.Config),
        (bridge, bridge.Config),
    ],
)
def test_every_flag_default_is_the_options_default(module: Any, options: Any) -> None:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    assert options.from_args(parser.parse_args([])) == options()


def test_flags_set_the_options_by_name() -> None:
    parser = argparse.ArgumentParser()
    leaderboard_runner.add_arguments(parser)
    args = parser.parse_args(
        ["--topic", "x", "--group", "g", "--batch-size", "7", "--metric", "engagement_seconds"]
    )
    config = leaderboard_runner.Config.from_args(args)
    assert (config.topic, config.group, config.batch_size, config.rules.metric) == (
        "x",
        "g",
        7,
        "engagement_seconds",
    )
    parser = argparse.ArgumentParser()
    bridge.add_arguments(parser)
    config = bridge.Config.from_args(parser.parse_args(["--max-wait", "0.2", "--database", "d"]))
    assert (config.max_wait, config.database, config.batch_size, config.group) == (
        0.2,
        "d",
        20_000,
        "warehouse",
    )
