"""The leaderboard stage: count enriched events into Redis minute buckets, once per event id.

Each batch becomes one ``EVALSHA`` of the Lua script below, which sets an event id's bit in
its dedupe bitmap and adds the event to its content's score atomically, so a replayed batch or
a duplicate at another offset counts nothing twice; offsets are committed after Redis answered.
The same script PFADDs the events' user ids to the minute's unique-user HyperLogLogs (per
content and overall): PFADD is idempotent, so a replay adds no user twice either.
Why that holds, and the memory it costs: docs/design/consumers.md.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import redis
from confluent_kafka import Message

from engagement_platform.argtypes import positive_int
from engagement_platform.settings import Settings
from engagement_platform.streaming import kafka_io, sink
from engagement_platform.streaming.errors import retry_sink
from engagement_platform.streaming.leaderboard import (
    DEFAULT_RETENTION_MINUTES,
    DEFAULT_TTL_MARGIN_SECONDS,
    METRIC_EVENTS,
    METRICS,
    Batch,
    Keys,
    Rules,
    SeenBits,
    aggregate,
    decoder,
    utcnow,
)
from engagement_platform.streaming.leaderboard_upgrade import upgrade_seen_sets

log = logging.getLogger("engagement_platform.streaming.leaderboard")

DEFAULT_GROUP = "leaderboard"
DEFAULT_BATCH_SIZE = 5000

# KEYS: the content hash, the minute bucket of each bucket, then the dedupe bitmaps (SeenBits),
# then each bucket's unique-user HyperLogLog (a content's own is that key + ":<content_id>").
# ARGV: mode, #buckets, #content, #bitmaps, content pairs (id, json)...; then per bucket:
# expire_at, groups as JSON [content_id, #ids, ...], its ids' runs as JSON [bitmap slot, #ids,
# ...], their bit offsets as a JSON array [, their values as a JSON array], each group's
# distinct user ids as JSON [[user, ...], ...] and then the bucket's own distinct users (one
# PFADD of the union into the overall key, not one per content); then each bitmap's expiry.
# Every user id of a group is added, counted or duplicate: PFADD is idempotent, and filtering
# would cost more.
# Offsets travel as one string per bucket and are split with gmatch, which spares the client
# packing thousands of arguments. Per 1,000 ids, one BITFIELD SET u1 both marks them and
# says which were new (duplicates inside the batch were dropped before): 2.1 against 4.1 µs an
# id for SMISMEMBER + SADD, and 4.8 for a SETBIT per id; one ZINCRBY per content of the new ones.
# A bitmap's expiry only ever moves later (no EXPIREAT GT in Redis 6.2: compare TTL).
# Redis 6.2's Lua refuses to unpack() more than ~8000 values at once: variadic calls are chunked.
APPLY_LUA = """
local sum_mode = ARGV[1] == 'sum'
local nb = tonumber(ARGV[2])
local nc = tonumber(ARGV[3])
local nr = tonumber(ARGV[4])
local CHUNK = 4000
local p = 5
local i = 0
while i < nc do
  local j = math.min(i + CHUNK / 2, nc)
  redis.call('HSET', KEYS[1], unpack(ARGV, p + 2 * i, p + 2 * j - 1))
  i = j
