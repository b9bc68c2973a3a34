"""Start, probe and stop the local stack: real processes under ``EP_HOME``.

Each service gets ``EP_HOME/<name>/`` holding ``data/``, ``<name>.log`` and ``<name>.pid``.
The supervisor keeps no state of its own beyond those files, so ``stack up`` in one shell
and ``stack down`` in another agree on what is running.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from engagement_platform.local_stack import process
from engagement_platform.local_stack.cdc import CdcService
from engagement_platform.local_stack.clickhouse import ClickHouseService
from engagement_platform.local_stack.kafka import KafkaService
from engagement_platform.local_stack.postgres import PostgresService
from engagement_platform.local_stack.redis import RedisService
from engagement_platform.local_stack.service import Service
from engagement_platform.settings import Settings, child_env, masked


class StackError(RuntimeError):
    """A service could not be started or stopped."""


class StartCancelled(StackError):
    """Start-up was abandoned because a stop was requested meanwhile."""


class UnknownServiceError(LookupError):
    """A service name that is not part of the stack."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    healthy: bool
    pid: int | None
    endpoint: str
    crashed: bool = False  # a pid file names a process that is gone: it died, nobody stopped it

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "healthy": self.healthy,
            "pid": self.pid,
            "endpoint": self.endpoint,
        }


def stack_services(settings: Settings) -> list[Service]:
    """The five services, in start order (cdc last: it talks to Postgres and Kafka); a Kafka
    cluster's further nodes follow ``kafka`` (``kafka-2``...), further Connect workers ``cdc``."""
    return [
        PostgresService(settings),
        *(KafkaService(settings, n) for n in range(1, settings.kafka_brokers + 1)),
        RedisService(settings),
        ClickHouseService(settings),
        *(CdcService(settings, n) for n in range(1, settings.connect_workers + 1)),
    ]


class Supervisor:
    def __init__(self, settings: Settings, services: Sequence[Service] | None = None) -> None:
        self.settings = settings
        self.services = list(services) if services is not None else stack_services(settings)
        self._by_name = {s.name: s for s in self.services}

    # --- paths -------------------------------------------------------------------------
    def service_dir(self, name: str) -> Path:
        return self.settings.ep_home / name

    def data_dir(self, name: str) -> Path:
        return self.service_dir(name) / "data"

    def log_file(self, name: str) -> Path:
        return self.service_dir(name) / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.service_dir(name) / f"{name}.pid"

    def service(self, name: str) -> Service:
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(self._by_name)
            raise UnknownServiceError(f"unknown service {name!r} (known: {known})") from None

    # --- lifecycle ---------------------------------------------------------------------
    def running(self, name: str) -> process.PidRecord | None:
        return process.running_record(self.pid_file(name))

    def up(
        self,
        names: Iterable[str] | None = None,
        *,
        log: Callable[[str], None] = print,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        """Start what is not running, wait until each answers its protocol. Idempotent.

        ``cancelled`` is polled while waiting: when it turns true, StartCancelled is raised
        (what was started keeps running; the caller decides what to stop).
        """
        selected = [self.service(n) for n in names] if names else self.services
        self.settings.ep_home.mkdir(parents=True, exist_ok=True)
        started: list[Service] = []
        for svc in selected:
            if self.running(svc.name) is not None:
                log(f"{svc.name}: already running")
                continue
            for need in svc.needs:
                if need in self._by_name and self.running(need) is not None:
                    self._wait_healthy(self._by_name[need], cancelled=cancelled)
            self._start(svc)
            started.append(svc)
        for svc in selected:
            self._wait_healthy(svc, min_uptime=svc.min_uptime if svc in started else 0.0, cancelled=cancelled)
            svc.after_start()
            if svc in started:
                log(f"{svc.name}: up at {masked(svc.endpoint)}")

    def _start(self, svc: Service) -> process.PidRecord:
        self.service_dir(svc.name).mkdir(parents=True, exist_ok=True)
        data_dir = self.data_dir(svc.name)
        svc.prepare(data_dir)
        env = svc.child_env() or child_env(self.settings)
        return process.spawn(
            svc.argv(data_dir),
            pid_file=self.pid_file(svc.name),
            log_file=self.log_file(svc.name),
            env=env,
            cwd=self.service_dir(svc.name),
            run_as=svc.run_as,
        )

    def _wait_healthy(
        self, svc: Service, *, min_uptime: float = 0.0, cancelled: Callable[[], bool] = lambda: False
    ) -> None:
        began = time.monotonic()
        deadline = began + svc.start_timeout
        while True:
            if cancelled():
                raise StartCancelled(f"start-up of {svc.name} abandoned: stop requested")
            record = self.running(svc.name)
            if record is None:
                raise StackError(f"{svc.name} exited during start-up:\n{self.tail(svc.name)}")
            if time.monotonic() - began >= min_uptime and svc.healthy():
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"{svc.name} did not answer within {svc.start_timeout:.0f}s:\n{self.tail(svc.name)}"
                )
            time.sleep(0.2)

    def down(self, names: Iterable[str] | None = None, *, log: Callable[[str], None] = print) -> None:
        """Stop the processes our pid files name (and only those), in reverse start order.

        The pid file goes before the signal: `up` restarts a service whose process is gone while
        its pid file remains, and would otherwise take a deliberate stop (`stack restart`, a
        rolling restart of a cluster) for a crash and start a second copy alongside ours."""
        selected = [self.service(n) for n in names] if names else self.services
        for svc in reversed(selected):
            record = self.running(svc.name)
            pid_file = self.pid_file(svc.name)
            if record is None:
                pid_file.unlink(missing_ok=True)
                continue
            kept = pid_file.read_text()
            pid_file.unlink(missing_ok=True)
            process.stop(record, sig=svc.stop_signal)
            if process.is_alive(record):
                pid_file.write_text(kept)  # still ours to stop
                raise StackError(f"{svc.name} (pid {record.pid}) did not stop")
            log(f"{svc.name}: stopped (pid {record.pid})")

    def restart(self, name: str, *, log: Callable[[str], None] = print) -> None:
        self.down([name], log=log)
        self.up([name], log=log)

    def status(self) -> list[ServiceStatus]:
        def probe(svc: Service) -> ServiceStatus:
            record = self.running(svc.name)
            healthy = record is not None and svc.healthy()
            crashed = record is None and self.pid_file(svc.name).exists()
            pid = record.pid if record else None
            return ServiceStatus(svc.name, healthy, pid, svc.endpoint, crashed)

        with ThreadPoolExecutor(max_workers=len(self.services)) as pool:
            return list(pool.map(probe, self.services))

    def tail(self, name: str, lines: int = 30) -> str:
        try:
            text = self.log_file(name).read_text(errors="replace")
        except FileNotFoundError:
            return "(no log yet)"
        return "\n".join(text.splitlines()[-lines:])
