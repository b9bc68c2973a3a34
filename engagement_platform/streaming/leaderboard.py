"""Leaderboard logic with no broker and no Redis: minute buckets, late rules, per-batch increments.

Everything here is pure so the rules that decide *what* is counted can be tested on edge cases
(UTC minute/hour/day/year boundaries, late events, duplicates inside a batch, metric choice)
without a stack. ``leaderboard_runner`` applies the result to Redis; ``serving.top_content`` ranks.

Key layout (the default prefix is empty, so the public contract is exactly
``zset:eng:minute:<YYYYMMDDHHMM>``; tests and the benchmark put a unique prefix in front of
every key so they never touch a live leaderboard):

- ``zset:eng:minute:<YYYYMMDDHHMM>``  content_id -> score, for events whose ``event_ts`` is in
  that UTC minute;
- ``bitmap:eng:seen:<N>``             one bit per event id ``N * 2^20 ... N * 2^20 + 2^20 - 1``:
  set once the event is counted (dedupe; ``SeenBits``). Before, one set of ids per minute,
  ``set:eng:seen:<YYYYMMDDHHMM>``; ``leaderboard_upgrade`` moves those into the bitmaps;
- ``hll:eng:minute:<YYYYMMDDHHMM>``   HyperLogLog of the user ids of that minute's events, and
  ``hll:eng:minute:<YYYYMMDDHHMM>:<content_id>`` the same per content (unique users: PFCOUNT
  over a window's keys merges them); written with the counts, expiring with the minute bucket,
  by the events leaderboard only (users do not depend on the metric: one copy, not two);
- ``hash:eng:content``                content_id -> JSON ``{title, content_type, slug}`` for display;
- ``cache:eng:top:<window>:<YYYYMMDDHHMM>``  short-lived ZUNIONSTORE result of the read API.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec

MINUTE_KEY_PREFIX = "zset:eng:minute:"
USERS_KEY_PREFIX = "hll:eng:minute:"
SEEN_BITMAP_PREFIX = "bitmap:eng:seen:"
SEEN_SET_PREFIX = "set:eng:seen:"  # before the bitmaps: what leaderboard_upgrade moves into them
CONTENT_HASH_KEY = "hash:eng:content"
TOP_CACHE_PREFIX = "cache:eng:top:"

METRIC_EVENTS = "events"
METRIC_ENGAGEMENT_SECONDS = "engagement_seconds"
METRICS = (METRIC_EVENTS, METRIC_ENGAGEMENT_SECONDS)

# The largest window the read API is meant to serve, and what the consumer accepts as "late".
DEFAULT_RETENTION_MINUTES = 120
# How long a bucket outlives the end of its retention: covers clock skew between the consumer
# and Redis, so a bucket can never expire while the consumer still accepts writes to it.
DEFAULT_TTL_MARGIN_SECONDS = 600
# Event ids per dedupe bitmap: 2^20 bits are 128 KB, which a dense id sequence fills (a Postgres
# bigserial: ids are global, so the bitmaps are keyed by id range, not by minute).
RANGE_BITS = 20
RANGE_MASK = (1 << RANGE_BITS) - 1
# Timestamps further ahead than this are a broken clock upstream, not an event to rank.
DEFAULT_MAX_FUTURE_MINUTES = 60


class InvalidEvent(ValueError):
    """An enriched record the leaderboard cannot count (the enrichment DLQ should have caught it)."""


@dataclass(frozen=True)
class Keys:
    """Every Redis key the leaderboard uses, under one optional prefix."""

    prefix: str = ""

    def minute(self, bucket: str) -> str:
        return f"{self.prefix}{MINUTE_KEY_PREFIX}{bucket}"

    def users(self, bucket: str, content_id: str | None = None) -> str:
        """The HyperLogLog of a minute's user ids: overall, or of one content."""
        head = f"{self.prefix}{USERS_KEY_PREFIX}{bucket}"
        return head if content_id is None else f"{head}:{content_id}"

    def seen_bitmap(self, id_range: int) -> str:
        """The bitmap of the event ids ``id_range * 2^20`` to ``id_range * 2^20 + 2^20 - 1``."""
        return f"{self.prefix}{SEEN_BITMAP_PREFIX}{id_range}"

    def seen_bit(self, event_id: int) -> tuple[str, int]:
        """(bitmap, bit offset) that says whether ``event_id`` was counted."""
        return self.seen_bitmap(event_id >> RANGE_BITS), event_id & RANGE_MASK

    @property
    def old_seen_pattern(self) -> str:
        """SCAN pattern of the seen sets of before the bitmaps (``leaderboard_upgrade``)."""
        return f"{self.prefix}{SEEN_SET_PREFIX}*"

    @property
    def content(self) -> str:
        return f"{self.prefix}{CONTENT_HASH_KEY}"

    def top_cache(self, window_minutes: int, end_bucket: str) -> str:
        return f"{self.prefix}{TOP_CACHE_PREFIX}{window_minutes}:{end_bucket}"

    @property
    def all_patterns(self) -> tuple[str, ...]:
        """SCAN patterns that find every key under this prefix (for cleanup)."""
        return tuple(
            f"{self.prefix}{p}*"
            for p in (
                MINUTE_KEY_PREFIX,
                USERS_KEY_PREFIX,
                SEEN_BITMAP_PREFIX,
                SEEN_SET_PREFIX,
                CONTENT_HASH_KEY,
                TOP_CACHE_PREFIX,
            )
        )


