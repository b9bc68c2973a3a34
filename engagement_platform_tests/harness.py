"""What the tests share: stacks on free ports, the CLI, Dagster's CLI, waiting, child processes,
producing to and reading topics, committed offsets.

A stack lives in its own temporary ``EP_HOME`` so it never touches a stack started by
``make up``; it is started and stopped through the real CLI, as a user would.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import orjson
import psycopg2
import redis
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from engagement_platform import settings as settings_module
from engagement_platform.local_stack.supervisor import Supervisor
from engagement_platform.migrations.files import Migration, clickhouse_migrations
from engagement_platform.monitoring import reconcile
from engagement_platform.monitoring.reconcile import IdDiff
from engagement_platform.settings import Settings
from engagement_platform.streaming import kafka_io, topics
from engagement_platform.streaming.leaderboard import Batch, Keys, Rules, aggregate, decoder
from engagement_platform.warehouse.ddl import connect_settings, split_statements

if TYPE_CHECKING:  # the Dagster code loads only in the tests that build sensors
    import random
    from datetime import datetime

    import dagster as dg
    from clickhouse_connect.driver.client import Client
    from psycopg2.extensions import connection as PgConnection

    from engagement_platform.domain import Content


CLI = [sys.executable, "-m", "engagement_platform.cli"]


def free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out, so nothing else is listening on them."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def make_ep_home(prefix: str) -> Path:
    # world-traversable: PostgreSQL runs as 'nobody' when the tests run as root
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def stack_env(ep_home: Path) -> dict[str, str]:
    pg, kafka, controller, redis, clickhouse, connect = free_ports(6)
    return {
        "EP_HOME": str(ep_home),
        "POSTGRES_PORT": str(pg),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "KAFKA_CONTROLLER_PORT": str(controller),
        # consumers of concurrent tests must not fight over ports: a test that reads /metrics
        # gives its consumer a port of its own
        "ENRICH_METRICS_PORT": "0",
        "LEADERBOARD_METRICS_PORT": "0",
        "WAREHOUSE_METRICS_PORT": "0",
        "REDIS_PORT": str(redis),
        "CLICKHOUSE_PORT": str(clickhouse),
        "CONNECT_URL": f"http://127.0.0.1:{connect}",
    }


def free_strided_ports(count: int, stride: int, tries: int = 200) -> int:
    """A port ``p`` such that ``p``, ``p + stride``, ... (``count`` of them) are all free now: where
    a local Kafka cluster or a second Connect worker derives its further ports from the first.

    Drawn below the kernel's ephemeral range: a node of a cluster is down now and then, and the
    others keep connecting to its ports meanwhile; in the ephemeral range one of those attempts
    can get the port itself as its local end (a TCP self-connect) and the node cannot bind again.
    """
    import random

    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(tries):
        base = random.randrange(10_000, low - stride * count)  # noqa: S311 - not a secret
        sockets = []
        try:
            for i in range(count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", base + stride * i))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise AssertionError(f"no {count} free ports {stride} apart after {tries} tries")


def cluster_env(brokers: int = 3, workers: int = 2) -> dict[str, str]:
    """What turns ``stack_env`` into a local Kafka cluster of ``brokers`` nodes with ``workers``
    Connect workers, their derived ports (``PORT_STRIDE`` apart) free too."""
    from engagement_platform.settings import PORT_STRIDE

    return {
        "KAFKA_BROKERS": str(brokers),
        "CONNECT_WORKERS": str(workers),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_strided_ports(brokers, PORT_STRIDE)}",
        "KAFKA_CONTROLLER_PORT": str(free_strided_ports(brokers, PORT_STRIDE)),
        "CONNECT_URL": f"http://127.0.0.1:{free_strided_ports(workers, PORT_STRIDE)}",
    }


@dataclass
class StackHandle:
    """A running stack: its settings, the environment that reaches it, and its supervisor."""

    overrides: dict[str, str]
    settings: Settings = field(init=False)
    supervisor: Supervisor = field(init=False)

    def __post_init__(self) -> None:
        self.settings = settings_module.load(self.env)
        self.supervisor = Supervisor(self.settings)

    @property
    def env(self) -> dict[str, str]:
        """The full environment for a child process that should use this stack."""
        return {**os.environ, **self.overrides}

    def tails(self, lines: int = 15) -> str:
        """The last lines of every log under EP_HOME: what a failed test should show."""
        out = []
        home = self.settings.ep_home
        for log in sorted([*home.glob("*/*.log"), *home.glob("test-logs/*.log")]):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.relative_to(home)}\n" + "\n".join(text))
        return "\n".join(out)

    def cli(
        self, *args: str, check: bool = True, timeout: float = 300, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The CLI on this stack (``env``: variables to change, e.g. CLICKHOUSE_DATABASE)."""
        result = subprocess.run(
            [*CLI, *args], env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"engagement-platform {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result


def materialize(handle: StackHandle, selection: str, env: Mapping[str, str] | None = None):  # type: ignore[no-untyped-def]
    """Materialize assets with Dagster's own CLI, as a user would; returns the CompletedProcess."""
    from engagement_platform.local_stack.up import materialize_argv

    return subprocess.run(
        materialize_argv(selection),
        env={**handle.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def start_stack(
    prefix: str, services: tuple[str, ...] = (), extra: Mapping[str, str] | None = None
) -> StackHandle:
    handle = StackHandle({**stack_env(make_ep_home(prefix)), **(extra or {})})
    handle.cli("stack", "up", *services)
    return handle


@contextlib.contextmanager
def set_up_stack(prefix: str, extra: Mapping[str, str] | None = None) -> Iterator[StackHandle]:
    """A stack of a module's own with the set-up assets materialized, as `up` does first
    (``extra``: variables of its own, e.g. EP_MIGRATIONS_DIR)."""
    from engagement_platform.local_stack.up import SETUP_ASSETS

    handle = start_stack(prefix, extra=extra)
    try:
        result = materialize(handle, SETUP_ASSETS)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        yield handle
    finally:
        stop_stack(handle)


def ddl_statements(mode: str, up_to: int = 999) -> list[tuple[Migration, str]]:
    """Each statement of clickhouse_ddl/'s files for ``mode`` (versions up to ``up_to``), with its file."""
    return [
        (m, statement)
        for m in clickhouse_migrations(mode)
        if m.version <= up_to
        for statement in split_statements(m.path.read_text())
    ]


@contextlib.contextmanager
def scratch_databases(settings: Settings, prefix: str = "scratch") -> Iterator[Settings]:
    """A new, empty Postgres database and ClickHouse database of one name on the stack, as
    settings pointing at them (``POSTGRES_DB``/``CLICKHOUSE_DATABASE``); both dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(settings.postgres_dsn)
    admin.autocommit = True
    ch = connect_settings(settings, "default")
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")  # a name of our own making
        ch.command("CREATE DATABASE {db:Identifier}", parameters={"db": name})
        yield settings.model_copy(update={"postgres_db": name, "clickhouse_database": name})
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
        ch.command("DROP DATABASE IF EXISTS {db:Identifier}", parameters={"db": name})
        ch.close()


def database_env(settings: Settings) -> dict[str, str]:
    """The environment that points a child process at ``settings``' two databases."""
    return {"POSTGRES_DB": settings.postgres_db, "CLICKHOUSE_DATABASE": settings.clickhouse_database}


def flock_waiters(path: Path) -> int:
    """How many flock requests on ``path`` are blocked now (from /proc/locks): shows that a
    process is waiting at a gate without timing anything."""
    inode = f":{path.stat().st_ino} "
    return sum(1 for line in Path("/proc/locks").read_text().splitlines() if "->" in line and inode in line)


def newest_event_id(settings: Settings) -> int:
    """The highest engagement_events id in Postgres (0 when there is none)."""
    conn = psycopg2.connect(settings.postgres_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 0) FROM engagement_events")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def wal_position(dsn: str, slot: str | None = None) -> int:
    """As a number: the slot's confirmed_flush_lsn (where Postgres resumes its stream after a
    restart) when ``slot`` is given, else the server's current WAL position."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            if slot is None:
                cur.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
            else:
                lsn = "confirmed_flush_lsn - '0/0'::pg_lsn"
                cur.execute(f"SELECT {lsn} FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def postgres_clickhouse_diff(settings: Settings) -> IdDiff:
    """Postgres's event ids against ClickHouse FINAL's, now."""
    pg, ch = psycopg2.connect(settings.postgres_dsn), connect_settings(settings)
    try:
        return reconcile.diff_ids(postgres_ids(pg), clickhouse_ids(ch))
    finally:
        pg.close()
        ch.close()


def wait_clickhouse_holds_postgres(
    settings: Settings, timeout: float = 180, describe: Callable[[], str] = lambda: ""
) -> IdDiff:
    """Wait until ClickHouse FINAL holds exactly the Postgres ids; the last comparison. On a
    timeout, what was missing and extra, and ``describe()``."""
    diffs: list[IdDiff] = []

    def exact() -> bool:
        diffs.append(postgres_clickhouse_diff(settings))
        return diffs[-1].exact

    try:
        wait_for(exact, timeout, "ClickHouse to hold exactly the Postgres ids", step=1.0)
    except AssertionError as exc:
        if not diffs:
            raise
        d = diffs[-1]
        raise AssertionError(
            f"ClickHouse holds {d.sink:,} of {d.source:,} events after {timeout:.0f}s: "
            f"{len(d.missing):,} missing (e.g. {sorted(d.missing)[:10]}), {len(d.extra):,} extra"
            f"\n{where_missing(settings, set(d.missing))}\n{describe()}"
        ) from exc
    return diffs[-1]


def topic_event_ids(bootstrap: str, topic: str, field: str) -> set[int]:
    """Every ``field`` value (an event id) in ``topic`` now, read from the start to the end."""
    total = sum(high - low for low, high in watermarks(bootstrap, topic).values())
    ids: set[int] = set()
    for m in read_topic(bootstrap, topic, until=lambda ms: len(ms) >= total, timeout=120, settle=0):
        with contextlib.suppress(orjson.JSONDecodeError, TypeError, KeyError):  # poison records
            ids.add(orjson.loads(m.value())[field])
    return ids


def where_missing(settings: Settings, missing: set[int]) -> str:
    """Of the events ``missing`` from ClickHouse, how many each topic on their way holds: says
    which stage lost them."""
    if not missing:
        return "nothing missing"
    b = settings.kafka_bootstrap_servers
    found = {
        topics.EVENTS_FLAT: missing & topic_event_ids(b, topics.EVENTS_FLAT, "id"),
        topics.ENRICHED: missing & topic_event_ids(b, topics.ENRICHED, "event_id"),
    }
    held = ", ".join(f"{topic} holds {len(ids):,}" for topic, ids in found.items())
    return f"of {len(missing):,} missing (ids {min(missing)}..{max(missing)}): {held}\n{group_lags(settings)}"


def group_lags(settings: Settings) -> str:
    """Each consumer group's committed offsets against the broker's high watermarks: tells a
    consumer that stopped fetching (its own cached lag says 0) from one that has everything."""
    b = settings.kafka_bootstrap_servers
    inputs = {"enrich": topics.EVENTS_FLAT, "warehouse": topics.ENRICHED, "leaderboard": topics.ENRICHED}
    lines = []
    for group, topic in inputs.items():
        highs = {p: high for p, (_low, high) in watermarks(b, topic).items()}
        lines.append(
            f"{group} on {topic}: committed {committed_offsets(b, group, topic)}, high watermarks {highs}"
        )
    return "\n".join(lines)


def watermarks(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """Partition -> (low, high) watermark of ``topic``, asked of the broker now."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-marks-{uuid.uuid4().hex}"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), 10) for p in parts}
    finally:
        consumer.close()


