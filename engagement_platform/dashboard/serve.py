"""`streamlit run`, with the page's work that does not depend on a visitor done once at start.

``python -m engagement_platform.dashboard.serve run engagement_platform/dashboard/server.py
[--server.port …]`` takes Streamlit's own command line. Beside the server, once its runtime is
up, it imports the page's modules (pandas, the service clients: ~1 s of CPU, several under
load) and makes the shared clients,
so the first visitor after `up` waits for its own queries only (docs/performance.md, "The
dashboard"). Warming is best effort: a service that is down is the page's to report.
"""

from __future__ import annotations

import logging
import os
import threading
import time

LOG = logging.getLogger(__name__)
RUNTIME_WAIT_S = 60  # the server's start; the caches need its runtime (else a private one)


def warm() -> None:
    """Import the page's modules and make its clients, in the server's process."""
    from streamlit import runtime

    deadline = time.monotonic() + RUNTIME_WAIT_S
    while not runtime.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        from engagement_platform import settings as settings_module
        from engagement_platform.dashboard import analytics, controls, health, leaderboard, services, title  # noqa: F401

        settings = settings_module.load()
        services.redis_client(settings)
        with services.warehouse(settings):
            pass
    except Exception as exc:  # noqa: BLE001 - the page reports services that are down
        LOG.info("warming the dashboard stopped early: %s", exc)


def main() -> None:
    # Streamlit's file watcher (a development aid: rerun on a code change) walks every imported
    # module's path after each script run, ~0.5 s of the server's event loop per run with
    # pandas and the clients imported; a served page does not change under it
    os.environ.setdefault("STREAMLIT_SERVER_FILE_WATCHER_TYPE", "none")
    # Streamlit runs a full garbage collection after every script run, a fragment's included:
    # ~0.2 s of the server's CPU, holding the GIL, per run (py-spy, docs/performance.md); Python's
    # own collector still runs
    os.environ.setdefault("STREAMLIT_RUNNER_POST_SCRIPT_GC", "false")
    threading.Thread(target=warm, name="warm", daemon=True).start()
    from streamlit.web.cli import main as streamlit_main

    streamlit_main(prog_name="streamlit")


if __name__ == "__main__":
    main()
