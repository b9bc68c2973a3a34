"""The ClickHouse HTTP endpoints as a Starlette app over the one chdb engine.

``/`` runs queries and inserts, ``/ping`` and ``/replicas_status`` answer probes, ``/play``
serves the ad-hoc query page. The loop only moves bytes; each statement runs in a worker thread
(docs/design/clickhouse-http.md).
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.datastructures import Headers, QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from engagement_platform.local_stack.clickhouse_http import play
from engagement_platform.local_stack.clickhouse_http.engine import Engine
from engagement_platform.local_stack.clickhouse_http.execute import Reply, execute
from engagement_platform.local_stack.clickhouse_http.protocol import (
    AUTHENTICATION_FAILED,
    CANNOT_READ_ALL_DATA,
    UNKNOWN_EXCEPTION,
    Account,
    ClickHouseError,
    RequestOptions,
    authenticate,
    request_credentials,
    request_options,
)
from engagement_platform.settings import Settings
from engagement_platform.warehouse.ddl import QUEUE

LOG = logging.getLogger("engagement_platform.clickhouse_server")

KEEP_ALIVE_TIMEOUT_S = 30
# What one hop from the worker thread to the event loop collects before handing it over:
# chdb's inserter wants ~1 MiB appends, and each hop costs a loop round trip.
BODY_BATCH_BYTES = 1 << 20
# Batches read ahead of the worker thread: network and chdb overlap, memory stays bounded.
READ_AHEAD_BATCHES = 2
# Response bodies leave in copied slices: chdb's buffer must not outlive its result, and
# an asyncio transport may keep a reference to what it was given until it is sent.
SEND_SLICE_BYTES = 1 << 20
# A request that takes longer than this gets a log line even when it succeeds.
SLOW_REQUEST_S = 1.0
TEXT_PLAIN = "text/plain; charset=UTF-8"
OK_HEADERS = {"Content-Type": "text/html; charset=UTF-8"}
PROBE_PATHS = ("/ping", "/replicas_status")  # "Ok." without credentials


class BodyReceiver:
    """Reads a request body from ASGI ``receive`` in batches of up to ~1 MiB."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.done = False

    async def next_batch(self) -> bytes:
        parts: list[bytes] = []
        size = 0
        while size < BODY_BATCH_BYTES and not self.done:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.done = True
                raise ClickHouseError.make(
                    CANNOT_READ_ALL_DATA, "Client closed the connection inside the request body"
                )
            chunk = message.get("body", b"")
            if chunk:
                parts.append(chunk)
                size += len(chunk)
            self.done = not message.get("more_body", False)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def read_ahead(self, batches: MemoryObjectSendStream[bytes | ClickHouseError]) -> None:
        """Runs on the loop beside the worker thread, so the next batches arrive while chdb
        digests the current one; a broken body reaches the thread as the error."""
        async with batches:
            while not self.done:
                try:
                    batch = await self.next_batch()
                except ClickHouseError as exc:
                    await batches.send(exc)
                    return
                if batch:
                    await batches.send(batch)


def _from_loop(batches: MemoryObjectReceiveStream[bytes | ClickHouseError]) -> Iterator[bytes]:
    """The read-ahead batches, iterated in the worker thread."""
    while True:
        try:
            item = anyio.from_thread.run(batches.receive)
        except anyio.EndOfStream:
            return
        if isinstance(item, ClickHouseError):
            raise item
        yield item


def body_is_empty(headers: Headers) -> bool:
    """No body announced: neither chunked nor a non-zero Content-Length."""
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return False
    return headers.get("Content-Length", "0").strip() in ("", "0")


