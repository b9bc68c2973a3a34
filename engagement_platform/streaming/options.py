"""What configures every consumer, and the flags that set it, in one place.

Flags are a contract (``up``, the tests and operators call them), so each consumer's
options are a dataclass whose field names are the flags' ``dest`` names: ``from_args``
needs no per-consumer mapping, and a default lives in exactly one place, which ``--help``
shows.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Self

from engagement_platform.argtypes import non_negative_float, non_negative_int, positive_float, positive_int
from engagement_platform.streaming.kafka_io import FETCH_WAIT_MS


@dataclass(kw_only=True)
class ConsumerOptions:
    """Shared by every consumer; a subclass sets its own defaults and adds its own fields."""

    group: str
    batch_size: int  # records per consume() call at most
    poll_timeout: float  # seconds a consume() call waits when nothing is there
    # seconds a batch waits for more records once its first arrived (0: take what is queued)
    fill_wait: float = 0.0
    # seconds a batch may wait for more records after its first (0: each poll's records are one)
    max_wait: float = 0.0
    # seconds between commits; 0: the stage commits after each batch it acknowledged
    commit_interval: float = 0.0
    summary_every: float = 5.0  # seconds between summary lines
    fetch_wait_ms: int = FETCH_WAIT_MS
    metrics_port: int | None = None  # /metrics on 127.0.0.1; None: the consumer's setting, 0: off

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Self:
        """The options the parsed flags set; fields without a flag keep their default."""
        given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
        return cls(**given)


def add_arguments(parser: argparse.ArgumentParser, defaults: ConsumerOptions, *, batch: str) -> None:
    """``--group``, ``--batch-size`` (``batch`` says what it bounds) and ``--summary-every``."""
    parser.add_argument("--group", default=defaults.group, help=f"consumer group (default {defaults.group})")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=defaults.batch_size,
        help=f"{batch} (default {defaults.batch_size})",
    )
    parser.add_argument(
        "--fill-wait",
        type=non_negative_float,
        default=defaults.fill_wait,
        help="seconds a batch waits for more records once its first arrived; 0 takes what is already "
        f"there, the lowest latency (default {defaults.fill_wait:g})",
    )
    parser.add_argument(
        "--fetch-wait-ms",
        type=non_negative_int,
        default=defaults.fetch_wait_ms,
        help=f"the longest the broker holds a fetch for more data (fetch.wait.max.ms; default "
        f"{defaults.fetch_wait_ms})",
    )
    parser.add_argument(
        "--metrics-port",
        type=non_negative_int,
        default=defaults.metrics_port,
        help="serve Prometheus /metrics on 127.0.0.1:PORT (0: off; default: the consumer's "
        "*_METRICS_PORT setting)",
    )
    parser.add_argument(
        "--summary-every",
        type=positive_float,
        default=defaults.summary_every,
        help=f"seconds between summary lines (default {defaults.summary_every:g})",
    )
