"""The peer enrichers (Faust, Quix Streams) as contenders of ``bench enrich``.

Each runs as a child process in ``.venv-peers`` (``make install`` builds it: Quix Streams
pins confluent-kafka below the platform's), over the same pre-loaded topics as ours, into
an output topic made like ours'. Its rate is measured as ours is, from the first event it
consumed to the last record produced and acknowledged (and its offsets committed); the
child measures that itself and reports it on stdout (:mod:`engagement_platform.bench.peer_apps.common`),
so neither its interpreter's start nor its group join counts. The output topic must then
hold one record per event.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
from pathlib import Path

from engagement_platform.bench.peer_apps.common import REPORT_PREFIX
from engagement_platform.bench.report import Bar, Run
from engagement_platform.settings import PROJECT_ROOT, Settings
from engagement_platform.streaming import kafka_io

PYTHON = PROJECT_ROOT / ".venv-peers" / "bin" / "python"
STARTUP_SECONDS = 120.0
SLOWEST_RATE = 200.0  # events/s
MODULES = {
    "faust": "engagement_platform.bench.peer_apps.faust_app",
    "quix": "engagement_platform.bench.peer_apps.quix_app",
}


def missing() -> str | None:
    """Why the peers cannot run here (None: they can)."""
    return None if PYTHON.exists() else f"{PYTHON} is missing (`make install` creates it)"


def internal_topics(name: str, group: str) -> list[str]:
    """The topics a peer creates for itself (Faust: its table's changelog, its assignor's)."""
    return [f"{group}-__assignor-__leader", f"{group}-content-changelog"] if name == "faust" else []


def run(
    name: str, settings: Settings, *, group: str, events: str, content: str, output: str, n: int, bar: Bar
) -> Run:
    """Run peer ``name`` to the end of ``n`` events of ``events``; its own figures make the run."""
    # the peers' own clients get ours' tuning; the endpoint is an argument, the logger an object
    local = {"bootstrap.servers", "logger"}
    producer = {k: v for k, v in kafka_io.producer_config(settings).items() if k not in local}
    with (
        tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as workdir,
        open(Path(workdir) / "stderr", "w+") as err,
    ):
        args = [
            str(PYTHON), "-m", MODULES[name],
            "--bootstrap", settings.kafka_bootstrap_servers,
            "--group", group,
            "--events-topic", events,
            "--content-topic", content,
            "--output-topic", output,
            "--partitions", str(settings.topic_partitions),
            "--stop-after", str(n),
            "--producer-config", json.dumps(producer),
            "--workdir", workdir,
        ]  # fmt: skip
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, cwd=workdir)
        # a hung child must not hang the benchmark: far beyond the slowest peer's pace
        watchdog = threading.Timer(STARTUP_SECONDS + n / SLOWEST_RATE, proc.kill)
        watchdog.start()
        last: dict[str, float] = {}
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith(REPORT_PREFIX):
                    last = json.loads(line[len(REPORT_PREFIX) :])
                    bar.update(int(last["processed"]))
            code = proc.wait()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if code != 0 or "seconds" not in last:
            err.seek(0)
            tail = "\n".join(err.read().splitlines()[-20:])
            raise RuntimeError(f"peer {name} exited {code} before reporting its figures:\n{tail}")
    if last["emitted"] != n:
        raise RuntimeError(f"peer {name} emitted {last['emitted']:,} of {n:,} events")
    return Run(int(last["processed"]), float(last["seconds"]))
