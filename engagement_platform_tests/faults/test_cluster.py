"""The fault suite on a local Kafka cluster: three KRaft nodes (replication factor 3,
min.insync.replicas 2) and two Connect workers, while events flow at ~1,000/s.

- kill -9 of the broker that leads the most partitions; `up` restarts it;
- a rolling restart of the three brokers, each back in every ISR before the next;
- kill -9 of the Connect worker that runs the connector's task, the other one still running;
- a broker lost with the only replica of one of a connector's topics: the replication slot
  stays behind the record that topic has not taken, so a task restarted meanwhile loses nothing.

Afterwards ClickHouse FINAL holds exactly the Postgres ids and Redis's per-minute counts equal
ClickHouse's; while it happens, no sink goes 10 s without a new event. A loaded machine may fall
behind 1,000 events/s: the catch-up is waited for, bounded by what was written, and printed with
the longest stall. One cluster and one `up` serve the module.

Marked `cluster`, not `faults`: pyproject's addopts leave it out of `make test`, and
`make test-cluster` (CI, after `make test`) runs it alone.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator

import psycopg2
import pytest
from confluent_kafka import Message
from confluent_kafka.admin import AdminClient, NewTopic

from engagement_platform.cdc.connect_client import ConnectClient
from engagement_platform.cdc.connector import connector_name
from engagement_platform.local_stack.cdc import worker_name
from engagement_platform.local_stack.kafka import node_name
from engagement_platform.local_stack.process import is_alive
from engagement_platform.monitoring.cdc_readiness import slot_active
from engagement_platform_tests.harness import (
    TRAFFIC_RATE,
    Arrivals,
    Platform,
    caught_up_after,
    cluster_env,
    in_step,
    newest_event_id,
    partition_leaders,
    read_topic,
    running_platform,
    under_replicated,
    wait_for,
    wal_position,
)

# the module's cluster starts in the first test's time; a catch-up may take minutes on a loaded machine
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(1200)]

MAX_STALL_S = 10.0  # the longest a sink may go without a new event while a broker is lost
SECONDS = 10  # of simulated traffic around a single fault
KILL_AFTER = 3.0  # seconds into the traffic
# A sink under a loaded machine may fall behind 1,000 events/s and drain its backlog after the
# fault: the catch-up is bounded by what was written, at no less than this many events/s
MIN_DRAIN_RATE = 150


def catch_up_timeout(platform: Platform, first_id: int) -> float:
    """Seconds to allow the sinks to hold every event written after ``first_id``: a minute,
    plus the backlog at MIN_DRAIN_RATE (the issue bounds the stalls, not the catch-up)."""
    return 60 + (newest_event_id(platform.settings) - first_id) / MIN_DRAIN_RATE


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    with running_platform("ep-test-cluster-", cluster_env(brokers=3, workers=2)) as running:
        s = running.settings
        assert (s.kafka_replication_factor, s.kafka_min_insync_replicas) == (3, 2)
        yield running


def wait_in_sync(platform: Platform, what: str, timeout: float = 120) -> float:
    """Wait until every partition's ISR holds all its replicas; the seconds it took."""
    began = time.monotonic()
    lagging: list[list[str]] = []

    def in_sync() -> bool:
        lagging.append(under_replicated(platform.settings.kafka_bootstrap_servers))
        return not lagging[-1]

    wait_for(
        in_sync,
        timeout,
        what,
        step=0.5,
        describe=lambda: f"out of sync: {lagging[-1][:20] if lagging else '?'}",
    )
    return time.monotonic() - began


def test_kill_9_of_the_busiest_broker_loses_nothing_and_stalls_under_10_s(platform: Platform) -> None:
    s = platform.settings
    wait_in_sync(platform, "a cluster in sync before the fault")
    led = partition_leaders(s.kafka_bootstrap_servers)
    node = max(led, key=led.__getitem__)
    name = node_name(node)
    sup = platform.supervisor_of(name)
    before = sup.running(name)
    assert before is not None, f"{name} is not running"
    first_id = newest_event_id(s)
    with Arrivals(s) as arrivals:
        traffic = platform.traffic(SECONDS)
        time.sleep(KILL_AFTER)  # the fault is injected while events flow
        os.kill(before.pid, signal.SIGKILL)
        wait_for(lambda: not is_alive(before), 30, f"{name} to die")
        killed_at = time.monotonic()
        svc = next(x for x in sup.services if x.name == name)
        # the two brokers left carry the stream on their own, whether or not it is back yet
        assert traffic.popen.wait(timeout=SECONDS + 60) == 0, traffic.output()[-2000:]
        allowed = catch_up_timeout(platform, first_id)
        catch_up = caught_up_after(platform, killed_at, allowed)

    def back() -> bool:
        record = sup.running(name)
        return record is not None and record.pid != before.pid and svc.healthy()

    wait_for(back, 180, f"{name} to be restarted by up", step=0.5, describe=platform.up.output)
    back_at = time.monotonic()
    rejoined = wait_in_sync(platform, f"{name} to rejoin every in-sync replica set")
    print(
        f"injected: kill -9 of {name} (node {node}, leader of {led[node]} of {sum(led.values())} "
        f"partitions) at {TRAFFIC_RATE:,} events/s; back after {back_at - killed_at:.1f} s, in every "
        f"ISR {rejoined:.1f} s later; caught up {catch_up:.1f} s after the kill; longest stall: "
        f"{arrivals.line()}"
    )
    in_step(platform, allowed, allowed)
    for sink in arrivals.rises:
        assert arrivals.longest_gap(sink) < MAX_STALL_S, arrivals.line()