def metric_key_prefix(metric: str, prefix: str = "") -> str:
    """Where the leaderboard of ``metric`` lives when both are kept (``up`` runs a consumer per
    metric): events under ``prefix`` itself, so the public contract stays
    ``zset:eng:minute:<YYYYMMDDHHMM>``; engagement seconds under ``prefix + "seconds:"``."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    return prefix if metric == METRIC_EVENTS else f"{prefix}seconds:"


# --- minute buckets ---------------------------------------------------------------------------


def _is_digits(s: str) -> bool:
    return s.isascii() and s.isdigit()


def minute_bucket(event_ts: str) -> str:
    """``YYYYMMDDHHMM`` of the UTC minute an ISO-8601 timestamp falls in.

    The enrichment writes ``YYYY-MM-DDTHH:MM:SS.mmmZ``; for that shape the bucket is a slice of
    the string (no datetime per event: this runs 10^5-10^6 times a second in the benchmark).
    Anything else ISO-8601 with an offset is parsed and converted to UTC, so an event stamped
    ``23:59:30-01:00`` lands in the next UTC day, not in its local minute. Naive timestamps
    are refused: guessing their zone would silently shift them by hours.
    """
    if (
        len(event_ts) >= 17
        and event_ts[-1] == "Z"
        and event_ts[4] == "-"
        and event_ts[7] == "-"
        and event_ts[10] in "T "
        and event_ts[13] == ":"
        and event_ts[16] == ":"
    ):
        bucket = event_ts[0:4] + event_ts[5:7] + event_ts[8:10] + event_ts[11:13] + event_ts[14:16]
        if _is_digits(bucket) and "00" < bucket[4:6] <= "12" and bucket[8:10] < "24" and bucket[10:12] < "60":
            return bucket
    return bucket_of(parse_ts(event_ts))


def parse_ts(value: str) -> datetime:
    """An aware UTC datetime from an ISO-8601 string that carries its zone."""
    if not isinstance(value, str):
        raise InvalidEvent(f"event_ts must be a string, got {type(value).__name__}")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(f"event_ts is not ISO-8601: {value!r}") from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise InvalidEvent(f"event_ts has no time zone: {value!r}")
    return ts.astimezone(UTC)


def bucket_of(ts: datetime) -> str:
    """``YYYYMMDDHHMM`` of an aware datetime, in UTC."""
    if ts.tzinfo is None:
        raise ValueError("naive datetime: the leaderboard only buckets UTC-aware times")
    return ts.astimezone(UTC).strftime("%Y%m%d%H%M")


def bucket_start(bucket: str) -> datetime:
    return datetime.strptime(bucket, "%Y%m%d%H%M").replace(tzinfo=UTC)


def bucket_epoch(bucket: str) -> int:
    """Unix seconds at the start of the bucket's minute."""
    return int(bucket_start(bucket).timestamp())


