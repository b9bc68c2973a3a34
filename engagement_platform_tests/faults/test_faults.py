"""The fault suite: while events flow at ~1,000/s, each process of the platform is killed with
SIGKILL and comes back under `up`'s restart-on-exit supervision; afterwards ClickHouse FINAL holds
exactly the Postgres ids and Redis's per-minute counts equal ClickHouse's. Also: poison records on
every consumer input, an input filled faster than its consumer drains it, and a broker out of
reach for 30 s. Each test prints what it injected and what it found.

Run alone with ``pytest -m faults``; part of ``make test``. One stack and one `up` (without the UI
and the dashboard, and without its simulator: each test drives its own) serve the whole module.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import psutil
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from engagement_platform.local_stack.apps import AppPlan, app_services
from engagement_platform.local_stack.process import is_alive
from engagement_platform.monitoring.lag import SECONDS_GROUP
from engagement_platform.streaming import topics
from engagement_platform.warehouse.ddl import connect_settings
from engagement_platform_tests.harness import (
    TRAFFIC_RATE,
    Child,
    Platform,
    caught_up_after,
    group_assignment,
    in_step,
    read_topic,
    running_platform,
    wait_for,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

RATE = TRAFFIC_RATE  # events/s while the fault happens
SECONDS = 8  # of simulated traffic per test
KILL_AFTER = 3.0  # seconds into the traffic


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    with running_platform("ep-test-faults-") as running:
        yield running


@pytest.mark.parametrize(
    "target", ["enrich", "leaderboard", "warehouse", "cdc", "kafka", "clickhouse", "redis", "postgres"]
)
def test_kill_9_then_supervised_restart_loses_nothing_and_counts_nothing_twice(
    platform: Platform, target: str
) -> None:
    sup = platform.supervisor_of(target)
    before = sup.running(target)
    assert before is not None, f"{target} is not running"
    traffic = platform.traffic(SECONDS)
    time.sleep(KILL_AFTER)  # the fault is injected while events flow
    os.kill(before.pid, signal.SIGKILL)
    wait_for(lambda: not is_alive(before), 30, f"{target} to die")
    killed_at = time.monotonic()
    svc = next(s for s in sup.services if s.name == target)

    def back() -> bool:
        record = sup.running(target)
        return record is not None and record.pid != before.pid and svc.healthy()

    wait_for(back, 180, f"{target} to be restarted by up", step=0.5, describe=platform.up.output)
    back_at = time.monotonic()
    if traffic.popen.wait(timeout=SECONDS + 60) != 0:  # Postgres went away under the simulator
        assert target == "postgres", traffic.output()[-2000:]
        traffic = platform.traffic(3)  # the writes that come after it returned
        assert traffic.popen.wait(timeout=60) == 0, traffic.output()[-2000:]
    catch_up = caught_up_after(platform, back_at)
    print(
        f"injected: kill -9 of {target} (pid {before.pid}) at {RATE:,} events/s; back after "
        f"{back_at - killed_at:.1f} s; the pipeline caught up {catch_up:.1f} s after it came back"
    )
    in_step(platform)


def test_poison_records_on_every_consumer_input_reach_a_dead_letter_store(platform: Platform) -> None:
    s = platform.settings
    tag = uuid.uuid4().hex[:8]
    poison = f"not json {tag}".encode()
    producer = Producer({"bootstrap.servers": s.kafka_bootstrap_servers})
    for topic in (topics.EVENTS_FLAT, topics.CONTENT_FLAT, topics.ENRICHED):
        producer.produce(topic, poison, f'{{"id": "{tag}"}}'.encode())
    assert producer.flush(10) == 0
    print(f"injected: {poison!r} on {topics.EVENTS_FLAT}, {topics.CONTENT_FLAT} and {topics.ENRICHED}")

    def letters(messages) -> set[str]:  # type: ignore[no-untyped-def]
        found = set()
        for m in messages:
            headers = dict(m.headers() or [])
            if tag.encode() in (m.value() or b""):
                found.add(headers["dlq.topic"].decode())
        return found

    # enrich dead-letters both of its inputs, the leaderboard its own
    want = {topics.EVENTS_FLAT, topics.CONTENT_FLAT, topics.ENRICHED}
    messages = read_topic(
        s.kafka_bootstrap_servers, topics.ENRICHED_DLQ, until=lambda ms: want <= letters(ms)
    )
    ch = connect_settings(s)
    try:
        # the warehouse parses in ClickHouse: its dead letters are engagement_enriched_errors
        errors = wait_for(
            lambda: int(
                ch.command(
                    "SELECT count() FROM engagement_enriched_errors WHERE position(raw, {t:String}) > 0",
                    parameters={"t": tag},
                )
            ),  # fmt: skip
            60,
            "the warehouse to record the poison record with its reason",
        )
    finally:
        ch.close()
    print(
        f"found: DLQ records from {sorted(letters(messages))}; {errors} row(s) in engagement_enriched_errors"
    )
    alive = [n for n in ("enrich", "leaderboard", "warehouse") if platform.supervisor_of(n).running(n)]
    assert alive == ["enrich", "leaderboard", "warehouse"], platform.up.output()[-2000:]
    traffic = platform.traffic(3)
    assert traffic.popen.wait(timeout=60) == 0
    in_step(platform)  # and the stream goes on


def test_an_input_filled_faster_than_it_drains_keeps_memory_bounded(platform: Platform) -> None:
    """300,000 events whose content never comes: the enricher holds at most --max-pending of them,
    pauses its partitions, and its memory stays flat while the rest waits in Kafka."""
    from engagement_platform.bench import data
    from engagement_platform_tests.harness import produce_records

    s = platform.settings
    run = uuid.uuid4().hex[:8]
    names = {
        t: f"f{run}.{t}"
        for t in (topics.CONTENT_FLAT, topics.EVENTS_FLAT, topics.ENRICHED, topics.ENRICHED_DLQ)
    }
    specs = [topics.TopicSpec(n, 3) for n in names.values()]
    topics.ensure_topics(s.kafka_bootstrap_servers, specs, bounds=topics.settings_bounds(s))
    _contents, events = data.synthetic(50, 300_000, seed=3)
    produce_records(
        Producer({"bootstrap.servers": s.kafka_bootstrap_servers, "linger.ms": 50}),
        names[topics.EVENTS_FLAT],
        events,
    )
    log = s.ep_home / "test-logs" / f"enrich-{run}.log"
    enrich = Child(
        platform.handle,
        ["consume", "enrich", "--group", f"f{run}", "--events-topic", names[topics.EVENTS_FLAT],
         "--content-topic", names[topics.CONTENT_FLAT], "--output-topic", names[topics.ENRICHED],
         "--dlq-topic", names[topics.ENRICHED_DLQ], "--max-pending", "20000", "--pending-timeout", "600",
         "--metrics-port", "0"],
        log,
    )  # fmt: skip
    try:
        enrich.wait_for_log(r"paus", timeout=120)
        proc = psutil.Process(enrich.popen.pid)
        samples = []
        for _ in range(20):
            samples.append(proc.memory_info().rss / 2**20)
            time.sleep(0.5)  # sampling the memory of a running process over time, not waiting on it
        print(
            f"injected: 300,000 events without content, --max-pending 20,000; found: paused, RSS "
            f"{min(samples):.0f}-{max(samples):.0f} MiB over 10 s"
        )
        assert max(samples) < 400, samples
        assert max(samples) - samples[0] < 50, samples  # flat, not growing with the backlog
        assert enrich.alive()
    finally:
        enrich.stop()


def test_two_instances_share_the_partitions_and_the_survivor_takes_over(platform: Platform) -> None:
    """A second process of every consumer joins its group (as `up --instances 2` starts it); both
    hold partitions; the second is killed with SIGKILL and stays dead; the first ends up owning
    every partition, and the results stay exact."""
    s = platform.settings
    plan = AppPlan(instances=2, simulator_rate=0, skip=("dagster", "dashboard"))
    second = {svc.name: svc for svc in app_services(s, plan) if svc.name.endswith("-2")}
    groups = {"enrich-2": "enrich", "leaderboard-2": "leaderboard", "warehouse-2": "warehouse"}
    groups[f"{SECONDS_GROUP}-2"] = SECONDS_GROUP
    assert set(second) == set(groups), sorted(second)
    logs = s.ep_home / "test-logs"
    extra = {name: Child(platform.handle, svc.args, logs / f"{name}.log") for name, svc in second.items()}

    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap_servers})

    def sizes(group: str) -> list[int]:  # partitions per live member, fewest first
        return sorted(map(len, group_assignment(admin, group)))

    try:
        for name, group in groups.items():
            wait_for(
                lambda group=group: len(sizes(group)) == 2 and min(sizes(group)) > 0,
                120,
                f"both members of {group} to hold partitions",
                describe=extra[name].output,
            )
        shared = {group: sizes(group) for group in groups.values()}
        traffic = platform.traffic(SECONDS)
        time.sleep(KILL_AFTER)  # killed while events flow
        for proc in extra.values():
            proc.kill()
        killed_at = time.monotonic()
        for group in groups.values():
            wait_for(
                lambda group=group: len(sizes(group)) == 1,
                60,
                f"{group}'s survivor to own every partition",
            )
        moved = time.monotonic() - killed_at
        assert traffic.popen.wait(timeout=SECONDS + 60) == 0, traffic.output()[-2000:]
        print(
            f"injected: a second instance of each consumer, partitions per member {shared}; kill -9 of "
            f"the second ones under {RATE:,} events/s; found: each survivor owned every partition "
            f"{moved:.1f} s later"
        )
        in_step(platform)
    finally:
        for proc in extra.values():
            proc.kill()


# last: the broker takes a while to serve groups again after it was stopped
def test_a_broker_out_of_reach_for_30_s_loses_nothing(platform: Platform) -> None:
    traffic = platform.traffic(SECONDS + 30)
    time.sleep(KILL_AFTER)
    platform.handle.cli("stack", "down", "kafka")  # out of reach for every producer and consumer
    down_at = time.monotonic()
    time.sleep(30)  # the outage itself
    platform.handle.cli("stack", "up", "kafka")
    back_at = time.monotonic()
    assert traffic.popen.wait(timeout=SECONDS + 90) == 0, traffic.output()[-2000:]
    catch_up = caught_up_after(platform, back_at)
    print(
        f"injected: the broker stopped for {back_at - down_at:.0f} s under {RATE:,} events/s; the "
        f"pipeline caught up {catch_up:.1f} s after it answered again"
    )
    in_step(platform)
