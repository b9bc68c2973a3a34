"""The simulator: content rows and realistic engagement events, written into Postgres.

Events go in batches, as one multi-row INSERT per transaction, which keeps the simulator far
from being the pipeline's bottleneck (tens of thousands of events per second into the local
Postgres). Not COPY: COPY writes many rows into one WAL record, so they share an LSN, and
Debezium 3.7 loses the rest of such a record's rows when it resumes from an offset at its first
row (docs/design/delivery.md). Generation is pure and seeded, so tests can reason about what a
run wrote.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import orjson
import psycopg2
import psycopg2.errors
from psycopg2 import sql

from engagement_platform.domain import (
    CONTENT_TYPES,
    DEVICES,
    KNOWN_EVENT_TYPES,
    Content,
    Event,
    event_type_error,
)
from engagement_platform.pg import scalar

# The seed's mix for the known types; any other type given to --event-types gets
# OTHER_TYPE_WEIGHT (against the known types' 1.0) and, like a click, no duration.
KNOWN_WEIGHTS = {"play": 0.45, "pause": 0.2, "finish": 0.15, "click": 0.2}
OTHER_TYPE_WEIGHT = 0.05
EVENT_TYPE_CHECK = "engagement_events_event_type_check"
DEVICE_WEIGHTS = (0.3, 0.25, 0.25, 0.1, 0.06, 0.04)
COUNTRIES = ("US", "GB", "DE", "FR", "BR", "IN", "JP", "CA", "AU", "NL")
APP_VERSIONS = ("5.2.0", "5.2.1", "5.3.0", "6.0.0-beta")
REFERRERS = ("home", "search", "push", "newsletter", "social", "deeplink")
WORDS = [
    "signal",
    "noise",
    "data",
    "stream",
    "river",
    "summit",
    "orbit",
    "lantern",
    "harbor",
    "meadow",
    "ember",
    "quartz",
    "cascade",
    "pioneer",
    "atlas",
    "vector",
    "canvas",
    "echo",
    "horizon",
    "pulse",
    "ledger",
    "compass",
    "mosaic",
    "tide",
]


def make_content(rng: random.Random, index: int, now: datetime) -> Content:
    content_type = rng.choice(CONTENT_TYPES)
    if content_type == "podcast":
        length: int | None = rng.randint(15 * 60, 90 * 60)
    elif content_type == "video":
        length = rng.randint(60, 30 * 60)
    else:  # newsletters: an estimated reading time, often unknown
        length = rng.randint(120, 900) if rng.random() < 0.5 else None
    words = rng.sample(WORDS, 3)
    title = " ".join(w.capitalize() for w in words)
    return Content(
        id=uuid.UUID(int=rng.getrandbits(128), version=4),
        slug=f"{content_type}-{'-'.join(words)}-{index}",
        title=f"{title} #{index}",
        content_type=content_type,
        length_seconds=length,
        publish_ts=now - timedelta(seconds=rng.randint(0, 90 * 86400)),
    )


def parse_event_types(raw: str) -> tuple[str, ...]:
    """``--event-types``: a comma-separated list of distinct types that follow the rule;
    raises ValueError with one line otherwise."""
    types = tuple(raw.split(","))
    if raw == "":
        raise ValueError(f"--event-types: give at least one type, e.g. {','.join(KNOWN_EVENT_TYPES)}")
    for t in types:
        problem = event_type_error(t)
        if problem is not None:
            raise ValueError(f"--event-types: {problem}")
    if len(set(types)) != len(types):
        twice = next(t for t in types if types.count(t) > 1)
        raise ValueError(f"--event-types: {twice!r} is given twice")
    return types


def event_weights(event_types: Sequence[str]) -> tuple[float, ...]:
    """Today's weights for the known types, :data:`OTHER_TYPE_WEIGHT` for any other."""
    return tuple(KNOWN_WEIGHTS.get(t, OTHER_TYPE_WEIGHT) for t in event_types)