end
p = p + 2 * nc
local base = 1 + nb
local hll_base = base + nr
local applied = 0
local dups = 0
for b = 1, nb do
  local zkey = KEYS[1 + b]
  local expire_at = ARGV[p]
  local groups = cjson.decode(ARGV[p + 1])
  local runs = cjson.decode(ARGV[p + 2])
  local offset = string.gmatch(ARGV[p + 3], '%d+')
  local flags = {}
  local n = 0
  local args = {}
  for q = 1, #runs, 2 do
    local bitmap = KEYS[base + runs[q]]
    local left = runs[q + 1]
    while left > 0 do
      local take = math.min(left, 1000)
      for k = 0, take - 1 do
        args[4 * k + 1] = 'SET'
        args[4 * k + 2] = 'u1'
        args[4 * k + 3] = offset()
        args[4 * k + 4] = 1
      end
      local old = redis.call('BITFIELD', bitmap, unpack(args, 1, 4 * take))
      for k = 1, take do flags[n + k] = old[k] end
      n = n + take
      left = left - take
    end
  end
  local vals
  if sum_mode then
    vals = {}
    local k = 0
    for v in string.gmatch(ARGV[p + 4], '[^,%[%]]+') do
      k = k + 1
      vals[k] = tonumber(v)
    end
    p = p + 1
  end
  local users = cjson.decode(ARGV[p + 4])
  local everyone = cjson.decode(ARGV[p + 5])
  p = p + 6
  local ukey = KEYS[hll_base + b]
  for u = 1, #everyone, CHUNK do
    redis.call('PFADD', ukey, unpack(everyone, u, math.min(u + CHUNK - 1, #everyone)))
  end
  local nn = 0
  local at = 0
  for g = 1, #groups, 2 do
    local cid, count = groups[g], groups[g + 1]
    local list = users[(g + 1) / 2]
    if #list > 0 then
      local ckey = ukey .. ':' .. cid
      for u = 1, #list, CHUNK do
        redis.call('PFADD', ckey, unpack(list, u, math.min(u + CHUNK - 1, #list)))
      end
      redis.call('EXPIREAT', ckey, expire_at)
    end
    local added, inc = 0, 0
    for k = at + 1, at + count do
      if flags[k] == 0 then
        added = added + 1
        if sum_mode then inc = inc + vals[k] end
      end
    end
    at = at + count
    if added > 0 then
      nn = nn + added
      if not sum_mode then inc = added end
      redis.call('ZINCRBY', zkey, string.format('%.17g', inc), cid)
    end
  end
  applied = applied + nn
  dups = dups + n - nn
  redis.call('EXPIREAT', zkey, expire_at)
  if #everyone > 0 then redis.call('EXPIREAT', ukey, expire_at) end
end
if nr > 0 then
  local now = tonumber(redis.call('TIME')[1])
  for r = 1, nr do
    local key = KEYS[base + r]
    local want = tonumber(ARGV[p + r - 1])
    local ttl = redis.call('TTL', key)
    if ttl < 0 or now + ttl < want then redis.call('EXPIREAT', key, want) end
  end
end
return {applied, dups}
"""


@dataclass(frozen=True)
class Command:
    """One EVALSHA of the script, and the content metadata it writes."""

    keys: list[str]
    args: list[Any]
    content: dict[str, bytes]


@dataclass(frozen=True)
class Prepared:
    """A batch and its command, built on the consumer's thread (not the writer's: the two
    would take turns at the GIL)."""

    batch: Batch
    command: Command | None


@dataclass(frozen=True)
class ApplyResult:
    applied: int  # event ids counted for the first time
    duplicates: int  # event ids Redis had already counted (replays, duplicates across batches)


class Applier:
    """Turns a ``Batch`` into one EVALSHA; remembers which content metadata Redis already holds."""

    # Forget what was written now and then, so a wiped content hash heals itself.
    CONTENT_REFRESH_SECONDS = 300.0

    def __init__(self, client: redis.Redis, rules: Rules, keys: Keys) -> None:
        self.client = client
        self.rules = rules
        self.keys = keys
        self.script = client.register_script(APPLY_LUA)  # EVALSHA, loading the script on NOSCRIPT
        self._written_content: dict[str, bytes] = {}
        self._content_since = time.monotonic()

    def build(self, batch: Batch) -> Command | None:
        """KEYS and ARGV for the script, and the content metadata it writes; None: nothing to do."""
        if not batch.groups and not batch.content:
            return None
        # runs on the consumer's thread while the writer may update _written_content: a stale
        # view only writes some metadata again (HSET of the same value)
        if time.monotonic() - self._content_since > self.CONTENT_REFRESH_SECONDS:
            self._written_content.clear()
            self._content_since = time.monotonic()
        content: dict[str, bytes] = {}
        for content_id, meta in batch.content.items():
            encoded = orjson.dumps(meta)
            if self._written_content.get(content_id) != encoded:
                content[content_id] = encoded
        count_mode = self.rules.metric == METRIC_EVENTS
        bits = SeenBits(self.keys)
        keys: list[str] = [self.keys.content]
        per_bucket: list[Any] = []
        users: list[str] = []
        for bucket, by_content in batch.groups.items():
            users.append(self.keys.users(bucket))
            keys.append(self.keys.minute(bucket))
            ids: list[int] = []
            headers: list[Any] = []
            for content_id, group in by_content.items():
                headers += (content_id, len(group.event_ids))
                ids += group.event_ids
            expire_at = self.rules.expire_at(bucket)
            per_bucket += (expire_at, orjson.dumps(headers), *bits.pack(ids, expire_at))
            if not count_mode:
                per_bucket.append(orjson.dumps([v for g in by_content.values() for v in g.values]))
            per_group = [g.users for g in by_content.values()]
            per_bucket += (
                orjson.dumps(list(map(list, per_group))),
                orjson.dumps(list(set().union(*per_group))),
            )
        keys += bits.bitmap_keys
        keys += users
        args: list[Any] = ["count" if count_mode else "sum", len(batch.groups), len(content), len(bits.slots)]
        for content_id, encoded in content.items():
            args += (content_id, encoded)
        args += per_bucket
        args += bits.expire_at
        return Command(keys, args, content)

    def run(self, command: Command | None) -> ApplyResult:
        """One round trip; safe to repeat (a replay counts nothing twice)."""
        if command is None:
            return ApplyResult(0, 0)
        applied, duplicates = self.script(keys=command.keys, args=command.args)
        self._written_content.update(command.content)
        return ApplyResult(int(applied), int(duplicates))

    def apply(self, batch: Batch) -> ApplyResult:
        return self.run(self.build(batch))


def counted(client: redis.Redis, keys: Keys, event_ids: Sequence[int]) -> list[bool]:
    """Whether each event id's bit says it was counted (the e2e benchmark's Redis stage, tests)."""
    by_bitmap: dict[str, list[tuple[int, int]]] = {}
    for position, event_id in enumerate(event_ids):
        bitmap, offset = keys.seen_bit(event_id)
        by_bitmap.setdefault(bitmap, []).append((position, offset))
    pipe = client.pipeline(transaction=False)
    order: list[list[tuple[int, int]]] = []
    for bitmap, bits in by_bitmap.items():
        for start in range(0, len(bits), 2000):
            chunk = bits[start : start + 2000]
            pipe.execute_command("BITFIELD", bitmap, *(x for _p, off in chunk for x in ("GET", "u1", off)))
            order.append(chunk)
    flags = [False] * len(event_ids)
    for chunk, values in zip(order, pipe.execute(), strict=True):
        for (position, _off), value in zip(chunk, values, strict=True):
            flags[position] = bool(value)
    return flags


def redis_client(settings: Settings) -> redis.Redis:
    """The consumer's client, logged in as its own ACL user (REDIS_WRITER_USER)."""
    user, password = settings.redis_login("writer")
    return redis.Redis(
        host=settings.redis_host,
        port=settings.redis_port,
        db=settings.redis_db,
        username=user,
        password=password or None,
        socket_connect_timeout=5,
        socket_timeout=30,
        health_check_interval=30,
    )


@dataclass(kw_only=True)
class Config(sink.SinkOptions):
    group: str = DEFAULT_GROUP
    batch_size: int = DEFAULT_BATCH_SIZE
    key_prefix: str = ""
    rules: Rules = field(default_factory=Rules)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Config:
        config = super().from_args(args)
        config.rules = Rules(metric=args.metric, retention_minutes=args.retention_minutes)
        return config


class LeaderboardConsumer(sink.SinkConsumer[Prepared, ApplyResult]):
    """The consume -> aggregate -> apply -> commit loop; the benchmark drives the same object."""

    name = "leaderboard"
    sink_name = "Redis"
    records_out = "applied"
    sink_errors = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)

    def __init__(
        self,
        settings: Settings,
        config: Config,
        client: redis.Redis | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(settings, config)
        self.config: Config = config
        self.now = now
        self.redis = client if client is not None else redis_client(settings)
        self.applier = Applier(self.redis, config.rules, Keys(config.key_prefix))
        self.read = decoder(config.rules.metric)

    def prepare(self, records: Sequence[Message]) -> Prepared:
        read = self.read
        batch = aggregate([read(m.value()) for m in records], self.config.rules, self.now())
        if batch.invalid:
            log.warning(
                "%d invalid record(s) to %s, e.g. %s",
                batch.invalid,
                self.config.dlq_topic,
                batch.invalid_samples[0],
            )
        return Prepared(batch, self.applier.build(batch))

    def serve(self, stop: kafka_io.GracefulStop) -> int:
        """First the seen sets of an older version into the bitmaps (before any batch: dedupe is
        only exact once they are), then ``consume leaderboard``'s loop."""
        retry_sink(
            lambda: upgrade_seen_sets(self.redis, self.applier.keys, self.config.rules),
            self.sink_errors,
            self.sink_name,
            stop,
        )
        return super().serve(stop)

    def dead_letters(self, prepared: Prepared, records: Sequence[Message]) -> list[tuple[Message, str]]:
        return [(records[position], reason) for position, reason in prepared.batch.invalid_at]

    def write(self, prepared: Prepared) -> ApplyResult:
        return self.applier.run(prepared.command)

    def written(self, prepared: Prepared, result: ApplyResult, seconds: float) -> None:
        batch = prepared.batch
        self.summary.add(
            processed=batch.processed,
            applied=result.applied,
            duplicates=result.duplicates + batch.batch_duplicates,
            late=batch.late,
            future=batch.future,
            invalid=batch.invalid,
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = Config()
    sink.add_arguments(parser, d, batch="records per batch")
    parser.add_argument(
        "--dlq-topic",
        default=d.dlq_topic,
        help=f"where invalid records go, with the reason (default {d.dlq_topic})",
    )
    parser.add_argument(
        "--metric",
        choices=METRICS,
        default=METRIC_EVENTS,
        help="score: number of events, or sum of engagement seconds (default events)",
    )
    parser.add_argument(
        "--retention-minutes",
        type=positive_int,
        default=DEFAULT_RETENTION_MINUTES,
        help="largest window served; older events are skipped as late "
        f"(default {DEFAULT_RETENTION_MINUTES}; buckets live {DEFAULT_TTL_MARGIN_SECONDS}s longer)",
    )
    parser.add_argument(
        "--key-prefix",
        default="",
        help="put in front of every Redis key (tests, benchmarks); "
        "default none, i.e. zset:eng:minute:<YYYYMMDDHHMM>",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    kafka_io.setup_logging()
    config = Config.from_args(args)
    stop = kafka_io.GracefulStop()
    runner = LeaderboardConsumer(settings, config)
    log.info(
        "leaderboard: topic=%s group=%s metric=%s retention=%dmin ttl=%ds prefix=%r redis=%s:%d",
        config.topic,
        config.group,
        config.rules.metric,
        config.rules.retention_minutes,
        config.rules.ttl_seconds,
        config.key_prefix,
        settings.redis_host,
        settings.redis_port,
    )
    code = runner.serve(stop)
    if code == 0:
        log.info("leaderboard: stopped cleanly")
    return code
