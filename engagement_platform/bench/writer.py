"""`bench e2e`'s writer: events into Postgres as an application writes them, never the limit.

``connections`` Postgres connections in autocommit, spread over up to one process per core with
a thread per connection; each commits ``tx_size`` events per transaction with one multi-row
``INSERT ... RETURNING`` (one round trip), paced to its share of the rate. Processes: the bench's
watchers parse every record of two topics in the parent, and the former writer, sharing their
GIL, topped out at ~5,000 events/s. Threads within: a connection mostly waits for its commit's
WAL flush, the GIL released. Each commit's ids and time go back to the parent in chunks.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.context import SpawnProcess
from typing import Any

import orjson

COLUMNS = "(content_id, user_id, event_type, event_ts, duration_ms, device, raw_payload)"
ROW = "(%s, %s, %s, %s, %s, %s, %s)"
SEND_EVERY_S = 0.02  # a writer process hands its connections' commits to the parent this often
READY_TIMEOUT_S = 60.0
CONNECTION_TX_S = 25  # transactions/s asked of one connection by default
MAX_CONNECTIONS = 64  # of the local Postgres's 200


def insert_sql(tx_size: int) -> str:
    """One statement, one transaction in autocommit: ``tx_size`` rows, their ids back."""
    return f"INSERT INTO engagement_events {COLUMNS} VALUES {', '.join([ROW] * tx_size)} RETURNING id"


@dataclass
class Pacer:
    """When each transaction of a connection is due: ``tx_size / rate`` s apart from ``start``.

    A writer that falls behind does not skip transactions; it commits the next one at once,
    so a short stall is caught up and a writer that cannot keep up shows in ``behind``."""

    rate: float  # events/s of this connection
    tx_size: int
    start: float

    def due(self, tx_index: int) -> float:
        return self.start + tx_index * self.tx_size / self.rate

    def wait(self, tx_index: int, now: float) -> float:
        """Seconds to sleep before transaction ``tx_index`` (0 when it is due or late)."""
        return max(self.due(tx_index) - now, 0.0)

    def behind(self, tx_index: int, now: float) -> float:
        """Seconds transaction ``tx_index`` is late at ``now`` (0 when on time)."""
        return max(now - self.due(tx_index), 0.0)


def kept_up(written: int, rate: float, seconds: float, enough: float) -> bool:
    """Whether ``written`` events in ``seconds`` reached ``enough`` (a share) of ``rate``."""
    return seconds > 0 and written / seconds >= enough * rate


@dataclass(frozen=True)
class Committed:
    """A chunk of one writer's commits: event ids and their commit times (epoch s)."""

    ids: list[int]
    at: list[float]