def last_buckets(now: datetime, window_minutes: int) -> list[str]:
    """The ``window_minutes`` buckets ending with (and including) the minute of ``now``, newest first."""
    if window_minutes < 1:
        raise ValueError(f"window_minutes must be at least 1, got {window_minutes}")
    end = now.astimezone(UTC).replace(second=0, microsecond=0)
    return [bucket_of(end - timedelta(minutes=i)) for i in range(window_minutes)]


# --- retention rules --------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    """What the consumer counts and how long buckets live.

    ``retention_minutes`` is both the oldest event accepted (relative to the consumer's clock)
    and the largest window served. A bucket's expiry is *absolute*: the end of its minute plus
    retention plus a margin. Writes to a bucket are only accepted while
    ``now < bucket end + retention``, so the bucket -- and, crucially, the bits that say which
    of its events were counted (``SeenBits``) -- are always still alive when a replayed or
    duplicated event arrives for it.
    """

    metric: str = METRIC_EVENTS
    retention_minutes: int = DEFAULT_RETENTION_MINUTES
    ttl_margin_seconds: int = DEFAULT_TTL_MARGIN_SECONDS
    max_future_minutes: int = DEFAULT_MAX_FUTURE_MINUTES

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.retention_minutes < 1:
            raise ValueError("retention_minutes must be at least 1")
        if self.ttl_margin_seconds < 60:
            raise ValueError("ttl_margin_seconds must be at least 60 (clock skew between hosts)")

    @property
    def ttl_seconds(self) -> int:
        """A bucket's time to live counted from the end of its minute: longer than any window."""
        return self.retention_minutes * 60 + self.ttl_margin_seconds

    def expire_at(self, bucket: str) -> int:
        return bucket_epoch(bucket) + 60 + self.ttl_seconds

    def window(self, now: datetime) -> tuple[str, str]:
        """(oldest accepted bucket, newest accepted bucket) at ``now``, both inclusive.

        Oldest: the bucket that still has at least a partial minute inside retention, i.e.
        ``bucket end > now - retention``.
        """
        now = now.astimezone(UTC)
        # bucket_of floors: the bucket containing now-retention ends after now-retention, so it is in
        oldest = bucket_of(now - timedelta(minutes=self.retention_minutes))
        newest = bucket_of(now + timedelta(minutes=self.max_future_minutes))
        return oldest, newest


# --- dedupe bitmaps ---------------------------------------------------------------------------


@dataclass
class SeenBits:
    """The dedupe bitmaps one script call touches, and each one's expiry.

    A bucket's ids go to the script as runs ``[slot, count, ...]`` (``slot``: the bitmap's place
    among the call's bitmaps, from 1) and, in the same order, their bit offsets in their bitmap:
    small exact integers, where Lua's numbers (doubles) could not hold a bigint id. A bucket's
    ids are nearly always one run (2^20 consecutive ids per bitmap), which the script sets with
    one ``BITFIELD ... SET u1`` per 1,000 ids.

    The expiry rule: a bitmap lives as long as any minute bucket that may still receive one of
    its ids would, i.e. until the latest ``Rules.expire_at`` of the buckets its ids were counted
    into. Each call passes, per bitmap, the latest of that call's buckets, and the script only
    ever moves an expiry later (Redis 6.2 has no ``EXPIREAT ... GT``: it compares ``TTL``). An id
    always falls in the same bucket (its ``event_ts`` is immutable), and the consumer writes to
    a bucket only while ``now < bucket end + retention``, so whenever a replay of an id is
    accepted, the bit that says it was counted is still there.
    """

    keys: Keys
    slots: dict[int, int] = field(default_factory=dict)  # id range -> slot
    expire_at: list[int] = field(default_factory=list)  # per slot - 1

    def pack(self, event_ids: Sequence[int], expire_at: int) -> tuple[bytes, bytes]:
        """(runs, offsets) of ``event_ids`` as JSON arrays, every id in a bucket that expires at
        ``expire_at``."""
        if not event_ids:
            return b"[]", b"[]"
        encode = msgspec.json.encode
        offsets = encode([i & RANGE_MASK for i in event_ids])
        low, high = min(event_ids) >> RANGE_BITS, max(event_ids) >> RANGE_BITS
        if low == high:  # the common case: a batch's ids are close together
            return encode([self._slot(low, expire_at), len(event_ids)]), offsets
        runs: list[int] = []
        current = None
        for i in event_ids:
            id_range = i >> RANGE_BITS
            if id_range == current:
                runs[-1] += 1
            else:
                current = id_range
                runs += (self._slot(id_range, expire_at), 1)
        return encode(runs), offsets

    def _slot(self, id_range: int, expire_at: int) -> int:
        slot = self.slots.get(id_range)
        if slot is None:
            slot = self.slots[id_range] = len(self.slots) + 1
            self.expire_at.append(expire_at)
        elif self.expire_at[slot - 1] < expire_at:
            self.expire_at[slot - 1] = expire_at
        return slot

    @property
    def bitmap_keys(self) -> list[str]:
        """The bitmaps in slot order."""
        return [self.keys.seen_bitmap(r) for r in self.slots]


# --- per-batch aggregation --------------------------------------------------------------------


@dataclass
class Group:
    """The new event ids of one (bucket, content_id) in a batch, with their engagement seconds
    when that is the metric (counting needs only the ids), and the distinct user ids of those
    events (for the unique-user HyperLogLogs; an event without one adds none)."""

    event_ids: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    users: set[str] = field(default_factory=set)

    @property
    def total(self) -> float:
        return sum(self.values) if self.values else len(self.event_ids)


@dataclass
class Batch:
    """What one consumed batch asks Redis to do, plus what was refused and why."""

    # bucket -> content_id -> Group
    groups: dict[str, dict[str, Group]] = field(default_factory=dict)
    # content_id -> display metadata, only for content the batch knows (not content_missing)
    content: dict[str, dict[str, Any]] = field(default_factory=dict)
    processed: int = 0
    batch_duplicates: int = 0  # same event id twice inside this batch
    late: int = 0
    future: int = 0
    # (position in the batch, reason) of every record refused as invalid: the DLQ's content
    invalid_at: list[tuple[int, str]] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        return len(self.invalid_at)

    @property
    def invalid_samples(self) -> list[str]:
        return [reason[:200] for _i, reason in self.invalid_at[:3]]

    @property
    def candidates(self) -> int:
        """Events handed to Redis (it may still refuse some as already seen)."""
        return sum(len(g.event_ids) for by_content in self.groups.values() for g in by_content.values())

    @property
    def buckets(self) -> list[str]:
        return sorted(self.groups)


class Counted(msgspec.Struct, gc=False):
    """What the leaderboard reads of an ``engagement_enriched`` record; the decoder skips every
    other field unparsed and checks these types itself, which is half the cost of a dict from
    orjson and the checks in Python (the consumer's main thread is its limit)."""

    event_id: Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]  # Postgres bigint
    content_id: Annotated[str, msgspec.Meta(min_length=1)]
    event_ts: str
    user_id: Any = None  # only a string counts as a user; anything else is no user, not invalid
    content_missing: Any = None
    title: Any = None
    content_type: Any = None
    slug: Any = None


