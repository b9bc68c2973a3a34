"""What the supervisor needs to know about one local service: how to prepare, run and probe it."""

from __future__ import annotations

import signal
import sys
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from pathlib import Path

from engagement_platform.settings import Settings


class Service(ABC):
    """One long-running process of the local stack.

    Subclasses describe the process; the supervisor owns its lifecycle (pid file, log file,
    data dir under ``EP_HOME/<name>/``) so every service is started, probed and stopped the
    same way.
    """

    name: str
    stop_signal: int = signal.SIGTERM
    start_timeout: float = 60.0
    run_as: str | None = None  # unprivileged account to run under when we are root
    # seconds the process must stay alive before it counts as started: for processes with
    # no protocol to probe, so a command that dies on start-up is not reported as up
    min_uptime: float = 0.0
    # services that must answer before this one starts (it would only retry and log until then)
    needs: tuple[str, ...] = ()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    @abstractmethod
    def endpoint(self) -> str:
        """How a client reaches the service (shown by ``stack status``)."""

    @abstractmethod
    def argv(self, data_dir: Path) -> list[str]:
        """The command line of the service's process."""

    @abstractmethod
    def healthy(self) -> bool:
        """True when the service answers its real protocol. Must return within a few seconds."""

    def prepare(self, data_dir: Path) -> None:
        """One-time or per-start preparation of the data dir (e.g. initdb)."""
        data_dir.mkdir(parents=True, exist_ok=True)

    def after_start(self) -> None:
        """Idempotent set-up that needs the running service (e.g. create the database)."""

    def child_env(self) -> dict[str, str] | None:
        """Extra environment for the process; None means the settings' full environment."""
        return None


def python_module_argv(module: str, data_dir: Path) -> list[str]:
    """Run one of our own server modules with the interpreter that runs us."""
    return [sys.executable, "-m", module, "--data-dir", str(data_dir)]


def http_ok(url: str, *, timeout: float = 2.0, headers: dict[str, str] | None = None) -> bool:
    """True when ``url`` answers 200 (any other answer or no answer is False)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def package_dir(package: str) -> Path:
    """Where an installed package lives, without importing it (some have noisy imports)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package!r} is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations))).resolve()
