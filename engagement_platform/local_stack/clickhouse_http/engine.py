"""The process's one chdb engine: connections, HTTP sessions, per-request settings.

Each request borrows a connection of its own (its session's, or one from a pool); URL settings
are applied with ``SET``, as a diff. Why: docs/design/clickhouse-http.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import chdb

from engagement_platform.local_stack.clickhouse_http.protocol import (
    DEFAULT_SESSION_TIMEOUT_S,
    SESSION_IS_LOCKED,
    SESSION_NOT_FOUND,
    UNKNOWN_DATABASE,
    Account,
    ClickHouseError,
    RequestOptions,
    error_from_engine,
)

LOG = logging.getLogger("engagement_platform.clickhouse_server")

MAX_SESSIONS = 1000
IDLE_POOL_SIZE = 16


def quote_identifier(name: str) -> str:
    """A backquoted identifier, safe for any name."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_value(value: str) -> str:
    """Settings are sent quoted: ClickHouse converts the string to the setting's type."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Handle:
    """One chdb connection and the session state this server knows it carries."""

    def __init__(self, conn: Any, session_id: str | None = None, role: str = "owner") -> None:
        self.conn = conn
        self.session_id = session_id  # the key of its session: the user's name, then the id
        self.role = role  # whose connection it is: a reader's is in readonly mode for good
        self.lock = threading.Lock()
        self.database: str | None = None  # what USE last set on this connection
        self.session_database: str | None = None  # a session's own USE, if it issued one
        # URL settings SET on the connection; None marks one whose value is unknown
        self.applied: dict[str, str | None] = {}
        self.timeout = DEFAULT_SESSION_TIMEOUT_S
        self.last_used = time.monotonic()
        self.discard = False  # state no longer known: close instead of reusing

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # closing is best effort; the engine outlives handles
            LOG.debug("error closing a chdb connection", exc_info=True)

    def classify(self, sql: str) -> dict[str, Any] | None:
        """chdb's own parser verdict on a statement (class, count), when available."""
        raw = getattr(self.conn, "_conn", None)
        if raw is None or not hasattr(raw, "classify_query"):
            return None
        try:
            return raw.classify_query(sql)
        except Exception:
            return None


