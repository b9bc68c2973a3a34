"""Detached processes tracked by pid files, so any later command can find and stop them.

A pid file records the pid *and* the kernel's start time of that pid: a pid reused by an
unrelated process after a crash is then never mistaken for ours, and never killed.
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


@dataclass(frozen=True)
class PidRecord:
    pid: int
    start_time: int  # /proc/<pid>/stat field 22, in clock ticks since boot
    argv: list[str]


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name sits in parentheses and may itself contain spaces or ')'
    return raw[raw.rindex(")") + 2 :].split()


def start_time_of(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return int(stat[19]) if stat else None


def is_alive(record: PidRecord) -> bool:
    """True when the recorded process still runs (zombies count as dead)."""
    stat = _proc_stat(record.pid)
    if stat is None or int(stat[19]) != record.start_time:
        return False
    if stat[0] == "Z":
        # reap it if it is our own child, so it stops occupying the pid
        with contextlib.suppress(ChildProcessError):
            os.waitpid(record.pid, os.WNOHANG)
        return False
    return True


def read_pid_file(path: Path) -> PidRecord | None:
    try:
        data = json.loads(path.read_text())
        return PidRecord(int(data["pid"]), int(data["start_time"]), list(data["argv"]))
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
    user_kwargs: dict[str, object] = {}
    if run_as is not None:
        account = pwd.getpwnam(run_as)
        user_kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            **user_kwargs,  # type: ignore[arg-type]
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
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat and int(stat[2]) == pgid and stat[0] != "Z":
            members.append(int(entry.name))
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
