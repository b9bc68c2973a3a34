"""Pid-file bookkeeping: a stale or reused pid is never mistaken for ours."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from engagement_platform.local_stack import process


def test_spawn_track_and_stop_a_process_group(tmp_path: Path) -> None:
    # the child starts a grandchild in the same group: stop must take both
    script = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"
    record = process.spawn(
        [sys.executable, "-c", script],
        pid_file=tmp_path / "x.pid",
        log_file=tmp_path / "x.log",
        env=dict(os.environ),
        cwd=tmp_path,
    )
    assert process.running_record(tmp_path / "x.pid") == record
    process.stop(record, timeout=5)
    assert not process.is_alive(record)
    assert process.running_record(tmp_path / "x.pid") is None


def test_a_reused_pid_does_not_count_as_ours(tmp_path: Path) -> None:
    me = process.PidRecord(os.getpid(), process.start_time_of(os.getpid()) or 0, ["me"])
    assert process.is_alive(me)
    impostor = process.PidRecord(me.pid, me.start_time + 1, ["me"])
    assert not process.is_alive(impostor)
    (tmp_path / "bad.pid").write_text("not json")
    assert process.read_pid_file(tmp_path / "bad.pid") is None