class Engine:
    """The process's single chdb engine, its connection pool and its HTTP sessions."""

    def __init__(self, data_dir: Path, default_database: str) -> None:
        self.data_dir = data_dir
        self.default_database = default_database
        # The primary connection keeps the engine up: chdb shuts it down when the last
        # connection closes, and reopening costs ~0.3 s.
        self._primary = chdb.connect(str(data_dir))
        self._connect_lock = threading.Lock()
        self._pools: dict[str, list[Handle]] = {}  # per role: a reader's connections stay read-only
        self._pool_lock = threading.Lock()
        self._sessions: dict[str, Handle] = {}
        self._sessions_lock = threading.Lock()
        version, timezone = self._scalar_row("SELECT version(), timezone()")
        self.version = version
        self.timezone = timezone
        self._primary.query(
            f"CREATE DATABASE IF NOT EXISTS {quote_identifier(default_database)}", "TabSeparated"
        )

    def _scalar_row(self, sql: str) -> list[str]:
        return self._primary.query(sql, "TabSeparated").bytes().decode().rstrip("\n").split("\t")

    def _new_handle(self, session_id: str | None = None, role: str = "owner") -> Handle:
        with self._connect_lock:
            conn = chdb.connect(str(self.data_dir))
        if role == "reader":
            # ClickHouse's own read-only mode: a statement's SETTINGS readonly=0 cannot lift it
            conn.query("SET readonly = 1", "TabSeparated")
        return Handle(conn, session_id, role)

    @contextmanager
    def borrow(self, opts: RequestOptions, account: Account | None = None) -> Iterator[Handle]:
        """Lend a connection of ``account``'s role for one request (the owner's when None): the
        session's own (sessions are per user), or a pooled one."""
        role = account.role if account is not None else "owner"
        if opts.session_id:
            user = account.user if account is not None else ""
            handle = self._session_handle(opts, f"{user}\0{opts.session_id}", role)
        else:
            handle = self._pooled_handle(role)
        try:
            yield handle
        finally:
            handle.last_used = time.monotonic()
            if opts.session_id:
                self._return_session(handle)
            else:
                self._return_pooled(handle)

    def _pooled_handle(self, role: str) -> Handle:
        with self._pool_lock:
            pool = self._pools.get(role)
            if pool:
                return pool.pop()
        return self._new_handle(role=role)

    def _return_pooled(self, handle: Handle) -> None:
        if not handle.discard:
            with self._pool_lock:
                pool = self._pools.setdefault(handle.role, [])
                if len(pool) < IDLE_POOL_SIZE:
                    pool.append(handle)
                    return
        handle.close()

    def _session_handle(self, opts: RequestOptions, key: str, role: str) -> Handle:
        session_id = opts.session_id or ""
        with self._sessions_lock:
            handle = self._sessions.get(key)
            if handle is None:
                if opts.session_check:
                    raise ClickHouseError.make(SESSION_NOT_FOUND, f"Session {session_id} not found")
                self._evict_sessions_locked()
                handle = self._new_handle(key, role)
                self._sessions[key] = handle
            if not handle.lock.acquire(blocking=False):
                raise ClickHouseError.make(
                    SESSION_IS_LOCKED, f"Session {session_id} is locked by a concurrent client"
                )
        handle.timeout = opts.session_timeout
        return handle

    def _return_session(self, handle: Handle) -> None:
        if handle.discard:
            with self._sessions_lock:
                if self._sessions.get(handle.session_id or "") is handle:
                    del self._sessions[handle.session_id or ""]
            handle.close()
        handle.lock.release()

    def _evict_sessions_locked(self) -> None:
        """Drop expired sessions (and the oldest idle ones beyond MAX_SESSIONS)."""
        now = time.monotonic()
        expired = [h for h in self._sessions.values() if now - h.last_used > h.timeout]
        if len(self._sessions) - len(expired) >= MAX_SESSIONS:
            idle = sorted(self._sessions.values(), key=lambda h: h.last_used)
            expired.extend(idle[: len(self._sessions) - MAX_SESSIONS + 1])
        for handle in expired:
            if handle.lock.acquire(blocking=False):
                self._sessions.pop(handle.session_id or "", None)
                handle.close()
                handle.lock.release()

    def expire_sessions(self) -> None:
        with self._sessions_lock:
            self._evict_sessions_locked()

    def prepare(self, handle: Handle, opts: RequestOptions) -> None:
        """Point the connection at the request's database and settings."""
        try:
            self._use_database(handle, opts.database)
            self._apply_settings(handle, opts.engine_settings)
        except ClickHouseError:
            raise
        except Exception as exc:
            handle.discard = True  # a half-applied SET leaves the state unknown
            raise error_from_engine(exc) from exc

    def _use_database(self, handle: Handle, requested: str | None) -> None:
        target = requested or handle.session_database or self.default_database
        if handle.database == target:
            return
        try:
            handle.conn.query(f"USE {quote_identifier(target)}", "TabSeparated")
        except Exception as exc:
            error = error_from_engine(exc)
            # The configured database may have been dropped; ClickHouse's 'default' is
            # always there, and an implicit database should not fail every request.
            if requested or error.code != UNKNOWN_DATABASE or target == "default":
                raise error from exc
            target = "default"
            handle.conn.query("USE default", "TabSeparated")
        handle.database = target

    @staticmethod
    def _apply_settings(handle: Handle, wanted: Mapping[str, str]) -> None:
        if wanted == handle.applied:
            return
        assignments = [f"{k} = {quote_value(v)}" for k, v in wanted.items() if handle.applied.get(k) != v]
        assignments += [f"{k} = DEFAULT" for k in handle.applied if k not in wanted]
        if assignments:
            handle.conn.query("SET " + ", ".join(assignments), "TabSeparated")
        handle.applied = dict(wanted)

    def after_control_statement(self, handle: Handle, keyword: str) -> None:
        """Keep track of USE/SET/temporary tables: sessions keep them, the pool may not."""
        if handle.session_id is None:
            handle.discard = True  # a pooled connection must not leak state to others
            return
        if keyword == "USE":
            current = handle.conn.query("SELECT currentDatabase()", "TabSeparated").bytes()
            handle.database = handle.session_database = current.decode().strip()
        elif keyword == "SET":
            # The session's own SET may have overwritten URL-applied values: re-apply
            # them before the next query, as URL settings win for the query they ride on.
            handle.applied = dict.fromkeys(handle.applied)

    def close(self) -> None:
        """Close every idle connection, then the engine."""
        with self._pool_lock:
            pooled = [handle for pool in self._pools.values() for handle in pool]
            self._pools = {}
        with self._sessions_lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for handle in pooled + sessions:
            if handle.lock.acquire(timeout=1.0):
                handle.close()
        self._primary.close()