class QueryEndpoint:
    """``/`` and the probes: a raw ASGI endpoint, so the body streams, the reply leaves in
    slices, and every answer carries ClickHouse's headers, spelled as ClickHouse does."""

    def __init__(self, engine: Engine, accounts: Sequence[Account]) -> None:
        self.engine = engine
        self.accounts = tuple(accounts)
        self.display_name = socket.gethostname()
        self._inflight = 0
        self._inflight_lock = threading.Lock()

    @property
    def inflight(self) -> int:
        """Statements still running in chdb (the engine must not close under them)."""
        return self._inflight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = QueryParams(scope["query_string"])
        query_id = params.get("query_id") or str(uuid.uuid4())
        started = time.perf_counter()
        reply = await self._answer(scope, params, receive)
        elapsed = time.perf_counter() - started
        _log_request(scope, params, reply, elapsed)
        headers = {
            "X-ClickHouse-Server-Display-Name": self.display_name,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self.engine.timezone,
            "Content-Type": TEXT_PLAIN,
            **reply.headers,
            "Content-Length": str(len(reply.body)),
            "Keep-Alive": f"timeout={KEEP_ALIVE_TIMEOUT_S}",
        }
        if reply.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="ClickHouse server HTTP API"'
        await send_reply(send, reply, headers)

    async def _answer(self, scope: Scope, params: QueryParams, receive: Receive) -> Reply:
        headers = Headers(scope=scope)
        method: str = scope["method"]
        try:
            if scope["path"] in PROBE_PATHS or (body_is_empty(headers) and "query" not in params):
                return Reply(body=b"Ok.\n", headers=dict(OK_HEADERS))
            items = params.multi_items()
            account = authenticate(request_credentials(headers, dict(items)), self.accounts)
            opts = request_options(items, headers)
            encoding, accept = headers.get("Content-Encoding", ""), headers.get("Accept-Encoding", "")
            receiver = BodyReceiver(receive)
            # The first batch is read here: a typical request (one batch) needs no hop back
            # from the thread, and no read-ahead.
            first = await receiver.next_batch()
            if receiver.done:
                return await self._in_thread(opts, method, (first,), encoding, accept, account)
            send, batches = anyio.create_memory_object_stream[bytes | ClickHouseError](READ_AHEAD_BATCHES)
            with batches:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(receiver.read_ahead, send)
                    try:
                        body = itertools.chain((first,), _from_loop(batches))
                        return await self._in_thread(opts, method, body, encoding, accept, account)
                    finally:
                        tasks.cancel_scope.cancel()  # the statement may end before its body
            raise AssertionError("unreachable: the task group returns the reply or raises")
        except ClickHouseError as exc:
            return self._error_reply(exc)
        except Exception as exc:  # a bug here must not cost the client its answer
            LOG.exception("internal error while serving a request")
            return self._error_reply(
                ClickHouseError.make(UNKNOWN_EXCEPTION, f"Internal server error: {exc!r}")
            )

    async def _in_thread(
        self,
        opts: RequestOptions,
        method: str,
        body: Iterable[bytes],
        encoding: str,
        accept: str,
        account: Account,
    ) -> Reply:
        # Abandoned only when a shutdown times out: the statement then runs on in chdb
        # (``inflight`` says so) instead of holding the process past its deadline.
        return await anyio.to_thread.run_sync(
            lambda: self._execute(opts, method, body, encoding, accept, account), abandon_on_cancel=True
        )

    def _execute(self, *args: Any) -> Reply:
        with self._inflight_lock:
            self._inflight += 1
        try:
            return execute(self.engine, *args)
        finally:
            with self._inflight_lock:
                self._inflight -= 1

    def _error_reply(self, exc: ClickHouseError) -> Reply:
        return Reply(
            exc.status,
            exc.body(self.engine.version),
            {"X-ClickHouse-Exception-Code": str(exc.code), "Content-Type": TEXT_PLAIN},
            error=exc,
        )


def _log_request(scope: Scope, params: QueryParams, reply: Reply, elapsed: float) -> None:
    """One line for what is worth knowing: failures, refused logins, slow statements."""
    client = (scope.get("client") or ("?", 0))[0]
    if reply.error is not None and reply.error.code == AUTHENTICATION_FAILED:
        LOG.warning("authentication failed from %s", client)
    elif reply.error is not None:
        LOG.info("query failed: %s", reply.error.message.splitlines()[0][:300])
    elif elapsed >= SLOW_REQUEST_S:
        what = reply.statement or params.get("query", "")[:120]
        rows = f", {reply.written_rows:,} rows written" if reply.written_rows else ""
        LOG.info("slow: %.1fs %s %s%s", elapsed, scope["method"], what, rows)


async def send_reply(send: Send, reply: Reply, headers: dict[str, str]) -> None:
    """Send the reply; the body in copied slices, so chdb's buffer is not referenced later.

    Header names keep ClickHouse's spelling (``X-ClickHouse-Exception-Code``): h11 sends
    them as given, and some clients look them up case-sensitively.
    """
    raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": raw})
    body = memoryview(reply.body)
    size = len(body)
    if size <= SEND_SLICE_BYTES:
        await send({"type": "http.response.body", "body": bytes(body), "more_body": False})
        return
    for start in range(0, size, SEND_SLICE_BYTES):
        end = start + SEND_SLICE_BYTES
        await send({"type": "http.response.body", "body": bytes(body[start:end]), "more_body": end < size})


async def _play(request: Request) -> Response:
    return HTMLResponse(play.PAGE)


async def _no_handle(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return PlainTextResponse(f"There is no handle {request.url.path}\n", 404)
    return PlainTextResponse(f"{getattr(exc, 'detail', 'Error')}\n", status)


def accounts(settings: Settings) -> list[Account]:
    """The users the server lets in (issue 20): the owner, the bridge's writer (inserts into
    the queue table only, of any database: tests and benchmarks run the bridge on scratch
    ones) and the read-only reader, with the settings' names and passwords."""
    return [
        Account(*settings.clickhouse_login("owner"), role="owner"),
        Account(*settings.clickhouse_login("writer"), role="writer", table=QUEUE),
        Account(*settings.clickhouse_login("reader"), role="reader"),
    ]


def create_app(engine: Engine, users: Sequence[Account]) -> tuple[Starlette, QueryEndpoint]:
    """The app, and its query endpoint (which knows how many statements are in flight)."""
    query = QueryEndpoint(engine, users)
    routes = [
        *(Route(path, query, methods=["GET", "POST", "HEAD"]) for path in ("/", *PROBE_PATHS)),
        Route("/play", _play, methods=["GET", "HEAD"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _no_handle}), query