def stop_stack(handle: StackHandle) -> None:
    if os.environ.get("EP_TEST_KEEP_STACK"):  # for a post-mortem; `stack down` it afterwards
        print(f"EP_TEST_KEEP_STACK: left running, EP_HOME={handle.settings.ep_home}")
        return
    records = [handle.supervisor.running(s.name) for s in handle.supervisor.services]
    handle.cli("stack", "down")
    from engagement_platform.local_stack.process import is_alive

    left = [r for r in records if r is not None and is_alive(r)]
    shutil.rmtree(handle.settings.ep_home, ignore_errors=True)
    assert not left, f"processes left behind by stack down: {left}"


T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    *,
    step: float = 0.1,
    alive: Callable[[], bool] | None = None,
    describe: Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    ``alive`` (e.g. a child process still running) is checked on every round, so a process
    that died fails the wait at once rather than after the timeout. Exceptions raised by the
    predicate count as "not yet" (a service still starting), and the last one is reported.
    ``describe`` (e.g. a child's log) is added to the failure, to show why.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None

    def context() -> str:  # only on failure: describe() may read every log
        return f"\n{describe()}" if describe is not None else ""

    while True:
        try:
            result = predicate()
        except Exception as exc:  # noqa: BLE001 - not ready yet
            result, last_error = None, exc  # type: ignore[assignment]
        if result:
            return result
        if alive is not None and not alive():
            raise AssertionError(f"stopped while waiting for {what}{context()}")
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}{context()}")
        time.sleep(step)


