"""The consumer runtime without a broker: what it commits around a stage that holds records
back, across rebalances, under back-pressure and after a failure (a scripted consumer)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from engagement_platform import settings
from engagement_platform.streaming import kafka_io
from engagement_platform.streaming.errors import FatalError
from engagement_platform.streaming.metrics import ConsumerMetrics
from engagement_platform.streaming.options import ConsumerOptions
from engagement_platform.streaming.runtime import ConsumerRuntime, Stage

TOPIC = "events"


def msgs(partition: int, *offsets: int) -> list[Message]:
    return [Message(topic=TOPIC, partition=partition, offset=o, value=b"%d" % o) for o in offsets]


class ScriptedConsumer:
    """Plays a script of steps, one per poll: ``("assign" | "revoke" | "lost", [partitions])``
    calls the runtime's callback; a list of messages is one poll's records. Then idles."""

    def __init__(self, runtime: ConsumerRuntime, journal: list[Any], steps: list[Any]) -> None:
        self.runtime, self.journal, self.steps = runtime, journal, steps
        self.assigned: set[int] = set()
        self.rest: list[Message] = []

    def poll(self, timeout: float) -> Message | None:
        if not self.steps:
            self.journal.append("idle")
            return None
        step = self.steps.pop(0)
        if isinstance(step, tuple):
            kind, partitions = step
            tps = [TopicPartition(TOPIC, p) for p in partitions]
            if kind == "assign":
                self.assigned |= set(partitions)
                self.runtime._on_assign(self, tps)  # type: ignore[arg-type]
            else:
                self.assigned -= set(partitions)
                callback = self.runtime._on_revoke if kind == "revoke" else self.runtime._on_lost
                callback(self, tps)  # type: ignore[arg-type]
            return None
        self.rest = step[1:]
        return step[0]

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        rest, self.rest = self.rest, []
        return rest

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.journal.append(("commit", sorted((tp.partition, tp.offset) for tp in offsets)))

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, p) for p in sorted(self.assigned)]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, tp.partition, -1001) for tp in partitions]  # unknown: no lag

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool) -> tuple[int, int]:
        return (0, 0)

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.journal.append(("pause", [tp.partition for tp in partitions]))

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.journal.append(("resume", [tp.partition for tp in partitions]))

    def close(self) -> None:
        """As librdkafka's close: what is still assigned is revoked first."""
        if self.assigned:
            self.runtime._on_revoke(self, self.assignment())  # type: ignore[arg-type]
        self.journal.append("closed")


class Holding(Stage):
    """Hands every record on, but holds the offsets in ``hold`` back (as enrich holds events
    waiting for their content) until told; ``acknowledge`` is journaled."""

    name = "holding"

    def __init__(self, journal: list[Any], hold: dict[int, int] | None = None, fail_at: int = 0) -> None:
        self.journal = journal
        self.hold = dict(hold or {})
        self.fail_at = fail_at  # the batch (1st, 2nd, ...) that fails; 0: none
        self.batches = 0
        self.runtime: ConsumerRuntime | None = None
        self.metrics = ConsumerMetrics(self.name, records_in="processed", records_out="processed")
        self.summary = kafka_io.Summary(self.name, every=3600, metrics=self.metrics)

    def handle(self, records: list[Message]) -> None:
        self.batches += 1
        if self.batches == self.fail_at:
            raise FatalError("a produced record was refused")
        assert self.runtime is not None
        self.runtime.checkpoint.consumed(records)
        self.summary.add(processed=len(records))

    def acknowledge(self) -> bool:
        self.journal.append("acknowledge")
        return True

    def held(self, partition: int) -> int | None:
        return self.hold.get(partition)

    def backlog(self) -> int:
        return len(self.hold)

    def forget(self, partitions: set[int]) -> None:
        self.journal.append(("forget", sorted(partitions)))
        for p in partitions:
            self.hold.pop(p, None)


class ScriptedRuntime(ConsumerRuntime):
    def __init__(self, stage: Holding, steps: list[Any], max_backlog: int | None = None) -> None:
        options = ConsumerOptions(group="g", batch_size=100, poll_timeout=0.01)
        super().__init__(settings.load({}), options, stage, topic=TOPIC, max_backlog=max_backlog)
        stage.runtime = self
        self.journal = stage.journal
        self.steps = steps

    def open(self) -> Consumer:
        self.consumer = ScriptedConsumer(self, self.journal, self.steps)  # type: ignore[assignment]
        return self.consumer  # type: ignore[return-value]


def entries(journal: list[Any]) -> list[Any]:
    return [e for e in journal if e != "idle"]


def test_a_partition_is_committed_up_to_what_it_holds_back_after_the_acknowledge() -> None:
    journal: list[Any] = []
    runtime = ScriptedRuntime(
        Holding(journal, hold={0: 2}), [("assign", [0, 1]), msgs(0, 0, 1, 2, 3) + msgs(1, 0, 1)]
    )
    runtime.loop(until=lambda: "idle" in journal)
    assert entries(journal) == ["acknowledge", ("commit", [(0, 2), (1, 2)])]
    runtime.stage.hold.clear()  # type: ignore[attr-defined]
    assert runtime.commit()
    assert entries(journal)[-2:] == ["acknowledge", ("commit", [(0, 4)])]  # only what moved


def test_a_revoked_partition_is_committed_and_forgotten_a_lost_one_only_forgotten() -> None:
    journal: list[Any] = []
    steps = [("assign", [0, 1]), msgs(0, 0, 1) + msgs(1, 0, 1, 2), ("revoke", [1]), ("lost", [0])]
    runtime = ScriptedRuntime(Holding(journal), steps)
    runtime.loop(until=lambda: "idle" in journal)
    assert entries(journal) == [
        "acknowledge",
        ("commit", [(1, 3)]),
        ("forget", [1]),
        ("forget", [0]),  # lost: its offsets are not ours to commit any more, nor at the drain
    ]
    assert runtime.checkpoint.tracker.assigned == set()


def test_consumption_pauses_while_the_stage_holds_too_much_and_resumes_once_it_drained() -> None:
    journal: list[Any] = []
    stage = Holding(journal, hold={0: 0, 1: 0})
    runtime = ScriptedRuntime(stage, [("assign", [0, 1]), msgs(0, 0) + msgs(1, 0)], max_backlog=2)
    runtime.loop(until=lambda: ("pause", [0, 1]) in journal)
    stage.hold.clear()
    runtime.loop(until=lambda: "idle" in journal)
    assert [e for e in journal if e[0] in ("pause", "resume")] == [("pause", [0, 1]), ("resume", [0, 1])]


def test_a_fatal_error_exits_1_and_nothing_is_committed_even_by_the_close() -> None:
    journal: list[Any] = []
    steps = [("assign", [0]), msgs(0, 0, 1), msgs(0, 2)]  # the first batch is handed on, the second fails
    runtime = ScriptedRuntime(Holding(journal, fail_at=2), steps)
    assert runtime.run() == 1
    assert not [e for e in journal if e[0] == "commit" or e == "acknowledge"]
    assert journal[-1] == "closed" and runtime.consumer is None
