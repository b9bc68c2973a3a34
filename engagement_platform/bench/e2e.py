"""End to end, per event: Postgres commit -> CDC topic -> engagement_enriched -> Redis -> ClickHouse.

Writes live events into Postgres at ``--rate``, ``--tx-size`` per transaction (1: as an
application writes them), and watches the CDC topic and the three sinks at once; needs the
stack up with the set-up applied, and starts the platform's consumers itself (stop ``up``'s
first). How it measures, and the figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import math
import os
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psutil
import redis
from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from engagement_platform.argtypes import UsageError, positive_float, positive_int
from engagement_platform.bench import report
from engagement_platform.bench.writer import Committed, WriteResult, WriterPool, connections_for, kept_up
from engagement_platform.kafka_config import client_config
from engagement_platform.local_stack.apps import CLI, CONSUMERS
from engagement_platform.local_stack.supervisor import Supervisor
from engagement_platform.settings import Settings, child_env
from engagement_platform.streaming import topics
from engagement_platform.streaming.leaderboard import Keys
from engagement_platform.streaming.leaderboard_runner import counted
from engagement_platform.warehouse.ddl import connect_settings

STAGES = ("cdc", "enriched", "redis", "clickhouse")
STAGE_LABELS = {"cdc": f"CDC ({topics.EVENTS_FLAT})", "enriched": "enriched"}
DRAIN_S = 10.0  # the whole backlog must be visible in ClickHouse this soon after the last insert
SATURATED = 0.9  # of the asked rate: writers below it did not keep up (the rate is not held)
FIND_MAX_RATES = (1_000, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 20_000)
COLD_WINDOW_S = 60.0  # --cold: the first minute after `stack up`, reported apart
COLD_SLICE_S = 10.0  # --cold: the first minute again, slice by slice, to show when it settles
FIND_MAX_PRECISION = 0.1  # bisect until the highest held and lowest failed rates are this close
# the platform's processes by the names a reader knows them by (the stack's service or consumer
# name otherwise): the Connect worker runs Debezium, the warehouse consumer is the bridge
PROCESS_NAMES = {"cdc": "connect", "warehouse": "bridge"}

# The consumers' settings before tuning, for `--variant before`: each consume() call waited for
# a full batch until its poll timeout, and the warehouse gathered a second's worth per insert
BEFORE = {
    "enrich": ["--fill-wait", "0.1"],
    "leaderboard": ["--fill-wait", "0.5"],
    "warehouse": ["--fill-wait", "0.5", "--max-wait", "1.0"],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate", type=positive_float, default=1000.0, help="events/s into Postgres (default 1000)"
    )
    parser.add_argument("--duration", type=positive_float, default=60.0, help="seconds to write (default 60)")
    parser.add_argument(
        "--tx-size",
        type=positive_int,
        default=1,
        help="events per Postgres transaction (default 1, as an application writes them; 20: the "
        "bursts of earlier figures)",
    )
    parser.add_argument(
        "--connections",
        type=positive_int,
        help="Postgres connections writing, over up to one process per core (default: one per 25 "
        "transactions/s asked, 2 to 64)",
    )
    parser.add_argument(
        "--find-max",
        action="store_true",
        help=f"probe rates ({', '.join(f'{r:,}' for r in FIND_MAX_RATES)} events/s, then bisecting; "
        "--duration each) until the lag is no longer bounded or the writers fall below 90%% of the "
        "rate asked; then hold the highest for --hold seconds and print CPU per process there",
    )
    parser.add_argument(
        "--hold",
        type=positive_float,
        default=300.0,
        help="--find-max: seconds the highest rate must be held with bounded lag (default 300)",
    )
    parser.add_argument(
        "--cold",
        type=positive_float,
        nargs="?",
        const=COLD_WINDOW_S,
        metavar="SECONDS",
        help="restart the stack first (stack down, stack up, timed) and write at once while the "
        f"consumers join, as after `make up`: the first SECONDS (default {COLD_WINDOW_S:g}) are reported "
        "apart from the --duration seconds after them (the steady state), in the same run",
    )
    parser.add_argument(
        "--variant",
        choices=("after", "before", "both"),
        default="after",
        help="consumer settings: as they are (after), as they were before tuning (before), or both "
        "in this run (default after)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")


# --------------------------------------------------------------------------- measurement


@dataclass
class Timeline:
    """When each event id was committed in Postgres and first seen in each sink (epoch seconds).

    Each stage keeps the set of ids it has not seen yet, so a watcher's poll costs what is in
    flight, not every event of the run (a scan of all of them 50 times a second held the GIL
    long enough to slow the writer below 3,500 events/s)."""

    committed: dict[int, float] = field(default_factory=dict)
    seen: dict[str, dict[int, float]] = field(default_factory=lambda: {s: {} for s in STAGES})
    unseen: dict[str, set[int]] = field(default_factory=lambda: {s: set() for s in STAGES})
    backlog: list[tuple[float, int]] = field(default_factory=list)  # (time, not yet in ClickHouse)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, ids: Sequence[int], at: Sequence[float]) -> None:
        """Events committed: their ids and each one's commit time."""
        with self.lock:
            for event_id, when in zip(ids, at, strict=True):
                self.committed[event_id] = when
            for stage in STAGES:
                self.unseen[stage].update(i for i in ids if i not in self.seen[stage])

    def pending(self, stage: str) -> list[int]:
        with self.lock:
            return list(self.unseen[stage])

    def mark(self, stage: str, ids: Iterable[int], at: float) -> None:
        self.mark_each(stage, dict.fromkeys(ids, at))

    def mark_each(self, stage: str, stamps: Mapping[int, float]) -> None:
        """Each event id first seen at its own time (a record's timestamp)."""
        with self.lock:
            seen, unseen = self.seen[stage], self.unseen[stage]
            for event_id, at in stamps.items():
                if event_id not in seen:
                    seen[event_id] = at
                    unseen.discard(event_id)

    def latencies_ms(self, stage: str, window: tuple[float, float] | None = None) -> list[float]:
        """Each seen event's latency; with ``window`` only events committed within it."""
        with self.lock:
            committed, seen = self.committed, self.seen[stage]
            ids = self.committed_in(window)
            return [max(seen[i] - committed[i], 0.0) * 1000 for i in ids if i in seen]

    def committed_in(self, window: tuple[float, float] | None) -> list[int]:
        if window is None:
            return list(self.committed)
        start, end = window
        return [i for i, at in self.committed.items() if start <= at < end]


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