class Child:
    """One platform command as a child process, its output in a log file (a pipe could fill
    and block it). ``stop`` is SIGTERM (a clean drain and commit), ``kill`` SIGKILL."""

    def __init__(
        self, handle: StackHandle, args: Sequence[str], log: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.log = log
        self._fh = open(log, "ab")  # noqa: SIM115 - closed in stop() / kill()
        self.popen = subprocess.Popen(
            [*CLI, *args], env={**handle.env, **(env or {})}, stdout=self._fh, stderr=subprocess.STDOUT
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """The first match of ``pattern`` in the log; fails at once if the process exits."""
        return wait_for(
            lambda: re.search(pattern, self.output()),
            timeout,
            f"{pattern!r} in {self.log.name}",
            alive=self.alive,
            describe=self.output,
        )

    def stop(self, timeout: float = 30) -> int:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        finally:
            self._fh.close()

    def kill(self) -> None:
        if self.alive():
            self.popen.kill()
        self.popen.wait(10)
        self._fh.close()


def produce_records(
    producer: Producer,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]],
    on_delivery: Callable[[Any, Any], None] | None = None,
) -> None:
    """Produce each (key, value) and wait until the broker acknowledged every one."""
    for key, value in records:
        kafka_io.produce(producer, topic, value, key, on_delivery=on_delivery)
    assert producer.flush(30) == 0, f"{topic}: records not acknowledged"