class _Outbox:
    """The commits of one process's connections, sent to the parent together every
    SEND_EVERY_S: a message per connection per interval cost the parent half a core at
    1,000 events/s (40 connections, 2,000 messages/s to unpickle beside its watchers)."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.ids: list[int] = []
        self.at: list[float] = []

    def add(self, ids: list[int], at: float) -> None:
        with self.lock:
            self.ids += ids
            self.at += [at] * len(ids)

    def flush(self) -> None:
        with self.lock:
            chunk, self.ids, self.at = Committed(self.ids, self.at), [], []
        if chunk.ids:
            self.out.put(("commits", chunk))

    def run(self, stop: threading.Event) -> None:
        """Flush every SEND_EVERY_S until ``stop``, then once more."""
        while not stop.wait(SEND_EVERY_S):
            self.flush()
        self.flush()


class _Connection:
    """One connection of a writer process: its own generator and schedule."""

    def __init__(self, dsn: str, seed: int, tx_size: int) -> None:
        from engagement_platform.source.simulator import EventGenerator, Simulator

        self.sim = Simulator(dsn, log=lambda _m: None)
        self.generator = EventGenerator(self.sim.ensure_content(50), seed=seed)
        self.sim.conn.autocommit = True
        self.tx_size = tx_size
        self.written = 0
        self.late = 0.0
        self.transactions = 0
        self.in_commit = 0.0  # seconds spent waiting for INSERT ... RETURNING (the commit)

    def write(self, outbox: _Outbox, start: float, rate: float, seconds: float) -> None:

        sql, tx_size = insert_sql(self.tx_size), self.tx_size
        pacer, end = Pacer(rate, tx_size, start), start + seconds
        tx = 0
        with self.sim.conn.cursor() as cur:
            while (now := time.time()) < end:
                self.late = max(self.late, pacer.behind(tx, now))
                time.sleep(pacer.wait(tx, now))
                events = self.generator.batch(tx_size, lambda: datetime.now(UTC))
                params: list[object] = []
                for e in events:
                    params += [
                        str(e.content_id), str(e.user_id), e.event_type, e.event_ts, e.duration_ms,
                        e.device, orjson.dumps(e.raw_payload).decode(),
                    ]  # fmt: skip
                began = time.time()
                cur.execute(sql, params)
                committed = time.time()
                self.in_commit += committed - began
                self.transactions += 1
                got = [r[0] for r in cur.fetchall()]
                outbox.add(got, committed)
                self.written += len(got)
                tx += 1


def _work(dsn: str, index: int, connections: int, tx_size: int, out: Any, go: Any) -> None:
    """A writer process: open ``connections`` connections, say ready, wait for ``go`` (start
    time, events/s per connection, seconds), write from a thread per connection (each mostly
    waits on its commit, the GIL released), then say ``("done", index, written, late,
    transactions, seconds in commits)``."""
    import psycopg2

    errors: list[BaseException] = []
    try:
        conns = [_Connection(dsn, 1000 * index + i, tx_size) for i in range(connections)]
        out.put(("ready", index, os.getpid()))
        start, rate, seconds = go.get()
        outbox, stop = _Outbox(out), threading.Event()
        sender = threading.Thread(target=outbox.run, args=(stop,))
        sender.start()

        def write(conn: _Connection) -> None:
            try:
                conn.write(outbox, start, rate, seconds)
            except (psycopg2.Error, OSError) as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(c,)) for c in conns]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        sender.join()
        for c in conns:
            c.sim.close()
        if errors:
            raise errors[0]
        out.put(
            (
                "done",
                index,
                sum(c.written for c in conns),
                max(c.late for c in conns),
                sum(c.transactions for c in conns),
                sum(c.in_commit for c in conns),
            )
        )
    except (psycopg2.Error, OSError) as exc:
        out.put(("error", index, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"))


@dataclass(frozen=True)
class WriteResult:
    written: int
    seconds: float
    late_s: float  # the most any connection's transaction was behind its schedule
    commit_ms: float  # a transaction's mean round trip (its INSERT, committed)


class WriterPool:
    """``connections`` Postgres connections over up to one writer process per core, all
    connected before the clock runs."""

    def __init__(self, dsn: str, connections: int, tx_size: int) -> None:
        ctx = multiprocessing.get_context("spawn")  # the parent runs threads: no fork
        self.connections = connections
        per_process = spread(connections, os.cpu_count() or 2)
        self.out = ctx.Queue()
        self.go = [ctx.Queue() for _ in per_process]
        self.procs: list[SpawnProcess] = [
            ctx.Process(target=_work, args=(dsn, i, n, tx_size, self.out, self.go[i]), daemon=True)
            for i, n in enumerate(per_process)
        ]
        for p in self.procs:
            p.start()
        ready = 0
        deadline = time.monotonic() + READY_TIMEOUT_S
        while ready < len(self.procs):
            message = self._next(deadline)
            if message[0] == "error":
                raise RuntimeError(f"bench e2e: writer {message[1]} failed: {message[2]}")
            ready += message[0] == "ready"

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def _next(self, deadline: float) -> tuple[Any, ...]:
        while True:
            try:
                return self.out.get(timeout=0.5)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise RuntimeError("bench e2e: the writers stopped answering") from None
                if not all(p.is_alive() for p in self.procs):
                    raise RuntimeError("bench e2e: a writer process died (see its output above)") from None

    def write(
        self,
        rate: float,
        seconds: float,
        on_commits: Callable[[Committed], None],
        on_count: Callable[[int], None],
    ) -> WriteResult:
        """Write at ``rate`` for ``seconds``, handing each chunk of commits to ``on_commits``."""
        start = time.time() + 0.2
        for go in self.go:
            go.put((start, rate / self.connections, seconds))
        written, done, late, transactions, in_commit = 0, 0, 0.0, 0, 0.0
        deadline = time.monotonic() + seconds + READY_TIMEOUT_S
        while done < len(self.procs):
            message = self._next(deadline)
            if message[0] == "commits":
                on_commits(message[1])
                written += len(message[1].ids)
                on_count(written)
            elif message[0] == "done":
                done += 1
                late = max(late, message[3])
                transactions += message[4]
                in_commit += message[5]
            elif message[0] == "error":
                raise RuntimeError(f"bench e2e: writer {message[1]} failed: {message[2]}")
        commit_ms = in_commit / transactions * 1000 if transactions else 0.0
        return WriteResult(written, max(time.time() - start, 1e-9), late, commit_ms)

    def close(self) -> None:
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
        self.out.close()
        for go in self.go:
            go.close()


def spread(connections: int, processes: int) -> list[int]:
    """Connections per writer process: at most ``processes`` of them, as even as can be."""
    count = max(1, min(connections, processes))
    return [connections // count + (i < connections % count) for i in range(count)]


def connections_for(rate: float, tx_size: int, given: int | None) -> int:
    """How many connections write: ``given``, else one per CONNECTION_TX_S transactions/s
    asked, from 2 to MAX_CONNECTIONS. Each waits for its commit's WAL flush: 1-4 ms on this
    machine's shared disk, 20-60 ms while other stacks flush too (10 connections then wrote 650
    transactions/s, 30 wrote 1,240, 60 wrote 1,380; 20 asked for 1,000 wrote 727), so many
    commits share each flush."""
    if given is not None:
        return given
    return max(2, min(MAX_CONNECTIONS, math.ceil(rate / tx_size / CONNECTION_TX_S)))
