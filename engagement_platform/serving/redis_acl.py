"""The Redis ACL users of the leaderboard (issue 20): who may touch which keys with which commands.

Redis 6 checks every command, including those a Lua script calls, against the user that runs
it, so the leaderboard consumer's user gets the script commands plus the reads and writes its
script makes, on its own keys only; the dashboard's and ``top_content``'s user gets reads, and
the one write the read API makes: its short-lived ``ZUNIONSTORE`` cache. Redis 6.2 (local mode)
has no read-only key patterns (``%R~``, Redis 7), so the reader's patterns also cover the
minute keys it merges; the commands it lacks (``SET``, ``DEL``, ``FLUSHALL``...) are what keep
them safe. Key patterns start with ``*`` so any ``LEADERBOARD_KEY_PREFIX`` matches.

Local mode writes these lines to an ACL file of the server (mode 0600, SHA-256 hashes, never a
clear password); compose mode builds the same lines in the container (``docker-compose.yml``).
"""

from __future__ import annotations

import hashlib

from engagement_platform.settings import Role, Settings
from engagement_platform.streaming.leaderboard import SEEN_BITMAP_PREFIX, TOP_CACHE_PREFIX, Keys

_ANY = Keys("*")
# what the consumer's APPLY script reads and writes (minute buckets, their unique-user
# HyperLogLogs: PFADD, EXPIREAT; dedupe bitmaps, titles; TIME: a bitmap's expiry only moves
# later), the seen sets of before the bitmaps that its start-up upgrade drains, and how
# redis-py runs it (MULTI/EXEC: bench leaderboard's baseline)
WRITER_KEYS = (
    _ANY.minute("*"),
    _ANY.users("*"),
    f"*{SEEN_BITMAP_PREFIX}*",
    _ANY.old_seen_pattern,
    _ANY.content,
)
WRITER_COMMANDS = (
    "-@all +@read +@write -@dangerous +evalsha +eval +script|load +script|exists +time +multi +exec +ping"
)
# the read API: minute keys, their HyperLogLogs and titles; its cache is the only key it
# writes. PFCOUNT is a read (@read, flagged read-only) although it may cache its result in the
# HyperLogLog's header: +@read grants it, and -@dangerous leaves PFADD/PFMERGE (@write) out.
READER_KEYS = (_ANY.minute("*"), _ANY.users("*"), _ANY.content, f"*{TOP_CACHE_PREFIX}*")
READER_COMMANDS = "-@all +@read -@dangerous +zunionstore +pexpire +multi +exec +ping"


def password_hash(password: str) -> str:
    """The ``#<sha256>`` form an ACL rule takes a password in, so no file holds it in clear."""
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def user_rules(keys: tuple[str, ...], commands: str) -> str:
    """``resetkeys ~k1 ~k2 ... resetchannels <commands>``: an ACL user's permissions, no password."""
    return " ".join(["resetkeys", *(f"~{k}" for k in keys), "resetchannels", commands])


def acl_lines(settings: Settings) -> list[str]:
    """The server's ACL file: the owner as ``default`` (all commands, with REDIS_PASSWORD), the
    leaderboard consumer's writer and the reader."""
    lines = [f"user default on {password_hash(settings.redis_password)} ~* &* +@all"]
    users: tuple[tuple[Role, tuple[str, ...], str], ...] = (
        ("writer", WRITER_KEYS, WRITER_COMMANDS),
        ("reader", READER_KEYS, READER_COMMANDS),
    )
    for role, keys, commands in users:
        user, password = settings.redis_login(role)
        lines.append(f"user {user} on {password_hash(password)} {user_rules(keys, commands)}")
    return lines