def aggregate_records(events: Iterable[Mapping[str, Any] | Exception], rules: Rules, now: Any) -> Batch:
    """The leaderboard's batch of these enriched records, each sent through the consumer's own
    decoder as the JSON bytes it reads from Kafka (an exception stands for an undecodable one)."""
    read = decoder(rules.metric)
    return aggregate([e if isinstance(e, Exception) else read(orjson.dumps(e)) for e in events], rules, now)


def old_version_state(
    client: redis.Redis, keys: Keys, rules: Rules, events: Iterable[Mapping[str, Any]]
) -> list[str]:
    """What the leaderboard before the dedupe bitmaps left in Redis for these events (each
    counted once): their ids in per-minute seen sets ``set:eng:seen:<bucket>``, their scores,
    both expiring with the bucket. Returns the seen sets' keys."""
    from engagement_platform.streaming.leaderboard import METRIC_EVENTS, SEEN_SET_PREFIX, minute_bucket

    pipe = client.pipeline(transaction=False)
    sets: set[str] = set()
    for e in events:
        bucket = minute_bucket(e["event_ts"])
        seen = f"{keys.prefix}{SEEN_SET_PREFIX}{bucket}"
        sets.add(seen)
        pipe.sadd(seen, e["event_id"])
        value = 1.0 if rules.metric == METRIC_EVENTS else e.get("engagement_seconds") or 0.0
        pipe.zincrby(keys.minute(bucket), value, e["content_id"])
        pipe.expireat(seen, rules.expire_at(bucket))
        pipe.expireat(keys.minute(bucket), rules.expire_at(bucket))
    pipe.execute()
    return sorted(sets)


def by_event_id(records: Iterable[tuple[bytes | None, bytes | None]]) -> dict[int, tuple[bytes | None, dict]]:
    """Enriched (key, value) records as event id -> (key, value without ``enriched_at``), so
    two writers' outputs compare record for record; fails on a duplicate."""
    out: dict[int, tuple[bytes | None, dict]] = {}
    for key, value in records:
        assert value is not None
        record = orjson.loads(value)
        del record["enriched_at"]
        assert record["event_id"] not in out, f"event {record['event_id']} written twice"
        out[record["event_id"]] = (key, record)
    return out


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """Partition -> offset ``group`` committed on ``topic``, for the partitions it committed."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        tps = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in tps if tp.offset >= 0}
    finally:
        consumer.close()


def group_assignment(admin: AdminClient, group: str) -> list[set[tuple[str, int]]]:
    """The (topic, partition) sets the broker has assigned to each live member of ``group``."""
    description = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    return [
        {(tp.topic, tp.partition) for tp in member.assignment.topic_partitions}
        for member in description.members
    ]


class Consumers:
    """Platform commands as ``Child`` processes for the length of a ``with`` block.

    A bare name (``"enrich"``) runs ``consume NAME``; anything with spaces is a whole command
    line (``"simulate --rate 300"``), named by its first word. Logs go to
    ``EP_HOME/test-logs/NAME.log``. Leaving the block stops them all with SIGTERM (a clean
    drain and commit) and fails if one of them does not exit cleanly.
    """

    def __init__(self, handle: StackHandle, *commands: str, env: Mapping[str, str] | None = None) -> None:
        self.handle = handle
        self.env = dict(env or {})
        self.logs = handle.settings.ep_home / "test-logs"
        self.argv = {
            (c.split()[0] if " " in c else c): (c.split() if " " in c else ["consume", c]) for c in commands
        }
        self.procs: dict[str, Child] = {}

    def __enter__(self) -> Consumers:
        self.logs.mkdir(parents=True, exist_ok=True)
        for name in self.argv:
            self.start(name)
        return self

    def start(self, name: str) -> None:
        self.procs[name] = Child(self.handle, self.argv[name], self.logs / f"{name}.log", self.env)

    def alive(self, *names: str) -> bool:
        return all(self.procs[n].alive() for n in names or self.procs)

    def stop(self, name: str, timeout: float = 60) -> int:
        return self.procs[name].stop(timeout)

    def tail(self, name: str, lines: int = 30) -> str:
        return "\n".join(self.procs[name].output().splitlines()[-lines:])

    def tails(self) -> str:
        return "\n".join(f"--- {n}\n{self.tail(n)}" for n in self.procs)

    def __exit__(self, *exc: object) -> None:
        codes = {}
        for name, child in self.procs.items():
            try:
                codes[name] = child.stop(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                codes[name] = child.popen.returncode
        if exc[0] is None:
            failed = {n: c for n, c in codes.items() if c != 0}
            assert not failed, f"exit codes {failed}\n{self.tails()}"


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Message]], bool],
    timeout: float = 60.0,
    settle: float = 1.0,
) -> list[Message]:
    """Every message of ``topic`` until ``until(messages)`` holds, then ``settle`` more seconds
    (so duplicates that follow are seen too). Fails on timeout with what was read.

    Partitions are assigned, not subscribed (no group join, nothing committed); a topic
    that does not exist yet is waited for.
    """
    deadline = time.monotonic() + timeout
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-read-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    messages: list[Message] = []
    done_at: float | None = None
    try:

        def partitions() -> list[int]:
            found = consumer.list_topics(topic, timeout=5).topics.get(topic)
            return sorted(found.partitions) if found is not None and not found.error else []

        parts = wait_for(partitions, max(deadline - time.monotonic(), 0.1), f"topic {topic} to exist")
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        while True:
            now = time.monotonic()
            if done_at is not None and now >= done_at:
                return messages
            if now >= deadline:
                raise AssertionError(
                    f"{topic}: condition not met after {timeout:.0f}s ({len(messages)} read)"
                )
            for m in consumer.consume(num_messages=5000, timeout=0.2):
                if m.error() is None:
                    messages.append(m)
            if done_at is None and until(messages):
                done_at = time.monotonic() + settle
    finally:
        consumer.close()


def tick(
    sensor: Any,
    instance: Any,
    resources: Mapping[str, Any],
    cursor: str | None = None,
    repository_def: Any = None,
) -> tuple[Any, str | None]:
    """One evaluation of ``sensor`` as the daemon does it: its asset events (check evaluations,
    materializations, observations) are recorded in ``instance``. Returns the result and cursor."""
    import dagster as dg

    context = dg.build_sensor_context(
        instance=instance, resources=dict(resources), cursor=cursor, repository_def=repository_def
    )
    result = sensor(context)
    if isinstance(result, dg.SensorResult):
        for event in result.asset_events:
            instance.report_runless_asset_event(event)
    return result, context.cursor


class WebhookReceiver:
    """A real HTTP endpoint on loopback that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = []  # type: list[dict[str, Any]]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        return [str(body.get("text", "")) for body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