def make_event(
    rng: random.Random,
    content: Content,
    user_id: uuid.UUID,
    event_ts: datetime,
    session_id: str,
    event_types: Sequence[str] = KNOWN_EVENT_TYPES,
    weights: Sequence[float] | None = None,
) -> Event:
    event_type = rng.choices(event_types, weights or event_weights(event_types))[0]
    length_ms = (content.length_seconds or rng.randint(60, 600)) * 1000
    if event_type == "finish":
        duration_ms: int | None = int(length_ms * rng.uniform(0.85, 1.0))
    elif event_type in ("play", "pause"):  # how far the user got
        duration_ms = int(length_ms * rng.betavariate(1.2, 2.5))
    else:  # click, and any type the simulator has no rule for: an action, no duration
        duration_ms = None
    return Event(
        content_id=content.id,
        user_id=user_id,
        event_type=event_type,
        event_ts=event_ts,
        duration_ms=duration_ms,
        device=rng.choices(DEVICES, DEVICE_WEIGHTS)[0],
        raw_payload={
            "app_version": rng.choice(APP_VERSIONS),
            "country": rng.choice(COUNTRIES),
            "referrer": rng.choice(REFERRERS),
            "session_id": session_id,
        },
    )


class EventGenerator:
    """Events over a fixed content set and user pool; popularity is skewed, as in life."""

    def __init__(
        self,
        contents: Sequence[Content],
        *,
        users: int = 2000,
        seed: int | None = None,
        event_types: Sequence[str] = KNOWN_EVENT_TYPES,
    ) -> None:
        if not contents:
            raise ValueError("no content to generate events for")
        self.event_types = tuple(event_types)
        self.event_weights = event_weights(self.event_types)
        self.rng = random.Random(seed)
        self.contents = list(contents)
        # a Zipf-like skew: a few pieces of content get most of the engagement
        self.weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(self.contents))]
        self.users = [uuid.UUID(int=self.rng.getrandbits(128), version=4) for _ in range(users)]

    def batch(self, count: int, ts: Callable[[], datetime]) -> list[Event]:
        rng = self.rng
        contents = rng.choices(self.contents, self.weights, k=count)
        return [
            make_event(
                rng,
                c,
                rng.choice(self.users),
                ts(),
                uuid.UUID(int=rng.getrandbits(128)).hex[:16],
                self.event_types,
                self.event_weights,
            )
            for c in contents
        ]


def event_columns(events: Sequence[Event]) -> tuple[list[object], ...]:
    """The INSERT's parameters: a list per column (ids and JSON as text, a missing duration as None)."""
    return (
        [str(e.content_id) for e in events],
        [str(e.user_id) for e in events],
        [e.event_type for e in events],
        [e.event_ts for e in events],
        [e.duration_ms for e in events],
        [e.device for e in events],
        [orjson.dumps(e.raw_payload).decode() for e in events],
    )


# a heap_insert per row, hence a WAL record and an LSN per event (COPY shares one among many)
INSERT_EVENTS = (
    "INSERT INTO engagement_events "
    "(content_id, user_id, event_type, event_ts, duration_ms, device, raw_payload) "
    "SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::timestamptz[], %s::int[], %s::text[], "
    "%s::jsonb[])"
)


