"""`engagement-platform up` / `down`: the whole platform on the local stack, in the foreground.

``up`` starts the five services, applies the set-up assets through Dagster, starts the
platform's own processes (Dagster UI, consumers, simulator), prints where to look and
watches: a process that dies is logged and started again.

Whatever ends it -- Ctrl-C, SIGTERM, SIGHUP (the terminal closed), a broken stdout (``| tee``
killed), or ``engagement-platform down`` from another shell -- everything ``up`` started is
stopped; services that were already running before it are left as they were.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TextIO

from engagement_platform.local_stack.apps import AppPlan, app_services, dagster_env
from engagement_platform.local_stack.pulse import Pulse
from engagement_platform.local_stack.supervisor import StackError, Supervisor
from engagement_platform.settings import Settings, masked

# what must exist before consumers and the simulator start
SETUP_ASSETS = "postgres/schema,cdc/connector,clickhouse/schema"
RESTART_BACKOFF_S = 5.0
PULSE_EVERY_S = 15.0


def stop_marker(settings: Settings) -> Path:
    """Left by `down` so a foreground `up` stops watching instead of restarting what goes away."""
    return settings.ep_home / "stop-requested"


def supervisors(settings: Settings, plan: AppPlan | None = None) -> tuple[Supervisor, Supervisor]:
    """The stack's services, and the processes `up` runs (``plan``: the last `up`'s by default)."""
    return Supervisor(settings), Supervisor(settings, app_services(settings, plan))


def materialize_argv(selection: str) -> list[str]:
    """Dagster's own CLI on our code location: what a user would type."""
    dagster = Path(sys.executable).parent / "dagster"
    return [
        str(dagster),
        "asset",
        "materialize",
        "-m",
        "engagement_platform.definitions",
        "--select",
        selection,
    ]


def materialize_setup(settings: Settings, selection: str = SETUP_ASSETS) -> None:
    """Runs in the Dagster instance the UI shows, so the set-up runs appear there."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        materialize_argv(selection),
        env=dagster_env(settings),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        errors = [
            ln for ln in (result.stdout + result.stderr).splitlines() if "ERROR" in ln or "Failure" in ln
        ]
        detail = "\n".join(errors[-5:]) or result.stderr[-2000:]
        raise StackError(f"materializing {selection} failed:\n{detail}")


class Console:
    """``print`` for the foreground supervisor, copied to ``EP_HOME/up.log``.

    A closed terminal or a killed ``| tee`` turns writes to stdout into errors; the first one
    marks the console broken (which asks ``up`` to stop) and points stdout at /dev/null, so
    the clean-up that follows, and the interpreter's last flush, cannot fail on it.
    """

    def __init__(self, log_file: Path, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.broken = False
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(log_file, "a", buffering=1)  # noqa: SIM115 - closed in close()

    def __call__(self, line: str) -> None:
        self.file.write(line + "\n")
        if self.broken:
            return
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except OSError:  # BrokenPipeError, or EIO from a hung-up terminal
            self.broken = True
            self.file.write("stdout is gone (closed pipe or terminal): stopping\n")
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)

    def close(self) -> None:
        self.file.close()


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_up(
    settings: Settings, plan: AppPlan | None = None, *, log: Callable[[str], None] | None = None
) -> int:
    plan = plan or AppPlan(instances=settings.instances)
    stack, apps = supervisors(settings, plan)
    settings.ep_home.mkdir(parents=True, exist_ok=True)
    plan.save(settings)
    console = Console(settings.ep_home / "up.log")
    say = log or console
    signals: list[str] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        signals.append(signal.Signals(signum).name)

    for sig in STOP_SIGNALS:
        signal.signal(sig, request_stop)

    def stopping() -> bool:
        return bool(signals) or console.broken or stop_marker(settings).exists()

    stop_marker(settings).unlink(missing_ok=True)
    # what runs already is not ours to stop
    before = {s.name for sup in (stack, apps) for s in sup.services if sup.running(s.name)}
    try:
        stack.up(log=say, cancelled=stopping)
        if not stopping():
            say(f"materializing {SETUP_ASSETS} ...")
            materialize_setup(settings)
        if not stopping():
            apps.up(log=say, cancelled=stopping)
            say("")
            say("engagement-platform is up on the local embedded stack.")
            statuses = stack.status() + apps.status()
            width = max(len(s.name) for s in statuses)
            for status in statuses:
                say(f"  {status.name:<{width}}  {masked(status.endpoint)}")
            say(f"State, data and logs: {settings.ep_home}  (engagement-platform stack logs SERVICE)")
            say("Stop with Ctrl-C here, or `make down` from another shell.")
            pulse = Pulse(settings)
            try:
                watch([stack, apps], stopping, say, pulse)
            finally:
                pulse.close()
    except StackError:
        if not stopping():
            raise
        # a stop during start-up (Ctrl-C also reaches a `dagster asset materialize` child)
    finally:
        if stop_marker(settings).exists():
            say("stopped by `engagement-platform down`")
        else:
            reason = signals[0] if signals else "stdout closed" if console.broken else ""
            say(f"stopping ({reason}) ..." if reason else "stopping ...")
            for sup in (apps, stack):
                ours = [s.name for s in sup.services if s.name not in before]
                if ours:
                    sup.down(ours, log=say)
            if before:
                say(f"left running (they were up before): {', '.join(sorted(before))}")
        console.close()
    return 0


def watch(
    supervisors: Sequence[Supervisor], stopped: Callable[[], bool], log: Callable[[str], None], pulse: Pulse
) -> None:
    """Restart what dies -- a service of the stack or a process of the platform -- until asked
    to stop (here or by `down` elsewhere); every PULSE_EVERY_S, one line on what flows."""
    restarted_at: dict[str, float] = {}
    last_pulse = time.monotonic()
    while True:
        pulse.poll(1.0)
        if stopped():
            return
        if time.monotonic() - last_pulse >= PULSE_EVERY_S:
            log(pulse.line())
            log(pulse.leaderboard_line())
            last_pulse = time.monotonic()
        for sup in supervisors:
            for svc in sup.services:
                if sup.running(svc.name) is not None or not sup.pid_file(svc.name).exists():
                    continue
                if time.monotonic() - restarted_at.get(svc.name, 0.0) < RESTART_BACKOFF_S:
                    continue
                log(f"{svc.name} exited unexpectedly; restarting (log: {sup.log_file(svc.name)})")
                restarted_at[svc.name] = time.monotonic()
                try:
                    sup.up([svc.name], log=log, cancelled=stopped)
                except StackError as exc:
                    log(f"{svc.name} failed to restart: {str(exc).splitlines()[0]}")


def run_down(settings: Settings, *, log: Callable[[str], None] = print) -> int:
    stack, apps = supervisors(settings)
    if settings.ep_home.exists():
        stop_marker(settings).touch()
    apps.down(log=log)
    stack.down(log=log)
    return 0