TRAFFIC_RATE = 1000  # events/s of the simulator under a platform's fault and schema tests


@dataclass
class Platform:
    """A stack with `up`'s consumers under its supervision (no UI, no dashboard, no simulator:
    each test drives its own traffic)."""

    handle: StackHandle
    up: Child

    @property
    def settings(self) -> Settings:
        return self.handle.settings

    def supervisor_of(self, name: str) -> Supervisor:
        from engagement_platform.local_stack.apps import app_services

        stack = self.handle.supervisor
        if name in {s.name for s in stack.services}:
            return stack
        return Supervisor(self.settings, app_services(self.settings))

    def traffic(self, seconds: float, *extra: str) -> Child:
        """The simulator at TRAFFIC_RATE in commits of 20 events for ``seconds``."""
        log = self.settings.ep_home / "test-logs" / f"simulate-{uuid.uuid4().hex[:6]}.log"
        args = ["simulate", "--rate", str(TRAFFIC_RATE), "--burst", "20", "--duration", str(seconds), *extra]
        return Child(self.handle, args, log)


@contextlib.contextmanager
def running_platform(prefix: str, extra: Mapping[str, str] | None = None) -> Iterator[Platform]:
    """A stack of its own, set up, with `up --rate 0 --skip dagster,dashboard` running."""
    from engagement_platform.local_stack.apps import app_services
    from engagement_platform.monitoring.lag import SECONDS_GROUP

    with set_up_stack(prefix, extra) as handle:
        logs = handle.settings.ep_home / "test-logs"
        logs.mkdir(exist_ok=True)
        up = Child(handle, ["up", "--rate", "0", "--skip", "dagster,dashboard"], logs / "up.log")
        try:
            up.wait_for_log("is up on the local embedded stack", timeout=300)
            # the consumers, under up's supervision
            names = {svc.name for svc in app_services(handle.settings)}
            assert names == {"enrich", "leaderboard", SECONDS_GROUP, "warehouse"}, names
            yield Platform(handle, up)
        finally:
            assert up.stop(timeout=120) == 0, up.output()[-3000:]


