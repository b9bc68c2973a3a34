"""Detached processes tracked by pid files, so any later command can find and stop them.

A pid file records the pid *and* the start time of that pid (psutil's ``create_time``): a pid
reused by an unrelated process after a crash is then never mistaken for ours, and never killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class PidRecord:
    pid: int
    start_time: float  # psutil create_time(): seconds since the epoch, as the kernel reports it
    argv: list[str]


def start_time_of(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def is_alive(record: PidRecord) -> bool:
    """True when the recorded process still runs (zombies count as dead)."""
    try:
        proc = psutil.Process(record.pid)
        if proc.create_time() != record.start_time:
            return False
        if proc.status() == psutil.STATUS_ZOMBIE:
            # reap it if it is our own child, so it stops occupying the pid
            with contextlib.suppress(ChildProcessError):
                os.waitpid(record.pid, os.WNOHANG)
            return False
    except psutil.Error:
        return False
    return True


def read_pid_file(path: Path) -> PidRecord | None:
    try:
        data = json.loads(path.read_text())
        return PidRecord(int(data["pid"]), float(data["start_time"]), list(data["argv"]))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def running_record(path: Path) -> PidRecord | None:
    """The pid file's process if it is alive, else None."""
    record = read_pid_file(path)
    return record if record is not None and is_alive(record) else None


def spawn(
    argv: Sequence[str],
    *,
    pid_file: Path,
    log_file: Path,
    env: Mapping[str, str],
    cwd: Path,
    run_as: str | None = None,
) -> PidRecord:
    """Start ``argv`` in its own session (so it outlives us and can be stopped as a group)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None
    if run_as is not None:
        account = pwd.getpwnam(run_as)
        user, group, extra_groups = account.pw_uid, account.pw_gid, []
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            user=user,
            group=group,
            extra_groups=extra_groups,
        )
    started = start_time_of(proc.pid)
    record = PidRecord(proc.pid, started if started is not None else -1, list(argv))
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": record.pid, "start_time": record.start_time, "argv": record.argv}))
    tmp.replace(pid_file)
    return record


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(ProcessLookupError, psutil.Error):
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
    return members


def stop(record: PidRecord, *, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
    """Signal the process group, wait for all of it to exit, SIGKILL what is left."""
    if not is_alive(record):
        return
    try:
        pgid = os.getpgid(record.pid)
    except ProcessLookupError:
        return
    if pgid != record.pid:  # not a group leader we started: signal only the process
        _signal(lambda s: os.kill(record.pid, s), sig)
        _wait(lambda: is_alive(record), timeout)
        if is_alive(record):
            _signal(lambda s: os.kill(record.pid, s), signal.SIGKILL)
        return
    _signal(lambda s: os.killpg(pgid, s), sig)
    _wait(lambda: is_alive(record) or bool(group_members(pgid)), timeout)
    if bool(group_members(pgid)):
        _signal(lambda s: os.killpg(pgid, s), signal.SIGKILL)
        _wait(lambda: bool(group_members(pgid)), 5.0)
    is_alive(record)  # reaps the leader if it was our child


def _signal(send: Callable[[int], None], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        send(sig)


def _wait(still_running: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while still_running() and time.monotonic() < deadline:
        time.sleep(0.05)
