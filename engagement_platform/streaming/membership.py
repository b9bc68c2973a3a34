"""Notice a consumer its group forgot, so the runner can join it again.

After a broker outage, librdkafka (2.16, cooperative-sticky) sometimes gives up its partitions at
the session timeout and then never joins again: it polls, holds nothing, raises nothing, and the
broker lists the group as empty while the topic fills (the fault suite's broker outage, about one
run in five). A consumer without partitions may also be healthy (more instances than partitions,
a rebalance under way), so the watch asks the broker, and only after a while without partitions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import AdminClient

from engagement_platform.kafka_config import client_config

log = logging.getLogger("engagement_platform.streaming")

GRACE_S = 30.0  # without partitions before the broker is asked: a normal rejoin takes seconds
EVERY_S = 10.0  # between two questions while it lasts


class GroupWatch:
    """``forgotten(assigned)`` once per loop: True when the consumer has held no partition for
    ``grace`` seconds and the broker said twice in a row, ``every`` seconds apart, that it is not
    a member of its group (right after an outage the broker says so of every member, until the
    clients that work have joined again)."""

    def __init__(
        self,
        in_group: Callable[[], bool | None],
        grace: float = GRACE_S,
        every: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.in_group = in_group  # None: the broker did not answer (e.g. still away)
        self.grace = grace
        self.every = every
        self.clock = clock
        self._since: float | None = None
        self._next_ask = 0.0
        self._outside = 0  # "not a member" answers in a row

    def forgotten(self, assigned: bool) -> bool:
        if assigned:
            self._since, self._outside = None, 0
            return False
        now = self.clock()
        if self._since is None:
            self._since = now
        if now - self._since < self.grace or now < self._next_ask:
            return False
        self._next_ask = now + self.every
        self._outside = self._outside + 1 if self.in_group() is False else 0
        if self._outside < 2:
            return False
        self._since, self._outside = None, 0  # the replacement gets its own grace
        return True


def member_of(
    bootstrap: str, group: str, consumer: Callable[[], Consumer | None]
) -> Callable[[], bool | None]:
    """``in_group`` for a :class:`GroupWatch`: is ``consumer()``'s member id among the members
    the broker lists for ``group``? (None when the broker cannot say.)"""
    admin: AdminClient | None = None  # made at the first question, which few consumers ever ask

    def in_group() -> bool | None:
        nonlocal admin
        c = consumer()
        if c is None:
            return None
        if admin is None:
            admin = AdminClient(client_config(bootstrap))
        try:
            future = admin.describe_consumer_groups([group], request_timeout=5)[group]
            described = future.result(timeout=10)
        except (KafkaException, TimeoutError):
            return None
        member = c.memberid()
        return bool(member) and any(m.member_id == member for m in described.members)

    return in_group


def watch(bootstrap: str, group: str, consumer: Callable[[], Consumer | None]) -> GroupWatch:
    """The watch a runner keeps over its group consumer (``consumer()``: the current one)."""
    return GroupWatch(member_of(bootstrap, group, consumer))


def warn_rejoin(name: str, group: str) -> None:
    log.warning(
        "%s: no partitions, and the broker says twice it is not a member of group %r (the client "
        "did not join again after losing the broker): joining with a new consumer",
        name,
        group,
    )