def caught_up_after(platform: Platform, since: float, timeout: float = 180) -> float:
    """Seconds from ``since`` until ClickHouse holds every event Postgres holds now."""
    mark = newest_event_id(platform.settings)
    pg = psycopg2.connect(platform.settings.postgres_dsn)
    ch = connect_settings(platform.settings)
    try:
        wanted = {i for i in postgres_ids(pg) if i <= mark}

        def there() -> bool:
            return wanted <= clickhouse_ids(ch)

        try:
            wait_for(there, timeout, f"ClickHouse to catch up to event {mark}", step=0.5)
        except AssertionError as exc:
            trace = where_missing(platform.settings, wanted - clickhouse_ids(ch))
            raise AssertionError(f"{exc}\n{trace}\n{platform.handle.tails()}") from None
        return time.monotonic() - since
    finally:
        pg.close()
        ch.close()


class Arrivals:
    """While a ``with`` block runs, a thread counts every ``step`` seconds the events ClickHouse
    holds (``count()``, duplicates included) and those Redis counted in the minutes since the
    block began (by event time: a consumer behind by minutes still adds to them); the longest
    time between two rises of a count is the longest stall a reader of that sink saw."""

    def __init__(self, settings: Settings, step: float = 0.2) -> None:
        import threading

        self.settings = settings
        self.step = step
        self.rises: dict[str, list[float]] = {"clickhouse": [], "redis": []}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from engagement_platform.streaming.leaderboard import last_buckets, utcnow

        ch = connect_settings(self.settings)
        rd = redis.Redis.from_url(self.settings.redis_url)
        last = {"clickhouse": -1, "redis": -1}
        began = time.monotonic()
        try:
            while not self._stop.wait(self.step):
                now = time.monotonic()
                counts = {}
                with contextlib.suppress(Exception):  # a sink's hiccup is a sample without a rise
                    counts["clickhouse"] = int(ch.command("SELECT count() FROM engagement_enriched"))
                with contextlib.suppress(Exception):
                    minutes = last_buckets(utcnow(), int(now - began) // 60 + 3)
                    counts["redis"] = sum(reconcile.redis_minute_counts(rd, minutes).values())
                for sink, count in counts.items():
                    if count > last[sink] >= 0:
                        self.rises[sink].append(now)
                    last[sink] = max(last[sink], count)
        finally:
            ch.close()
            rd.close()

    def __enter__(self) -> Arrivals:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def longest_gap(self, sink: str, since: float = 0.0, until: float = float("inf")) -> float:
        """The longest time between two rises of ``sink``'s count (0 with fewer than two), of
        the gaps that overlap the window ``since``..``until`` (monotonic seconds): what a reader
        saw while a fault was under way, not while the traffic was still starting or draining."""
        rises = self.rises[sink]
        gaps = (b - a for a, b in zip(rises, rises[1:], strict=False) if b >= since and a <= until)
        return max(gaps, default=0.0)

    def line(self, since: float = 0.0, until: float = float("inf")) -> str:
        return ", ".join(f"{sink} {self.longest_gap(sink, since, until):.1f} s" for sink in self.rises)


def partition_leaders(bootstrap: str) -> dict[int, int]:
    """Partitions each broker leads now, over every topic (the broker's own included)."""
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    led: dict[int, int] = dict.fromkeys(metadata.brokers, 0)
    for topic in metadata.topics.values():
        for partition in topic.partitions.values():
            led[partition.leader] = led.get(partition.leader, 0) + 1
    return led


def under_replicated(bootstrap: str) -> list[str]:
    """``topic[partition]`` of every partition whose in-sync replicas are not all its replicas,
    as the cluster's metadata says now (empty: every replica is in sync)."""
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return [
        f"{name}[{p}]"
        for name, topic in metadata.topics.items()
        for p, partition in topic.partitions.items()
        if partition.leader < 0 or set(partition.isrs) != set(partition.replicas)
    ]


def in_step(platform: Platform, timeout: float = 180, redis_timeout: float = 60) -> None:
    """ClickHouse FINAL holds exactly the Postgres ids, none twice, and Redis counts per (minute,
    content) what ClickHouse holds (each waited for up to its timeout)."""
    import redis

    s = platform.settings
    diff = wait_clickhouse_holds_postgres(s, timeout, lambda: platform.up.output()[-2000:])
    ch = connect_settings(s)
    rd = redis.Redis.from_url(s.redis_url)
    try:
        assert reconcile.clickhouse_duplicates(ch) == 0
        expected = reconcile.clickhouse_minute_counts(ch)
        minutes = {m for m, _c in expected}
        diffs: list[dict] = []

        def counted() -> bool:
            diffs.append(reconcile.count_diff(expected, reconcile.redis_minute_counts(rd, minutes)))
            return not diffs[-1]

        def differences() -> str:
            d = diffs[-1] if diffs else {}
            wanted, got = sum(e for e, _g in d.values()), sum(g for _e, g in d.values())
            sample = sorted(d.items())[:10]
            return (
                f"{len(d)} (minute, content) differ, ClickHouse {wanted:,} vs Redis {got:,}: {sample}\n"
                + f"{group_lags(s)}\n{platform.handle.tails()}"
            )

        wait_for(
            counted,
            redis_timeout,
            "Redis to count per (minute, content) what ClickHouse holds",
            describe=differences,
        )
        events, counts = diff.source, len(expected)
        print(f"found: ClickHouse = Postgres ({events:,} events), Redis = ClickHouse ({counts} counts)")
    finally:
        ch.close()
        rd.close()


# --- what only tests need of the product's modules ------------------------------------------------


def postgres_ids(conn: PgConnection, after_id: int = 0) -> set[int]:
    """Every event id in the source after ``after_id``: the truth the sinks are compared with."""
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM engagement_events WHERE id > %s", (after_id,))
        return {row[0] for row in cur.fetchall()}


def clickhouse_ids(client: Client, after_id: int = 0) -> set[int]:
    """Every event id in the warehouse after ``after_id`` (``FINAL``: one per id)."""
    result = client.query(
        "SELECT event_id FROM engagement_enriched FINAL WHERE event_id > {after:UInt64}",
        parameters={"after": after_id},
    )
    return {row[0] for row in result.result_rows}


def build_replication_slot_sensor(
    name: str, thresholds: Any = None, slot_name_override: str | None = None
) -> Any:
    """The replication slot sensor under another name, with other thresholds or another slot."""
    from engagement_platform.defs.postgres import checks

    return checks.slot_monitor(thresholds or checks.DEFAULT_THRESHOLDS, slot_name_override).sensor(name)


def build_consumer_lag_sensor(
    name: str, groups: Sequence[Any], thresholds: Any = None, sustain: int = 1
) -> Any:
    """The consumer lag sensor over other groups (``WatchedGroup``s)."""
    from engagement_platform.defs.kafka import checks

    thresholds = thresholds or checks.DEFAULT_THRESHOLDS
    specs = [g.check_spec(thresholds) for g in groups]
    return checks.lag_monitor(lambda _resources: groups, specs, thresholds, sustain=sustain).sensor(name)


def build_connector_health_sensor(name: str, connector_name_override: str) -> dg.SensorDefinition:
    """The connector health sensor for another connector."""
    from engagement_platform.defs.cdc import checks

    return checks.connector_monitor(connector_name_override).sensor(name)


def enriched_event(event_id: int, content: Content, event_ts: datetime, rng: random.Random) -> dict[str, Any]:
    """One enriched record for a given content and time, made by the enricher's own code, for
    tests that place events."""
    from engagement_platform.bench.data import enriched, flat_event
    from engagement_platform.source.simulator import make_event

    user = uuid.UUID(int=rng.getrandbits(128), version=4)
    event = make_event(rng, content, user, event_ts, uuid.UUID(int=rng.getrandbits(128)).hex[:16])
    ((_key, value),) = enriched([content], [flat_event(event_id, event)])
    return orjson.loads(value)


def markup(at: Any, css_class: str) -> Iterator[Any]:
    """The page's own HTML in a Streamlit AppTest page (Markdown elements whose root element has
    class ``css_class``), each parsed (``xml.etree.ElementTree``)."""
    import xml.etree.ElementTree as ET

    for element in at.markdown:
        if f'class="{css_class}"' in element.value:
            yield ET.fromstring(element.value)


def charts(at: Any) -> dict[str, Any]:
    """Each chart on a Streamlit AppTest page (an SVG of ``dashboard.svg``) by its title, as a
    frame of what its marks' tooltips name: a row per mark, a column per field (figures as
    numbers, the rest as text)."""
    import pandas as pd

    from engagement_platform.dashboard import svg

    ns = {"svg": "http://www.w3.org/2000/svg"}
    found = {}
    for root in markup(at, svg.CLASS):
        rows = []
        for mark in root.iterfind(".//svg:g[@class='mark']", ns):
            tip = mark.findtext("svg:title", "", ns)
            rows.append(dict(line.split(": ", 1) for line in tip.splitlines()))
        found[root.attrib["data-title"]] = pd.DataFrame(rows).apply(_numbers)
    return found


class Shown(NamedTuple):
    """A headline figure as the page shows it: its value and its delta ('' when none)."""

    value: str
    delta: str


def metrics(at: Any) -> dict[str, Shown]:
    """Each headline figure on a Streamlit AppTest page (``view.metric_html``) by its label."""
    from engagement_platform.dashboard.view import METRIC_CLASS

    found = {}
    for root in markup(at, METRIC_CLASS):
        parts = {div.attrib["class"]: "".join(div.itertext()) for div in root}
        delta = parts.get(f"{METRIC_CLASS}-delta", "").removeprefix("↑ ").removeprefix("↓ ")
        found[parts[f"{METRIC_CLASS}-label"]] = Shown(parts[f"{METRIC_CLASS}-value"], delta)
    return found


def _numbers(column: Any) -> Any:
    """A column of figures as shown ("1,234") as numbers; any other column as it is."""
    import pandas as pd

    try:
        return pd.to_numeric(column.str.replace(",", "", regex=False))
    except (ValueError, TypeError):
        return column


# --- Compose files, read statically (these machines have no Docker engine) ---------------------

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.cluster.yml")
_COMPOSE_VAR = re.compile(r"\$\$|\$\{([A-Za-z0-9_]+)(?::?-([^}]*))?\}")


@dataclass(frozen=True)
class ComposeTag:
    """A Compose YAML tag the merge obeys: ``!reset`` (drop the base's value) or ``!override``
    (replace it instead of merging)."""

    tag: str
    value: Any


class _ComposeLoader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads Compose's ``!reset`` and ``!override`` tags."""


def _compose_tag(loader: yaml.SafeLoader, node: yaml.Node) -> ComposeTag:
    if isinstance(node, yaml.MappingNode):
        value: Any = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)  # type: ignore[arg-type]
    return ComposeTag(node.tag, value)


