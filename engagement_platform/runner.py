"""`engagement-platform up` / `down`: the whole platform on the local stack, in the foreground.

``up`` starts the five services, then the platform's own processes, prints where to look
and waits; Ctrl-C (or ``engagement-platform down`` from another shell) stops all of it.
"""

from __future__ import annotations

import signal
import time
from types import FrameType

from engagement_platform.local_stack.supervisor import Supervisor
from engagement_platform.settings import Settings


def platform_supervisor(settings: Settings) -> Supervisor:
    return Supervisor(settings)


def run_up(settings: Settings, *, log=print) -> int:  # type: ignore[no-untyped-def]
    supervisor = platform_supervisor(settings)
    stop_requested = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        supervisor.up(log=log)
        log("")
        log("engagement-platform is up (local embedded stack). Endpoints:")
        for status in supervisor.status():
            log(f"  {status.name:<11} {status.endpoint}")
        log(f"State, data and logs: {settings.ep_home}")
        log("Stop with Ctrl-C here, or `make down` from another shell.")
        while not stop_requested:
            time.sleep(1.0)
            if all(supervisor.running(s.name) is None for s in supervisor.services):
                log("every process is gone (stopped from elsewhere); exiting")
                return 0
    finally:
        if stop_requested:
            log("stopping ...")
        supervisor.down(log=log)
    return 0


def run_down(settings: Settings, *, log=print) -> int:  # type: ignore[no-untyped-def]
    platform_supervisor(settings).down(log=log)
    return 0