def test_a_rolling_restart_of_every_broker_loses_nothing_and_stalls_under_10_s(platform: Platform) -> None:
    s = platform.settings
    names = [node_name(n + 1) for n in range(s.kafka_brokers)]
    sup = platform.handle.supervisor
    wait_in_sync(platform, "a cluster in sync before the restarts")
    phases: dict[str, tuple[float, float, float]] = {}  # name: stop, start, back in every ISR
    first_id = newest_event_id(s)
    with Arrivals(s) as arrivals:
        traffic = platform.traffic(600)  # stopped when the last broker is back in sync
        time.sleep(KILL_AFTER)
        began = time.monotonic()
        for name in names:
            # what `stack restart` does, timed by phase: a clean stop (leadership moves
            # first), a start until the quorum counts the node live, then its replicas catch up
            t0 = time.monotonic()
            sup.down([name], log=lambda _line: None)
            t1 = time.monotonic()
            sup.up([name], log=lambda _line: None)
            t2 = time.monotonic()
            wait_in_sync(platform, f"{name} back in every in-sync replica set")
            phases[name] = (t1 - t0, t2 - t1, time.monotonic() - t2)
        rolled_at = time.monotonic()
        time.sleep(KILL_AFTER)  # traffic after the last restart too
        assert traffic.stop(timeout=60) == 0, traffic.output()[-2000:]
        allowed = catch_up_timeout(platform, first_id)
        catch_up = caught_up_after(platform, rolled_at, allowed)
    restarts = ", ".join(
        f"{n} {sum(t):.1f} s (stop {t[0]:.1f}, start {t[1]:.1f}, in sync {t[2]:.1f})"
        for n, t in phases.items()
    )
    stalls = arrivals.line(began, rolled_at)
    print(
        f"injected: a rolling restart ({restarts}; {rolled_at - began:.0f} s in all) at {TRAFFIC_RATE:,} "
        f"events/s; caught up {catch_up:.1f} s after the last one; longest stall during the roll: {stalls}"
    )
    in_step(platform, allowed, allowed)
    for sink in arrivals.rises:
        assert arrivals.longest_gap(sink, began, rolled_at) < MAX_STALL_S, stalls