_ComposeLoader.add_constructor("!reset", _compose_tag)
_ComposeLoader.add_constructor("!override", _compose_tag)


def load_compose(name: str) -> dict[str, Any]:
    """A compose file of the repo as YAML gives it (anchors merged, Compose's tags kept)."""
    return yaml.load((settings_module.PROJECT_ROOT / name).read_text(), Loader=_ComposeLoader)  # noqa: S506


def _untagged(value: Any) -> Any:
    if isinstance(value, ComposeTag):
        return _untagged(value.value)
    if isinstance(value, dict):
        return {k: _untagged(v) for k, v in value.items() if not _is_reset(v)}
    if isinstance(value, list):
        return [_untagged(v) for v in value]
    return value


def _is_reset(value: Any) -> bool:
    return isinstance(value, ComposeTag) and value.tag == "!reset"


def plain_compose(document: dict[str, Any]) -> dict[str, Any]:
    """The document as Compose reads one file alone: tags applied to nothing (a ``!reset`` key
    is gone, an ``!override`` is its value)."""
    return _untagged(document)


# Compose's merge rules (docs "Merge Compose files"): mappings merge key by key; these
# sequences are replaced whole; the other sequences are appended, without duplicates.
_REPLACED = {"command", "entrypoint", "test"}


def merge_compose(base: Any, override: Any, key: str = "") -> Any:
    """``override`` merged onto ``base`` as ``docker compose -f base -f override`` does."""
    if isinstance(override, ComposeTag):  # !override: the value replaces the base's
        return _untagged(override.value)
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for k, v in override.items():
            if _is_reset(v):
                merged.pop(k, None)
            else:
                merged[k] = merge_compose(base[k], v, k) if k in base else _untagged(v)
        return merged
    if isinstance(base, list) and isinstance(override, list) and key not in _REPLACED:
        return base + [v for v in _untagged(override) if v not in base]
    return _untagged(override)


