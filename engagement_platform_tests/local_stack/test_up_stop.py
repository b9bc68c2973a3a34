"""`engagement-platform up` stops everything it started, whatever ends it.

Each test runs a real `up` on a stack of this module's own (started once, before `up`, so
`up` leaves those services running and the next test reuses them), ends it one way, and
then looks for any process of the platform's still alive: the app processes `up` recorded,
and anything else carrying this stack's EP_HOME in its environment (Dagster's children).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import subprocess
import termios
import threading
from collections.abc import Callable, Iterator

import psutil
import pytest

from engagement_platform.local_stack.apps import app_services
from engagement_platform.local_stack.process import PidRecord, is_alive
from engagement_platform.local_stack.supervisor import Supervisor
from engagement_platform_tests.harness import CLI, StackHandle, free_ports, start_stack, stop_stack, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack() -> Iterator[StackHandle]:
    dagster_port, dashboard_port = free_ports(2)
    handle = start_stack(
        "ep-test-up-stop-", extra={"DAGSTER_PORT": str(dagster_port), "DASHBOARD_PORT": str(dashboard_port)}
    )
    try:
        yield handle
    finally:
        stop_stack(handle)


class Up:
    """A running `engagement-platform up`; a thread collects its output line by line.

    Its stdout is a pipe, or with ``terminal=True`` a pseudo-terminal that becomes its
    controlling terminal. ``close_output()`` closes our end, from the reading thread itself
    (a read blocked in another thread would keep a pipe open): for a pipe, `up`'s next write
    fails; for a terminal, the kernel hangs it up (SIGHUP) as when a terminal window closes.
    """

    def __init__(self, stack: StackHandle, *, terminal: bool = False) -> None:
        self.lines: list[str] = []
        if terminal:
            self.fd, child_end = pty.openpty()
            extra = {"start_new_session": True, "preexec_fn": _take_controlling_terminal, "stdin": child_end}
        else:
            self.fd, child_end = os.pipe()
            extra = {}
        self.proc = subprocess.Popen(
            [*CLI, "up"],
            env=stack.env,
            stdout=child_end,
            stderr=child_end,
            **extra,  # type: ignore[call-overload]
        )
        os.close(child_end)
        self._close = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffer = b""
        try:
            while not self._close.is_set():
                if not select.select([self.fd], [], [], 0.2)[0]:
                    continue
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    break
                *complete, buffer = (buffer + chunk).split(b"\n")
                self.lines.extend(line.decode(errors="replace").rstrip("\r") for line in complete)
        except OSError:  # EIO: the terminal's other side is gone
            pass
        finally:
            os.close(self.fd)

    def close_output(self) -> None:
        self._close.set()
        self._reader.join(timeout=10)

    def wait_for_line(self, pattern: str, timeout: float = 300) -> str:
        def found() -> str | None:
            return next((line for line in list(self.lines) if re.search(pattern, line)), None)

        return wait_for(
            found,
            timeout,
            f"a line matching {pattern!r} in:\n" + "\n".join(self.lines[-40:]),
            step=0.3,
            alive=lambda: self.proc.poll() is None,
        )

    def app_records(self, stack: StackHandle) -> list[PidRecord]:
        apps = Supervisor(stack.settings, app_services(stack.settings))
        return [r for s in apps.services if (r := apps.running(s.name)) is not None]


def _take_controlling_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def leftovers(stack: StackHandle, records: list[PidRecord]) -> list[str]:
    """Processes of the platform still alive, other than the stack's own services."""
    services = {r.pid for s in stack.supervisor.services if (r := stack.supervisor.running(s.name))}
    keep = set(services)
    for pid in services:
        keep |= {c.pid for c in psutil.Process(pid).children(recursive=True)}
    left = [f"{r.pid} {' '.join(r.argv)[:120]}" for r in records if is_alive(r)]
    home = str(stack.settings.ep_home)
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid in keep or proc.pid == os.getpid():
            continue
        try:
            if proc.environ().get("EP_HOME") == home:
                left.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])[:120]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return left


def run_and_end(stack: StackHandle, end: Callable[[Up], None], *, terminal: bool = False) -> str:
    """Run `up` until it is up, end it with ``end``, check nothing of it is left; its log."""
    up = Up(stack, terminal=terminal)
    try:
        up.wait_for_line("is up on the local embedded stack")
        records = up.app_records(stack)
        assert len(records) == len(app_services(stack.settings)), records
        end(up)
        code = up.proc.wait(timeout=120)
    finally:
        if up.proc.poll() is None:
            up.proc.kill()
        up.close_output()
    log = (stack.settings.ep_home / "up.log").read_text()
    assert code == 0, log[-3000:]
    try:
        wait_for(lambda: not leftovers(stack, records), 30, "every process `up` started to be gone")
    except AssertionError:
        raise AssertionError(f"left running: {leftovers(stack, records)}") from None
    # the services that ran before `up` are still there, for the next test
    assert all(s.healthy for s in stack.supervisor.status())
    assert "left running (they were up before): cdc, clickhouse, kafka, postgres, redis" in log
    return log


def test_ctrl_c_with_a_closed_pipe_stops_everything(stack: StackHandle) -> None:
    # `make up | tee up.log`, then Ctrl-C: tee dies first, then `up` gets SIGINT and every
    # write it makes from then on fails
    def end(up: Up) -> None:
        up.close_output()
        up.proc.send_signal(signal.SIGINT)

    assert "stopping (SIGINT)" in run_and_end(stack, end)


def test_sigterm_stops_everything(stack: StackHandle) -> None:
    assert "stopping (SIGTERM)" in run_and_end(stack, lambda up: up.proc.send_signal(signal.SIGTERM))


def test_closing_the_terminal_stops_everything(stack: StackHandle) -> None:
    assert "stopping (SIGHUP)" in run_and_end(stack, Up.close_output, terminal=True)


def test_a_broken_stdout_alone_stops_everything(stack: StackHandle) -> None:
    # nobody reads any more: the next line `up` writes (a pulse, every 15 s) finds out
    assert "stopping (stdout closed)" in run_and_end(stack, Up.close_output)