class Watcher(threading.Thread):
    """A sink poller: runs ``poll`` until stopped, marking what it sees."""

    def __init__(self, timeline: Timeline, every: float) -> None:
        super().__init__(daemon=True)
        self.timeline, self.every = timeline, every
        self.stop_at: float | None = None
        self.error: BaseException | None = None

    def poll(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        try:
            while self.stop_at is None or time.time() < self.stop_at:
                began = time.monotonic()
                self.poll()
                time.sleep(max(self.every - (time.monotonic() - began), 0.0))
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            self.error = exc


class KafkaWatcher(Watcher):
    """Each record's own timestamp (set when it was produced): on the CDC topic, when Connect
    produced the change (Debezium sets none); on engagement_enriched, when the enricher did."""

    FIELDS = {topics.EVENTS_FLAT: ("id", "cdc"), topics.ENRICHED: ("event_id", "enriched")}

    def __init__(self, timeline: Timeline, settings: Settings) -> None:
        super().__init__(timeline, 0.0)
        self.consumer = Consumer(
            client_config(
                settings.kafka_bootstrap_servers,
                extra={
                    "group.id": f"bench-e2e-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 10,
                },
            )
        )
        assigned = []
        for topic in self.FIELDS:
            metadata = self.consumer.list_topics(topic, timeout=10).topics[topic]
            assigned += [TopicPartition(topic, p, OFFSET_END) for p in metadata.partitions]
        self.consumer.assign(assigned)

    def poll(self) -> None:
        stamps: dict[str, dict[int, float]] = {stage: {} for _field, stage in self.FIELDS.values()}
        for msg in self.consumer.consume(num_messages=10_000, timeout=0.1):
            if msg.error() is None and (value := msg.value()) and (topic := msg.topic()) in self.FIELDS:
                key, stage = self.FIELDS[topic]
                event_id = orjson.loads(value).get(key)
                if isinstance(event_id, int):
                    stamps[stage].setdefault(event_id, msg.timestamp()[1] / 1000)
        for stage, found in stamps.items():
            self.timeline.mark_each(stage, found)

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.consumer.close()


class RedisWatcher(Watcher):
    """Each pending event id against its dedupe bit: counted means visible."""

    def __init__(self, timeline: Timeline, settings: Settings) -> None:
        super().__init__(timeline, 0.02)
        self.client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
        self.keys = Keys()

    def poll(self) -> None:
        pending = self.timeline.pending("redis")
        if not pending:
            return
        flags = counted(self.client, self.keys, pending)
        self.timeline.mark("redis", [i for i, f in zip(pending, flags, strict=True) if f], time.time())


class ClickHouseWatcher(Watcher):
    """The row, queryable (not FINAL: visible at all is what a dashboard needs)."""

    def __init__(self, timeline: Timeline, settings: Settings, since: datetime) -> None:
        super().__init__(timeline, 0.05)
        self.client = connect_settings(settings)
        self.since = since

    def poll(self) -> None:
        pending = self.timeline.pending("clickhouse")
        now = time.time()
        with self.timeline.lock:
            self.timeline.backlog.append((now, len(pending)))
        if not pending:
            return
        rows = self.client.query(
            "SELECT event_id FROM engagement_enriched WHERE event_ts >= {since:DateTime64(3, 'UTC')} "
            "AND event_id >= {low:UInt64}",
            parameters={"since": self.since, "low": min(pending)},
        ).result_rows
        self.timeline.mark("clickhouse", [r[0] for r in rows], time.time())


def drive(pool: WriterPool, timeline: Timeline, rate: float, duration: float, bar: report.Bar) -> WriteResult:
    """Commit events at ``rate`` for ``duration`` s through the writers, into ``timeline``."""

    def committed(chunk: Committed) -> None:
        timeline.add(chunk.ids, chunk.at)

    return pool.write(rate, duration, committed, bar.update)


@dataclass(frozen=True)
class Outcome:
    rate: float
    written: int
    seconds: float
    stages: dict[str, dict[str, float]]
    bounded: bool
    note: str
    processes: dict[str, dict[str, float]]
    tx_size: int = 1
    writers: int = 1
    late_s: float = 0.0
    commit_ms: float = 0.0
    # --cold: the same figures for the first minute and for the steady state after it
    windows: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    stack_up_s: float | None = None
    # --cold: the first window in COLD_SLICE_S slices ("0-10 s", ...), same figures
    slices: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    @property
    def achieved(self) -> float:
        return self.written / self.seconds if self.seconds else 0.0

    @property
    def kept_up(self) -> bool:
        """Whether the writers reached the rate asked (SATURATED of it)."""
        return kept_up(self.written, self.rate, self.seconds, SATURATED)

    @property
    def held(self) -> bool:
        """The rate asked was written and the platform kept up with it."""
        return self.bounded and self.kept_up

    def as_json(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "achieved_rate": round(self.achieved, 1),
            "tx_size": self.tx_size,
            "connections": self.writers,
            "writer_kept_up": self.kept_up,
            "writer_late_s": round(self.late_s, 3),
            "commit_ms": round(self.commit_ms, 2),
            "written": self.written,
            "seconds": round(self.seconds, 2),
            "latency_ms": self.stages,
            "lag_bounded": self.bounded,
            "lag_note": self.note,
            "processes": self.processes,
            **({"windows": self.windows} if self.windows else {}),
            **({"slices": self.slices} if self.slices else {}),
            **({"stack_up_s": round(self.stack_up_s, 1)} if self.stack_up_s is not None else {}),
        }


def cold_slices(cold: float, size: float = COLD_SLICE_S) -> list[tuple[float, float]]:
    """The first ``cold`` seconds as (start, stop) slices of ``size`` seconds, the last shorter."""
    return [
        (start, min(start + size, cold))
        for start in itertools.takewhile(lambda t: t < cold, itertools.count(0.0, size))
    ]


def stage_figures(latencies: Sequence[float], written: int) -> dict[str, float]:
    """One stage's line: how many events it saw of those written, and their latency (ms)."""
    return {
        "events": len(latencies),
        "missing": written - len(latencies),
        "p50": round(percentile(latencies, 50), 1),
        "p95": round(percentile(latencies, 95), 1),
        "p99": round(percentile(latencies, 99), 1),
        "max": round(max(latencies), 1) if latencies else float("nan"),
    }


def bounded_lag(timeline: Timeline, end: float, rate: float) -> tuple[bool, str]:
    """Bounded: everything reached ClickHouse within DRAIN_S of the last insert, and the backlog
    did not grow over the second half of the run."""
    late = [t for t in timeline.seen["clickhouse"].values() if t > end + DRAIN_S]
    missing = len(timeline.committed) - len(timeline.seen["clickhouse"])
    during = [(t, n) for t, n in timeline.backlog if t <= end]
    if missing or late:
        return False, f"{missing:,} events not in ClickHouse {DRAIN_S:g} s after the last insert"
    if len(during) >= 4:
        half = during[len(during) // 2 :]
        first = statistics.median(n for _t, n in half[: len(half) // 2])
        last = statistics.median(n for _t, n in half[len(half) // 2 :])
        if last > max(2 * first, rate * 2):
            return False, f"backlog grew from ~{first:,.0f} to ~{last:,.0f} events over the run's second half"
    peak = max((n for _t, n in during), default=0)
    return True, f"backlog at most {peak:,} events; drained after the last insert"


class ProcessSampler:
    """CPU (share of one core, averaged over the run) and peak RSS of the platform's processes,
    each name with its processes' children (``named``: name -> the pids it stands for)."""

    def __init__(self, named: Mapping[str, Sequence[int]]) -> None:
        self.procs: dict[str, list[psutil.Process]] = {}
        for name, pids in named.items():
            for pid in pids:
                try:
                    parent = psutil.Process(pid)
                    self.procs.setdefault(name, []).extend([parent, *parent.children(recursive=True)])
                except psutil.Error:
                    continue
        self.rss: dict[str, float] = dict.fromkeys(self.procs, 0.0)
        for procs in self.procs.values():
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    p.cpu_percent(None)

    def sample(self) -> None:
        for name, procs in self.procs.items():
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    continue
            self.rss[name] = max(self.rss[name], total / 2**20)

    def finish(self) -> dict[str, dict[str, float]]:
        self.sample()
        result = {}
        for name, procs in self.procs.items():
            cpu = 0.0
            for p in procs:
                try:
                    cpu += p.cpu_percent(None)
                except psutil.Error:
                    continue
            result[name] = {"cpu_percent": round(cpu, 1), "rss_mib": round(self.rss[name], 1)}
        return result


# --------------------------------------------------------------------------- consumers


class ConsumerProcesses:
    """The platform's three consumers as child processes, with extra flags per consumer."""

    def __init__(self, settings: Settings, extra: dict[str, list[str]]) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        log_dir = settings.ep_home / "bench-e2e"
        log_dir.mkdir(parents=True, exist_ok=True)
        for kind in CONSUMERS:
            with open(log_dir / f"{kind}.log", "ab") as log:
                self.procs[kind] = subprocess.Popen(
                    [*CLI, "consume", kind, "--metrics-port", "0", *extra.get(kind, [])],
                    env=child_env(settings),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items()}

    def stop(self) -> None:
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            p.wait(timeout=60)


def caught_up(settings: Settings, timeout: float = 120.0) -> None:
    """Wait until the consumers hold every partition of their input (a group's committed offsets
    alone say nothing of whether its new processes have joined: without this the first events
    of a run waited for them, half a second) and have nothing left from before (lag zero)."""
    from confluent_kafka.admin import AdminClient

    from engagement_platform.monitoring.lag import consumer_groups, measure_lag

    groups = consumer_groups(settings.mode)
    admin = AdminClient(client_config(settings.kafka_bootstrap_servers))

    def assigned(group: str, topic: str) -> bool:
        found = admin.list_topics(topic, timeout=10).topics.get(topic)
        partitions = len(found.partitions) if found is not None and not found.error else 0
        described = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
        held = {
            tp.partition
            for member in described.members
            for tp in member.assignment.topic_partitions
            if tp.topic == topic
        }
        return partitions > 0 and len(held) == partitions

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(assigned(g.group, g.topic) for g in groups):
            # a group that never committed is measured from the low watermark: on a fresh stack
            # its empty topics are caught up already
            lags = measure_lag(settings.kafka_bootstrap_servers, groups, with_age=False)
            if all(lag.total == 0 for lag in lags):
                return
        time.sleep(0.2)
    raise RuntimeError(f"the consumers did not join their groups and catch up within {timeout:g} s")


def process_pids(
    stack: Mapping[str, int], consumers: Mapping[str, int], writers: Sequence[int]
) -> dict[str, list[int]]:
    """The processes to sample, by the names the report shows: the stack's services and the
    consumers (PROCESS_NAMES renamed), the writer processes and this command (its watchers)."""
    named = {PROCESS_NAMES.get(name, name): [pid] for name, pid in {**stack, **consumers}.items()}
    return {**named, "writers": list(writers), "bench": [os.getpid()]}


def measure(
    settings: Settings,
    rate: float,
    duration: float,
    extra: dict[str, list[str]],
    tx_size: int,
    writers: int,
    cold: float = 0.0,
) -> Outcome:
    """One run at ``rate``; with ``cold`` seconds, writing starts at once (the consumers join
    while events flow) and the first ``cold`` seconds are reported apart from the ``duration``
    seconds after them."""
    consumers = ConsumerProcesses(settings, extra)
    pool: WriterPool | None = None
    try:
        pool = WriterPool(settings.postgres_dsn, writers, tx_size)
        if not cold:
            caught_up(settings)
        stack = Supervisor(settings)
        named = {s.name: r.pid for s in stack.services if (r := stack.running(s.name)) is not None}
        sampler = ProcessSampler(process_pids(named, consumers.pids(), pool.pids()))
        timeline = Timeline()
        since = datetime.now(UTC)
        watchers = [
            KafkaWatcher(timeline, settings),
            RedisWatcher(timeline, settings),
            ClickHouseWatcher(timeline, settings, since),
        ]
        for w in watchers:
            w.start()
        began, began_at = time.monotonic(), time.time()
        total = cold + duration
        with report.progress(f"{rate:,.0f} events/s", int(rate * total)) as bar:
            wrote = drive(pool, timeline, rate, total, bar)
        written = wrote.written
        seconds = time.monotonic() - began
        end = time.time()
        sampler.sample()
        for w in watchers:
            w.stop_at = end + DRAIN_S
        for w in watchers:
            w.join()
            if w.error is not None:
                raise RuntimeError(f"{type(w).__name__} failed: {w.error}") from w.error
        processes = sampler.finish()
        stages = {s: stage_figures(timeline.latencies_ms(s), written) for s in STAGES}
        ok, note = bounded_lag(timeline, end, rate)

        def figures(window: tuple[float, float]) -> dict[str, dict[str, float]]:
            in_window = len(timeline.committed_in(window))
            return {s: stage_figures(timeline.latencies_ms(s, window), in_window) for s in STAGES}

        windows, slices = {}, {}
        if cold:
            windows = {
                "first": figures((began_at, began_at + cold)),
                "steady": figures((began_at + cold, end + 1)),
            }
            for start, stop in cold_slices(cold):
                slices[f"{start:.0f}-{stop:.0f} s"] = figures((began_at + start, began_at + stop))
        return Outcome(
            rate,
            written,
            seconds,
            stages,
            ok,
            note,
            processes,
            tx_size,
            writers,
            wrote.late_s,
            wrote.commit_ms,
            windows,
            slices=slices,
        )
    finally:
        if pool is not None:
            pool.close()
        consumers.stop()


# --------------------------------------------------------------------------- output


def print_outcome(label: str, o: Outcome, processes: bool = True) -> None:
    report.print_table(
        f"{label}: {o.written:,} events at {o.achieved:,.0f}/s (asked {o.rate:,.0f}/s, {o.tx_size} per "
        f"transaction, {o.writers} connections) for {o.seconds:.0f} s; lag "
        f"{'bounded' if o.bounded else 'NOT bounded'} ({o.note})",
        ["Postgres commit ->", "events", "missing", "p50 ms", "p95 ms", "p99 ms", "max ms"],
        [[STAGE_LABELS.get(stage, stage), *o.stages[stage].values()] for stage in STAGES],
    )
    if not o.kept_up:
        report.say(f"{label}: {behind_line(o)}")
    if processes:
        report.print_table(
            "processes (CPU: % of one core, averaged over the run; RSS: peak MiB)",
            ["process", "CPU %", "RSS MiB"],
            [[name, f["cpu_percent"], f["rss_mib"]] for name, f in sorted(o.processes.items())],
        )


def restart_stack(settings: Settings) -> float:
    """Stop the local stack's services and start them again; the seconds `stack up` took."""
    supervisor = Supervisor(settings)
    supervisor.down(log=report.say)
    began = time.monotonic()
    supervisor.up(log=report.say)
    return time.monotonic() - began


def print_cold(label: str, o: Outcome) -> None:
    """The first minute and the steady state side by side, and their ratio at p99."""
    for name, title in (("first", "right after `stack up`"), ("steady", "the steady state after it")):
        report.print_table(
            f"{label}, {title}",
            ["Postgres commit ->", "events", "missing", "p50 ms", "p95 ms", "p99 ms", "max ms"],
            [[STAGE_LABELS.get(stage, stage), *o.windows[name][stage].values()] for stage in STAGES],
        )
    ratios = ", ".join(
        f"{STAGE_LABELS.get(s, s)} {o.windows['first'][s]['p99'] / o.windows['steady'][s]['p99']:.1f}x"
        for s in STAGES
        if o.windows["steady"][s]["p99"] > 0
    )
    if o.slices:
        report.print_table(
            f"{label}, right after `stack up` by {COLD_SLICE_S:.0f} s (p50 / p99 ms)",
            ["seconds", *(STAGE_LABELS.get(s, s) for s in STAGES)],
            [
                [name, *(f"{f[s]['p50']:,.0f} / {f[s]['p99']:,.0f}" for s in STAGES)]
                for name, f in o.slices.items()
            ],
        )
    up = f"`stack up` took {o.stack_up_s:.1f} s; " if o.stack_up_s is not None else ""
    report.say(f"{label}: {up}p99 right after it / steady p99: {ratios} (goal < 2x)")


def behind_line(o: Outcome) -> str:
    """Why the writers fell behind: Postgres's commit round trip caps what ``o.writers``
    connections can commit (more of them help), else the machine's cores were taken."""
    tx_asked = o.rate / o.tx_size
    ceiling = o.writers * 1000 / o.commit_ms if o.commit_ms > 0 else math.inf
    why = (
        f"a commit took {o.commit_ms:.1f} ms: {o.writers} connections commit at most ~{ceiling:,.0f} "
        f"of the {tx_asked:,.0f} transactions/s asked; more --connections"
        if ceiling < tx_asked / SATURATED
        else "the commits were fast enough: the writers' cores were taken"
    )
    return (
        f"the writers could not keep up: {o.achieved:,.0f} of {o.rate:,.0f} events/s asked "
        f"(at worst {o.late_s:.1f} s behind; {why})"
    )


@dataclass
class RateSearch:
    """Which rate ``--find-max`` tries next: up ``ladder`` until a rate is not held, then the
    middle of the highest held and the lowest not held, until they are within ``precision``
    of each other (``None``: done; ``best`` is the answer to hold)."""

    ladder: Sequence[float] = FIND_MAX_RATES
    precision: float = FIND_MAX_PRECISION
    held: list[float] = field(default_factory=list)
    failed: list[float] = field(default_factory=list)

    def record(self, rate: float, held: bool) -> None:
        (self.held if held else self.failed).append(rate)

    def best(self) -> float | None:
        """The highest rate held below every rate that failed."""
        ceiling = min(self.failed, default=math.inf)
        return max((r for r in self.held if r < ceiling), default=None)

    def next(self) -> float | None:
        low, high = self.best(), min(self.failed, default=None)
        if high is None:  # nothing failed yet: up the ladder
            return next((r for r in self.ladder if low is None or r > low), None)
        if low is None:  # the first rate failed: halve it, down to a tenth of the ladder's first
            half = high / 2
            return half if half >= self.ladder[0] / 10 else None
        if high / low <= 1 + self.precision:
            return None
        return float(round((low + high) / 2, -1))


def find_max(
    settings: Settings, args: argparse.Namespace, extra: dict[str, list[str]], label: str
) -> dict[str, Any]:
    """Probe rates (``--duration`` each) with RateSearch, then hold the best for ``--hold``
    seconds; a hold that fails counts as a failed rate and the search goes on below it."""
    search = RateSearch()
    steps: list[dict[str, Any]] = []
    held: Outcome | None = None
    while held is None:
        rate = search.next()
        hold = rate is None
        if rate is None and (rate := search.best()) is None:
            break
        seconds = args.hold if hold else args.duration
        writers = connections_for(rate, args.tx_size, args.connections)
        outcome = measure(settings, rate, seconds, extra, args.tx_size, writers)
        kind = f"hold {seconds:g} s" if hold else "probe"
        print_outcome(f"{label}, find-max {kind}", outcome, processes=hold)
        steps.append({"step": kind, **outcome.as_json()})
        search.record(rate, outcome.held)
        if hold and outcome.held:
            held = outcome
    best = held.achieved if held else 0.0
    report.say(
        f"{label}: highest rate held for {args.hold:g} s with bounded lag, {args.tx_size} per "
        f"transaction: {best:,.0f} events/s"
        + (f"; CPU there (% of one core): {cpu_line(held.processes)}" if held else "")
    )
    return {
        "find_max": steps,
        "highest_rate_held": round(best, 1),
        "processes_at_highest": held.processes if held else {},
    }


def cpu_line(processes: Mapping[str, Mapping[str, float]]) -> str:
    """``name CPU%`` per process, the busiest first."""
    ordered = sorted(processes.items(), key=lambda item: -item[1]["cpu_percent"])
    return ", ".join(f"{name} {f['cpu_percent']:.0f}" for name, f in ordered)


def run(args: argparse.Namespace, settings: Settings) -> int:
    report.setup_logging()
    variants = {"after": {}, "before": BEFORE}
    chosen = ["before", "after"] if args.variant == "both" else [args.variant]
    results: dict[str, Any] = {}
    for variant in chosen:
        extra = variants[variant]
        if args.find_max:
            results[variant] = find_max(settings, args, extra, variant)
        elif args.cold:
            if settings.mode != "local":
                raise UsageError("--cold restarts the local stack: EP_MODE=local only")
            stack_up_s = restart_stack(settings)
            writers = connections_for(args.rate, args.tx_size, args.connections)
            outcome = measure(
                settings, args.rate, args.duration, extra, args.tx_size, writers, cold=args.cold
            )
            outcome = dataclasses.replace(outcome, stack_up_s=stack_up_s)
            print_outcome(variant, outcome)
            print_cold(variant, outcome)
            results[variant] = outcome.as_json()
        else:
            writers = connections_for(args.rate, args.tx_size, args.connections)
            outcome = measure(settings, args.rate, args.duration, extra, args.tx_size, writers)
            print_outcome(variant, outcome)
            results[variant] = outcome.as_json()
    report.write_json(args.json, {"benchmark": "e2e", "results": results})
    return 0
