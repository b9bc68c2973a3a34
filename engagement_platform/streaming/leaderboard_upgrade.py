"""Upgrade of the leaderboard's dedupe state: old per-minute seen sets into id-range bitmaps.

Before the bitmaps, each minute bucket had a set ``set:eng:seen:<YYYYMMDDHHMM>`` of the event
ids counted into it. A deployment upgraded in place still holds those sets, and a replay of one
of their events after the upgrade must not count it again. So the leaderboard runs this at its
start, before its first batch: every id of every old set gets its bit set, with the bitmap's
expiry extended to the set's bucket by the same rule as the consumer's script, then the set is
deleted.

At start, not as a command: dedupe is only exact once this is done, so it has to happen before
the new code counts anything, and a step an operator can forget would fail silently (a replayed
event counted twice). With nothing left to move it costs one SCAN of the keyspace.

Idempotent and resumable: setting a bit twice changes nothing, and a set is deleted only after
all of its ids are in the bitmaps, so a crash in between leaves the set to be moved again by
the next start. Two instances of one group may run it at once (each set they both move ends
fully moved before either deletes it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import redis
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from engagement_platform.streaming.leaderboard import SEEN_SET_PREFIX, Keys, Rules, SeenBits

log = logging.getLogger("engagement_platform.streaming.leaderboard")

CHUNK = 5000  # ids per SSCAN and per script call

# KEYS: the old seen set, then the bitmaps its ids fall in. ARGV: the bitmaps' expiry (absolute),
# the ids' runs [bitmap slot (1 for KEYS[2]), #ids, ...] and bit offsets (SeenBits.pack), '1' to
# delete the set. Moves are rare and once: a SETBIT per id is plenty.
MIGRATE_LUA = """
local expire_at = tonumber(ARGV[1])
local runs = cjson.decode(ARGV[2])
local offset = string.gmatch(ARGV[3], '%d+')
for q = 1, #runs, 2 do
  local bitmap = KEYS[1 + runs[q]]
  for k = 1, runs[q + 1] do redis.call('SETBIT', bitmap, offset(), 1) end
end
local now = tonumber(redis.call('TIME')[1])
for slot = 2, #KEYS do
  local ttl = redis.call('TTL', KEYS[slot])
  if ttl < 0 or now + ttl < expire_at then redis.call('EXPIREAT', KEYS[slot], expire_at) end
end
if ARGV[4] == '1' then redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Upgraded:
    sets: int  # old seen sets moved (or dropped: past every bucket's retention)
    ids: int  # event ids whose bits were set
    seconds: float


def old_seen_sets(client: redis.Redis, keys: Keys) -> Iterator[tuple[bytes, str]]:
    """(key, bucket) of every old seen set under ``keys``' prefix; other keys that merely match
    the pattern (a bucket that is not 12 digits) are left alone."""
    start = len(keys.prefix.encode()) + len(SEEN_SET_PREFIX)
    for key in client.scan_iter(match=keys.old_seen_pattern, count=1000):
        bucket = key[start:].decode(errors="replace")
        if len(bucket) == 12 and bucket.isascii() and bucket.isdigit():
            yield key, bucket


def upgrade_seen_sets(client: redis.Redis, keys: Keys, rules: Rules) -> Upgraded:
    """Move every old seen set under ``keys``' prefix into the bitmaps, with a progress bar."""
    began = time.monotonic()
    found = list(old_seen_sets(client, keys))
    if not found:
        return Upgraded(0, 0, time.monotonic() - began)
    script = client.register_script(MIGRATE_LUA)
    total = sum(int(client.scard(key)) for key, _bucket in found)
    log.info("upgrading %d seen set(s), %d event ids, into dedupe bitmaps", len(found), total)
    moved = 0
    columns = (TextColumn("seen sets -> bitmaps"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns) as bar:
        task = bar.add_task("ids", total=total)
        for key, bucket in found:
            expire_at = rules.expire_at(bucket)
            if expire_at <= time.time():  # no longer accepted by this consumer: nothing to keep
                script(keys=[key], args=[expire_at, "[]", "[]", "1"])
                continue
            for ids in _sscan_chunks(client, key):
                bits = SeenBits(keys)
                runs, offsets = bits.pack(ids, expire_at)
                script(keys=[key, *bits.bitmap_keys], args=[expire_at, runs, offsets, "0"])
                moved += len(ids)
                bar.update(task, completed=moved)
            script(keys=[key], args=[expire_at, "[]", "[]", "1"])
    seconds = time.monotonic() - began
    log.info("upgraded %d seen set(s), %d event ids, in %.1f s", len(found), moved, seconds)
    return Upgraded(len(found), moved, seconds)


def _sscan_chunks(client: redis.Redis, key: bytes) -> Iterator[list[int]]:
    cursor = 0
    while True:
        cursor, members = client.sscan(key, cursor, count=CHUNK)
        if members:
            yield [int(m) for m in members]
        if cursor == 0:
            return