class Summed(Counted, gc=False):
    """The same, for the engagement-seconds leaderboard (a click has no seconds: None)."""

    engagement_seconds: Annotated[float, msgspec.Meta(ge=0)] | None = None


Decoded = Counted | InvalidEvent


def decoder(metric: str) -> Callable[[bytes | None], Decoded]:
    """A record's value to what ``aggregate`` reads, or the reason it is unusable (never raises).
    Only the engagement-seconds leaderboard asks for ``engagement_seconds``, so a bad one does
    not stop the events leaderboard from counting the record."""
    decode = msgspec.json.Decoder(Summed if metric == METRIC_ENGAGEMENT_SECONDS else Counted).decode

    def read(value: bytes | None) -> Decoded:
        if value is None:
            return InvalidEvent("empty record (tombstone)")
        try:
            return decode(value)
        except msgspec.ValidationError as exc:
            return InvalidEvent(str(exc))
        except msgspec.DecodeError as exc:
            return InvalidEvent(f"bad JSON: {exc}")

    return read


def aggregate(events: Sequence[Decoded], rules: Rules, now: datetime) -> Batch:
    """Fold a batch of decoded events into per-(bucket, content) groups of new event ids.

    ``events`` may hold ``InvalidEvent`` (records that failed to decode): they are counted as
    invalid, never raised, so one bad record cannot stop the stream. A duplicate id inside the
    batch is dropped here (first occurrence wins); duplicates across batches are Redis's job.
    """
    oldest, newest = rules.window(now)
    batch = Batch()
    seen: set[int] = set()
    add_seen = seen.add
    count_metric = rules.metric == METRIC_EVENTS
    groups = batch.groups
    content = batch.content
    invalid_at = batch.invalid_at
    late = future = duplicates = 0
    # A batch spans few minutes: remember "YYYY-MM-DDTHH:MM" -> bucket for UTC ("Z") stamps.
    minute_of: dict[str, str] = {}
    # The loop is the consumer's hot path (every record passes here): the decoder checked the
    # types, so what is left is inline, and anything unusual falls back to the careful code.
    for position, event in enumerate(events):
        if type(event) is InvalidEvent:
            invalid_at.append((position, str(event)))
            continue
        ts = event.event_ts
        try:
            if ts[-1:] == "Z" and len(ts) >= 17 and ts[16] == ":":
                bucket = minute_of.get(ts[:16])
                if bucket is None:
                    bucket = minute_of[ts[:16]] = minute_bucket(ts)
            else:
                bucket = minute_bucket(ts)
        except (ValueError, OverflowError) as exc:  # InvalidEvent is a ValueError
            invalid_at.append((position, str(exc)))
            continue
        if bucket < oldest:
            late += 1
            continue
        if bucket > newest:
            future += 1
            continue
        event_id = event.event_id
        if event_id in seen:
            duplicates += 1
            continue
        add_seen(event_id)
        content_id = event.content_id
        by_content = groups.get(bucket)
        if by_content is None:
            by_content = groups[bucket] = {}
        group = by_content.get(content_id)
        if group is None:
            group = by_content[content_id] = Group()
        group.event_ids.append(event_id)
        user_id = event.user_id
        if count_metric and type(user_id) is str:  # users are kept by the events leaderboard only
            group.users.add(user_id)
        if not count_metric:
            group.values.append(event.engagement_seconds or 0.0)  # type: ignore[attr-defined]  # Summed
        if content_id not in content and not event.content_missing:
            title = event.title
            if title is not None:
                content[content_id] = {"title": title, "content_type": event.content_type, "slug": event.slug}
    batch.processed = len(events)
    batch.late, batch.future, batch.batch_duplicates = late, future, duplicates
    return batch


def utcnow() -> datetime:
    return datetime.now(UTC)
