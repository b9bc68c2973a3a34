"""``python -m engagement_platform.local_stack.clickhouse_http --data-dir DIR``.

Opens the engine before listening, so a data directory that another process holds fails
at once with one readable line; binds 127.0.0.1 only; serves with uvicorn in this one
process (chdb cannot be opened by two); on SIGTERM/SIGINT stops accepting, lets
in-flight requests finish, then closes the engine.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import NoReturn

import chdb
import uvicorn

from engagement_platform import settings as ep_settings
from engagement_platform.local_stack.clickhouse_http.app import KEEP_ALIVE_TIMEOUT_S, accounts, create_app
from engagement_platform.local_stack.clickhouse_http.engine import Engine

LOG = logging.getLogger("engagement_platform.clickhouse_server")
MODULE = "engagement_platform.local_stack.clickhouse_http"
LISTEN_HOST = "127.0.0.1"
# h11, not httptools: httptools lowercases every response header name, and clients may look
# ClickHouse's spelling up (X-ClickHouse-Exception-Code). uvloop is the faster loop. Figures:
# docs/performance.md.
HTTP_IMPLEMENTATION = "h11"
EVENT_LOOP = "uvloop"
UTC_NAMES = ("UTC", "Etc/UTC", "Etc/UCT", "UCT", "Universal", "Zulu", "GMT")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description="Serve the ClickHouse HTTP interface from an embedded chdb engine.",
    )
    parser.add_argument("--data-dir", required=True, type=Path, help="chdb data directory")
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        help="seconds to let in-flight requests finish on SIGTERM/SIGINT (default 30)",
    )
    args = parser.parse_args(argv)
    if "?" in str(args.data_dir):
        parser.error("--data-dir must not contain '?' (chdb reads it as connection options)")
    return args


def _configure_logging() -> None:
    """Our lines and uvicorn's warnings (bad requests, shutdown timeouts) in one format."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s clickhouse-server %(levelname)s %(message)s"))
    for name, level in ((LOG.name, logging.INFO), ("uvicorn.error", logging.WARNING)):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False


def _fail(message: str, code: int = 1) -> NoReturn:
    LOG.error(message)
    sys.exit(code)


def _listen(port: int) -> socket.socket:
    """The listening socket, bound before uvicorn starts so a taken port fails readably.

    Accepted connections inherit TCP_NODELAY: a reply's headers and body leave in two
    writes, and with Nagle on, the second waits ~40 ms for the client's delayed ACK.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((LISTEN_HOST, port))
    except OSError:
        sock.close()
        raise
    return sock


def _session_reaper(engine: Engine, stop: threading.Event) -> None:
    while not stop.wait(5.0):
        try:
            engine.expire_sessions()
        except Exception:
            LOG.exception("session cleanup failed")


class _Server(uvicorn.Server):
    """uvicorn's server, saying in our log when a shutdown starts."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            LOG.info("shutting down: finishing in-flight requests")
        super().handle_exit(sig, frame)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    _configure_logging()
    try:
        cfg = ep_settings.load()
    except ep_settings.SettingsError as exc:
        _fail(f"bad configuration: {exc}", 2)
    data_dir = args.data_dir.expanduser().resolve()
    LOG.info("starting: chdb %s, data dir %s", chdb.__version__, data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        engine = Engine(data_dir, cfg.clickhouse_database)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else repr(exc)
        _fail(f"cannot open chdb at {data_dir} (is another process using it?): {reason}")
    if engine.timezone not in UTC_NAMES:
        LOG.warning("engine timezone is %s, not UTC", engine.timezone)
    try:
        sock = _listen(cfg.clickhouse_port)
    except OSError as exc:
        engine.close()
        _fail(f"cannot listen on {LISTEN_HOST}:{cfg.clickhouse_port}: {exc}")
    app, query_endpoint = create_app(engine, accounts(cfg))
    server = _Server(
        uvicorn.Config(
            app,
            loop=EVENT_LOOP,
            http=HTTP_IMPLEMENTATION,
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            timeout_keep_alive=KEEP_ALIVE_TIMEOUT_S,
            timeout_graceful_shutdown=math.ceil(args.shutdown_timeout),
        )
    )
    stop = threading.Event()
    threading.Thread(target=_session_reaper, args=(engine, stop), name="reaper", daemon=True).start()
    # uvicorn re-raises the signal that stopped it once it is done: let that be a no-op,
    # so a SIGTERM ends in our own orderly exit (code 0) below.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    LOG.info(
        "listening on http://%s:%d (ClickHouse %s, database %s)",
        LISTEN_HOST,
        cfg.clickhouse_port,
        engine.version,
        cfg.clickhouse_database,
    )
    server.run(sockets=[sock])
    stop.set()
    still_running = query_endpoint.inflight
    if still_running:
        LOG.warning(
            "%d request(s) still running after %.0fs; leaving them", still_running, args.shutdown_timeout
        )
        LOG.info("stopped")
        logging.shutdown()
        os._exit(0)  # their worker threads would hold the process open; the engine stays unclosed
    engine.close()
    LOG.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