def connector_status(platform: Platform, port: int) -> dict:
    """The connector's status as the worker on ``port`` reports it (Connect's REST API)."""
    url = f"http://127.0.0.1:{port}/connectors/{connector_name()}/status"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def test_kill_9_of_the_connect_worker_running_the_task_moves_it_to_the_other(platform: Platform) -> None:
    s = platform.settings
    ports = s.connect_ports
    assert len(ports) == 2
    status = wait_for(
        lambda: (
            (st := connector_status(platform, ports[0]))["tasks"]
            and st["tasks"][0]["state"] == "RUNNING"
            and st
        ),
        60,
        "the connector's task to run",
    )
    worker_port = int(status["tasks"][0]["worker_id"].rpartition(":")[2])
    victim = worker_name(ports.index(worker_port) + 1)
    survivor_port = next(p for p in ports if p != worker_port)
    sup = platform.supervisor_of(victim)
    record = sup.running(victim)
    assert record is not None, f"{victim} is not running"
    first_id = newest_event_id(s)
    with Arrivals(s) as arrivals:
        traffic = platform.traffic(SECONDS)
        time.sleep(KILL_AFTER)
        # the worker's machine is gone for good: without its pid file `up` takes it as stopped
        # on purpose and does not restart it, so the task can only go to the other worker
        sup.pid_file(victim).unlink()
        os.kill(record.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        try:
            wait_for(lambda: not is_alive(record), 30, f"{victim} to die")

            def moved() -> bool:
                task = connector_status(platform, survivor_port)["tasks"][0]
                return task["state"] == "RUNNING" and task["worker_id"].endswith(f":{survivor_port}")

            wait_for(moved, 120, "the task to run on the other worker", step=0.2)
            moved_after = time.monotonic() - killed_at
            assert traffic.popen.wait(timeout=SECONDS + 60) == 0, traffic.output()[-2000:]
            allowed = catch_up_timeout(platform, first_id)
            catch_up = caught_up_after(platform, killed_at, allowed)
        finally:
            platform.handle.cli("stack", "up", victim)  # the module's cluster stays whole
    print(
        f"injected: kill -9 of {victim} (running the task) at {TRAFFIC_RATE:,} events/s; the task ran "
        f"on the other worker {moved_after:.1f} s later; caught up {catch_up:.1f} s after the kill; "
        f"longest stall: {arrivals.line()}"
    )
    in_step(platform, allowed, allowed)


ORDER_TABLES = ("ord_a", "ord_b")
OBSERVE_S = 5.0  # five of Connect's offset flushes (offset.flush.interval.ms: 1 s)


def test_the_slot_never_passes_a_record_kafka_has_not_taken(platform: Platform) -> None:
    """Kafka acknowledges records of different partitions in any order; the LSN Debezium
    confirms to Postgres must not pass a record Kafka has not taken, or a task restarted
    meanwhile resumes past it and the record is lost. (Debezium 3.7 confirms the offset Connect
    committed, which stops at the first unacknowledged record; its older callback-ordered way,
    still in forks, does not.) A connector like the platform's streams two tables, each to a
    topic with one replica on its own broker; the broker of ord_b's topic is lost while both are
    written. ord_a's records are taken meanwhile; the slot must stay behind ord_b's row, and
    after a task restart and the broker's return the row arrives."""
    s = platform.settings
    owner = psycopg2.connect(s.postgres_dsn)
    owner.autocommit = True
    client = ConnectClient(s.connect_url)
    holder = node_name(3)  # ord_b's topic lives there only
    with owner.cursor() as cur:
        for table in ORDER_TABLES:
            cur.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY)")
            cur.execute(f"GRANT SELECT ON {table} TO {s.cdc_user}")
        cur.execute(f"CREATE PUBLICATION ord_pub FOR TABLE {', '.join(ORDER_TABLES)}")
    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap_servers})
    for future in admin.create_topics(
        [NewTopic(f"ord.{t}", 1, replica_assignment=[[node]]) for t, node in (("ord_a", 1), ("ord_b", 3))]
    ).values():
        future.result(timeout=30)
    config = {
        **{
            k: v
            for k, v in client.config(connector_name()).items()
            if k not in ("name", "message.key.columns")
        },
        "topic.prefix": "ord",
        "slot.name": "ord_slot",
        "publication.name": "ord_pub",
        "table.include.list": ",".join(f"public.{t}" for t in ORDER_TABLES),
        "transforms.route.regex": "ord\\.public\\.(.*)",
        "transforms.route.replacement": "ord.$1",
    }

    def ids(topic: str, want: set[int]) -> set[int]:
        def of(messages: list[Message]) -> set[int]:
            return {json.loads(value)["id"] for m in messages if (value := m.value())}

        return of(read_topic(s.kafka_bootstrap_servers, topic, until=lambda ms: want <= of(ms), settle=0))

    def insert(table: str, rows: range) -> None:
        with owner.cursor() as cur:
            for i in rows:  # a transaction each, as an application writes
                cur.execute(f"INSERT INTO {table} VALUES (%s)", (i,))

    try:
        client.put_config("ord", config)
        client.wait_running("ord", timeout=120)
        insert("ord_a", range(1, 2))
        ids("ord.ord_a", {1})
        platform.handle.cli("stack", "down", holder)

        def leaderless() -> bool:  # the broker has stopped serving: no leader for ord.ord_b
            topic = admin.list_topics("ord.ord_b", timeout=10).topics["ord.ord_b"]
            return topic.partitions[0].leader == -1

        wait_for(leaderless, 60, f"ord.ord_b to lose its leader with {holder}")
        before_b = wal_position(s.postgres_dsn)
        insert("ord_b", range(1, 2))  # its record waits for a leader of ord.ord_b
        insert("ord_a", range(2, 41))  # later transactions: Kafka takes them
        ids("ord.ord_a", set(range(1, 41)))
        confirmed = []
        deadline = time.monotonic() + OBSERVE_S
        while time.monotonic() < deadline:
            confirmed.append(wal_position(s.postgres_dsn, "ord_slot"))
            time.sleep(0.2)
        assert max(confirmed) <= before_b, (
            f"the slot confirmed {max(confirmed)}, past ord_b's row (after {before_b}), which Kafka has not"
        )
        client.restart("ord")  # the connector and its task, while the record waits
        client.wait_running("ord", timeout=120)
        platform.handle.cli("stack", "up", holder)
        assert 1 in ids("ord.ord_b", {1}), "ord_b's row was lost"
        wait_for(
            lambda: wal_position(s.postgres_dsn, "ord_slot") > before_b, 60, "the slot to pass ord_b's row"
        )
    finally:
        platform.handle.cli("stack", "up", holder)
        client.delete("ord")
        wait_for(lambda: not slot_active(s.postgres_dsn, "ord_slot"), 60, "the test's slot to be released")
        with owner.cursor() as cur:
            cur.execute("SELECT pg_drop_replication_slot('ord_slot')")
            cur.execute("DROP PUBLICATION ord_pub")
            cur.execute(f"DROP TABLE {', '.join(ORDER_TABLES)}")
        owner.close()
    print(
        f"lost {holder} with ord.ord_b's only replica; 40 rows of ord_a taken meanwhile; the slot stayed "
        f"{before_b - max(confirmed):,} bytes behind ord_b's row over {OBSERVE_S:.0f} s; after a task "
        "restart and the broker's return the row arrived"
    )
    wait_in_sync(platform, f"{holder} back")