class Simulator:
    def __init__(self, dsn: str, *, seed: int | None = None, log: Callable[[str], None] = print) -> None:
        self.dsn = dsn
        self.seed = seed
        self.log = log
        self.conn = psycopg2.connect(dsn, application_name="engagement-platform-simulator")

    def close(self) -> None:
        self.conn.close()

    def ensure_content(self, count: int) -> list[Content]:
        """Make sure at least ``count`` content rows exist; return all of them."""
        with self.conn, self.conn.cursor() as cur:
            have = scalar(cur, "SELECT count(*) FROM content")
            if have < count:
                rng = random.Random(self.seed)
                now = datetime.now(UTC)
                salt = uuid.uuid4().hex[:6]  # slugs stay unique across runs
                rows = [make_content(rng, have + i, now) for i in range(count - have)]
                cur.executemany(
                    "INSERT INTO content (id, slug, title, content_type, length_seconds, publish_ts) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [
                        (
                            str(c.id),
                            f"{c.slug}-{salt}",
                            c.title,
                            c.content_type,
                            c.length_seconds,
                            c.publish_ts,
                        )
                        for c in rows
                    ],
                )
                self.log(f"simulate: created {len(rows)} content rows ({have} existed)")
            cur.execute(
                # by id: random with respect to type, so the popularity skew favours no content type
                "SELECT id, slug, title, content_type, length_seconds, publish_ts FROM content ORDER BY id"
            )
            return [Content(uuid.UUID(str(r[0])), r[1], r[2], r[3], r[4], r[5]) for r in cur.fetchall()]

    def check_event_types(self, event_types: Sequence[str]) -> None:
        """Raise :class:`EventTypeRefused` before writing anything if Postgres' CHECK
        refuses one of ``event_types``: each is tried on a temporary copy of the table's
        constraints, so nothing reaches the table, its id sequence or the CDC stream. The CHECK
        is copied from the catalogue (readable by every role): the simulator's role may insert
        into the table but not read it, which ``LIKE`` would need."""
        refused = []
        with self.conn, self.conn.cursor() as cur:
            cur.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'engagement_events'::regclass AND conname = %s",
                (EVENT_TYPE_CHECK,),
            )
            row = cur.fetchone()
            check = sql.SQL(row[0]) if row else sql.SQL("CHECK (true)")  # the catalogue's own text
            cur.execute(
                sql.SQL(
                    "CREATE TEMP TABLE simulate_type_probe (event_type text, CONSTRAINT {} {}) ON COMMIT DROP"
                ).format(sql.Identifier(EVENT_TYPE_CHECK), check)
            )
            for event_type in event_types:
                cur.execute("SAVEPOINT probe")
                try:
                    cur.execute("INSERT INTO simulate_type_probe (event_type) VALUES (%s)", (event_type,))
                except psycopg2.errors.CheckViolation as exc:
                    if exc.diag.constraint_name != EVENT_TYPE_CHECK:
                        raise
                    refused.append(event_type)
                cur.execute("ROLLBACK TO SAVEPOINT probe")
        if refused:
            raise EventTypeRefused(refused)

    def insert(self, events: Sequence[Event]) -> None:
        try:
            with self.conn, self.conn.cursor() as cur:
                cur.execute(INSERT_EVENTS, event_columns(events))
        except psycopg2.errors.CheckViolation as exc:  # the CHECK changed while we ran
            if exc.diag.constraint_name != EVENT_TYPE_CHECK:
                raise
            raise EventTypeRefused(sorted({e.event_type for e in events})) from None


class EventTypeRefused(RuntimeError):
    """Postgres' CHECK on ``engagement_events.event_type`` refuses a type: one line on how to add it."""

    def __init__(self, event_types: Sequence[str]) -> None:
        names = ", ".join(repr(t) for t in event_types)
        super().__init__(
            f"simulate: Postgres refuses event type {names} ({EVENT_TYPE_CHECK}); add it with a "
            "Postgres migration: `engagement-platform migrate new postgres NAME`, edit the file "
            "to widen the CHECK, then `engagement-platform migrate up`"
        )
        self.event_types = tuple(event_types)


