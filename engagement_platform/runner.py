"""`engagement-platform up` / `down`: the whole platform on the local stack, in the foreground.

``up`` starts the five services, applies the set-up assets through Dagster, starts the
platform's own processes (Dagster UI, consumers, simulator), prints where to look and
watches: a process that dies is logged and started again. Ctrl-C, or
``engagement-platform down`` from another shell, stops all of it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from engagement_platform.apps import app_services, dagster_env
from engagement_platform.local_stack.supervisor import StackError, Supervisor
from engagement_platform.pulse import Pulse
from engagement_platform.settings import Settings

# what must exist before consumers and the simulator start
SETUP_ASSETS = "postgres/schema,cdc/connector,clickhouse/schema"
RESTART_BACKOFF_S = 5.0
PULSE_EVERY_S = 15.0


def stop_marker(settings: Settings) -> Path:
    """Left by `down` so a foreground `up` stops watching instead of restarting what goes away."""
    return settings.ep_home / "stop-requested"


def supervisors(settings: Settings) -> tuple[Supervisor, Supervisor]:
    return Supervisor(settings), Supervisor(settings, app_services(settings))


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


def run_up(settings: Settings, *, log: Callable[[str], None] = print) -> int:
    stack, apps = supervisors(settings)
    stop_requested = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    settings.ep_home.mkdir(parents=True, exist_ok=True)
    stop_marker(settings).unlink(missing_ok=True)
    try:
        stack.up(log=log)
        log(f"materializing {SETUP_ASSETS} ...")
        materialize_setup(settings)
        apps.up(log=log)
        log("")
        log("engagement-platform is up on the local embedded stack.")
        for status in stack.status() + apps.status():
            log(f"  {status.name:<12} {status.endpoint}")
        log(f"State, data and logs: {settings.ep_home}  (engagement-platform stack logs SERVICE)")
        log("Stop with Ctrl-C here, or `make down` from another shell.")
        pulse = Pulse(settings)
        try:
            watch(apps, lambda: stop_requested or stop_marker(settings).exists(), log, pulse)
        finally:
            pulse.close()
    finally:
        if stop_marker(settings).exists():
            log("stopped by `engagement-platform down`")
        else:
            if stop_requested:
                log("stopping ...")
            apps.down(log=log)
            stack.down(log=log)
    return 0


def watch(apps: Supervisor, stopped: Callable[[], bool], log: Callable[[str], None], pulse: Pulse) -> None:
    """Restart app processes that die, until asked to stop (here or by `down` elsewhere);
    every PULSE_EVERY_S, one line on what flows through the topics."""
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
        for svc in apps.services:
            if apps.running(svc.name) is None and apps.pid_file(svc.name).exists():
                if time.monotonic() - restarted_at.get(svc.name, 0.0) < RESTART_BACKOFF_S:
                    continue
                log(f"{svc.name} exited unexpectedly; restarting (log: {apps.log_file(svc.name)})")
                restarted_at[svc.name] = time.monotonic()
                try:
                    apps.up([svc.name], log=log)
                except StackError as exc:
                    log(f"{svc.name} failed to restart: {str(exc).splitlines()[0]}")


def run_down(settings: Settings, *, log: Callable[[str], None] = print) -> int:
    stack, apps = supervisors(settings)
    if settings.ep_home.exists():
        stop_marker(settings).touch()
    apps.down(log=log)
    stack.down(log=log)
    return 0
