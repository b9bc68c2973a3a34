"""A real ClickHouse HTTP server process for tests, and ways to talk to it.

The server runs as a real subprocess (as the stack supervisor runs it), and client calls
run in further subprocesses where it matters, because the whole point of the server is
that other processes can reach an engine only one process may open.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engagement_platform_tests.harness import free_ports

USER = "default"
PASSWORD = "s3cret-test"
DATABASE = "engagement"
MODULE = "engagement_platform.local_stack.clickhouse_http"


@dataclass
class Server:
    port: int
    data_dir: Path
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", MODULE, "--data-dir", str(self.data_dir)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                if http(self, "/ping", auth=False)[2] == b"Ok.\n":
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not come up:\n{self.log_path.read_text()}")

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def http(
    srv: Server,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    auth: bool | tuple[str, str] = True,
) -> tuple[int, dict[str, str], bytes]:
    """A raw HTTP call, for what the client library hides (status, headers)."""
    request = urllib.request.Request(f"http://127.0.0.1:{srv.port}{path}", data=body)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    if auth:
        user, password = auth if isinstance(auth, tuple) else (USER, PASSWORD)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


CLIENT_PRELUDE = """
import json, sys
import clickhouse_connect
from clickhouse_connect.driver.exceptions import DatabaseError
ARGS = json.loads(sys.argv[1])
def connect(**kw):
    opts = dict(host="127.0.0.1", port=ARGS["port"], username=ARGS["user"], password=ARGS["password"])
    opts.update(kw)
    return clickhouse_connect.get_client(**opts)
def emit(value):
    print("RESULT " + json.dumps(value, default=str))
"""


def client_process(srv: Server, code: str, **args: object) -> subprocess.Popen[str]:
    """Start a separate client process running ``code`` against the server."""
    payload = {"port": srv.port, "user": USER, "password": PASSWORD, **args}
    script = CLIENT_PRELUDE + textwrap.dedent(code)
    return subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(payload)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def collect(proc: subprocess.Popen[str]) -> object:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"client failed:\n{out}\n{err}"
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert lines, f"client printed no result:\n{out}\n{err}"
    return json.loads(lines[-1][len("RESULT ") :])


def run_client(srv: Server, code: str, **args: object) -> object:
    return collect(client_process(srv, code, **args))


@contextmanager
def running_server(root: Path) -> Iterator[Server]:
    """A server on a free port with its own data under ``root``, stopped afterwards."""
    env = dict(os.environ)
    env.update(
        CLICKHOUSE_PORT=str(free_ports(1)[0]),
        CLICKHOUSE_USER=USER,
        CLICKHOUSE_PASSWORD=PASSWORD,
        CLICKHOUSE_DATABASE=DATABASE,
        EP_HOME=str(root / "home"),
    )
    srv = Server(int(env["CLICKHOUSE_PORT"]), root / "data", env, root / "server.log")
    srv.start()
    try:
        yield srv
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.stop()