class Progress:
    """One line every few seconds: total written and the recent rate."""

    def __init__(self, log: Callable[[str], None], every: float = 2.0, total: int | None = None) -> None:
        self.log, self.every, self.total = log, every, total
        self.start = self.last = time.monotonic()
        self.count = self.last_count = 0

    def add(self, n: int) -> None:
        self.count += n
        now = time.monotonic()
        if now - self.last >= self.every:
            rate = (self.count - self.last_count) / (now - self.last)
            of = f"/{self.total:,}" if self.total else ""
            self.log(f"simulate: {self.count:,}{of} events, {rate:,.0f} events/s")
            self.last, self.last_count = now, self.count

    def done(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        return (
            f"simulate: wrote {self.count:,} events in {elapsed:.1f}s ({self.count / elapsed:,.0f} events/s)"
        )


def chunks(total: int, size: int) -> Iterator[int]:
    while total > 0:
        n = min(size, total)
        yield n
        total -= n


class StopFlag:
    """Set by Ctrl-C / SIGTERM; loops finish the batch in hand, then stop."""

    def __init__(self) -> None:
        self.set = False

    def __call__(self, *_: object) -> None:
        self.set = True


def write_count(sim: Simulator, gen: EventGenerator, total: int, stop: StopFlag, batch: int = 10_000) -> int:
    """Exactly ``total`` events stamped now (fewer only if stopped)."""
    progress = Progress(sim.log, total=total)
    for n in chunks(total, batch):
        if stop.set:
            break
        sim.insert(gen.batch(n, lambda: datetime.now(UTC)))
        progress.add(n)
    sim.log(progress.done())
    return progress.count


def write_backfill(
    sim: Simulator, gen: EventGenerator, total: int, days: int, stop: StopFlag, batch: int = 10_000
) -> int:
    """``total`` events spread uniformly over the past ``days`` days."""
    now = datetime.now(UTC)
    span = days * 86400.0
    rng = gen.rng

    def past() -> datetime:
        return now - timedelta(seconds=rng.uniform(0.0, span))

    progress = Progress(sim.log, total=total)
    for n in chunks(total, batch):
        if stop.set:
            break
        sim.insert(gen.batch(n, past))
        progress.add(n)
    sim.log(progress.done())
    return progress.count


def write_at_rate(
    sim: Simulator,
    gen: EventGenerator,
    rate: float,
    burst: int,
    duration: float | None,
    stop: StopFlag,
    jitter: float = 0.2,
) -> int:
    """``burst`` events at a time, ``rate`` events/s on average, until ``duration`` or stopped."""
    progress = Progress(sim.log, every=5.0)
    interval = burst / rate
    start = time.monotonic()
    next_at = start
    while not stop.set and (duration is None or time.monotonic() - start < duration):
        sim.insert(gen.batch(burst, lambda: datetime.now(UTC)))
        progress.add(burst)
        next_at += interval * gen.rng.uniform(1 - jitter, 1 + jitter)
        pause = next_at - time.monotonic()
        if pause > 0:
            # sleep in slices so Ctrl-C is honoured promptly
            end = time.monotonic() + pause
            while not stop.set and (left := end - time.monotonic()) > 0:
                time.sleep(min(0.1, left))
        else:
            next_at = time.monotonic()  # fell behind: do not try to catch up in a burst
    sim.log(progress.done())
    return progress.count


def run(
    dsn: str,
    *,
    content: int,
    events: int | None,
    rate: float | None,
    burst: int,
    duration: float | None,
    backfill_days: int | None,
    seed: int | None,
    users: int,
    event_types: Sequence[str] = KNOWN_EVENT_TYPES,
    log: Callable[[str], None] = print,
) -> int:
    """The `simulate` command: check the types against Postgres, ensure content, then one of
    bulk / backfill / rate mode."""
    import signal

    stop = StopFlag()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    sim = Simulator(dsn, seed=seed, log=log)
    try:
        sim.check_event_types(event_types)
        gen = EventGenerator(sim.ensure_content(content), users=users, seed=seed, event_types=event_types)
        if backfill_days is not None:
            total = events if events is not None else 5_000 * backfill_days
            return write_backfill(sim, gen, total, backfill_days, stop)
        if events is not None:
            return write_count(sim, gen, events, stop)
        assert rate is not None
        return write_at_rate(sim, gen, rate, burst, duration, stop)
    finally:
        sim.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