def interpolate(value: str, env: Mapping[str, str] = {}) -> str:  # noqa: B006 (read only)
    """Compose's interpolation of ``${VAR}``, ``${VAR:-default}`` and ``$$`` in one string."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1)) or (match.group(2) or "")

    return _COMPOSE_VAR.sub(one, value)


def parse_service_command(argv: Sequence[str]) -> object:
    """Parse a compose service's command with the parser of the program it runs, without running
    it: the platform's own argparse parser, or the click command behind a console script
    (dagster, dagster-webserver, dagster-daemon, streamlit). Raises on arguments it rejects."""
    import importlib
    from importlib.metadata import entry_points

    import click

    program, *args = argv
    if args[:2] == ["-m", "engagement_platform.dashboard.serve"]:  # streamlit's own command line
        program, args = "streamlit", args[2:]
    if program == "engagement-platform":
        from engagement_platform.cli import build_parser

        try:
            return build_parser(args).parse_args(args)
        except SystemExit as exc:
            raise ValueError(f"engagement-platform rejects {args}") from exc
    (script,) = entry_points(group="console_scripts", name=program)
    command = script.load()
    if not isinstance(command, click.Command):  # a main() function around the module's `cli`
        command = importlib.import_module(script.module).cli
    prog: list[str] = [program]
    while True:
        context = command.make_context(" ".join(prog), list(args), resilient_parsing=False)
        if not isinstance(command, click.Group):
            return context.params
        name, sub, args = command.resolve_command(context, [*context._protected_args, *context.args])
        assert sub is not None and name is not None, argv
        command = sub
        prog.append(name)
