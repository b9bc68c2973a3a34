"""Prometheus metrics of one consumer process, served at ``http://127.0.0.1:PORT/metrics``
(every interface of its container in compose mode).

Every counter a consumer already keeps for its summary line (``Summary.add``) is also a
Prometheus counter ``ep_consumer_<name>_total``, and the consumer's notion of "records in" and
"records out" feeds ``ep_consumer_records_in_total`` / ``_out_total``: one place counts, two
places show it. Batches, lag and the last commit are recorded where they happen.
"""

from __future__ import annotations

import logging
import re
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from engagement_platform.settings import Settings

log = logging.getLogger("engagement_platform.streaming.metrics")

M = TypeVar("M", Counter, Gauge, Histogram)
BATCH_SIZES = (1, 10, 100, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000)
BATCH_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ConsumerMetrics:
    """One registry per process; ``records_in`` / ``records_out`` name the summary counters that
    mean "consumed" and "written" for this consumer."""

    def __init__(self, consumer: str, *, records_in: str, records_out: str) -> None:
        self.consumer = consumer
        self.registry = CollectorRegistry()
        self.records_in, self.records_out = records_in, records_out
        self._counters: dict[str, Counter] = {}
        self._in = self._metric(Counter, "ep_consumer_records_in", "Records consumed")
        self._out = self._metric(Counter, "ep_consumer_records_out", "Records written to the sink")
        self._batch_size = self._metric(
            Histogram, "ep_consumer_batch_size", "Records per written batch", buckets=BATCH_SIZES
        )
        self._batch_seconds = self._metric(
            Histogram,
            "ep_consumer_batch_seconds",
            "Seconds to process and write one batch",
            buckets=BATCH_SECONDS,
        )
        self._lag = self._metric(Gauge, "ep_consumer_lag_messages", "Messages behind the high watermark")
        self._committed = self._metric(
            Gauge, "ep_consumer_last_commit_timestamp_seconds", "When offsets were last committed (Unix time)"
        )

    def _metric(self, kind: type[M], name: str, doc: str, **options: Any) -> M:
        """One metric of this process's registry, labelled by consumer."""
        return kind(name, doc, ["consumer"], registry=self.registry, **options)

    def count(self, name: str, n: int) -> None:
        if n <= 0:
            return
        counter = self._counters.get(name)
        if counter is None:
            metric = "ep_consumer_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)
            counter = self._counters[name] = self._metric(Counter, metric, f"Summary counter '{name}'")
        counter.labels(self.consumer).inc(n)
        if name == self.records_in:
            self._in.labels(self.consumer).inc(n)
        if name == self.records_out:
            self._out.labels(self.consumer).inc(n)

    def batch(self, size: int, seconds: float) -> None:
        self._batch_size.labels(self.consumer).observe(size)
        self._batch_seconds.labels(self.consumer).observe(seconds)

    def lag(self, messages: int) -> None:
        self._lag.labels(self.consumer).set(messages)

    def committed(self) -> None:
        self._committed.labels(self.consumer).set_to_current_time()

    def serve(self, settings: Settings, given: int | None = None) -> None:
        """Serve /metrics on the consumer's port (``given``, its --metrics-port, else its setting;
        0 serves nothing) and the settings' listen host (loopback in local mode). A taken port
        costs the metrics, not the consumer: the stream matters more than its gauges."""
        port, host = settings.metrics_port(self.consumer, given), settings.listen_host
        if not port:
            return
        try:
            start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            log.error(
                "%s: cannot serve metrics on %s:%d (%s); running without", self.consumer, host, port, exc
            )
            return
        log.info("%s: metrics at http://%s:%d/metrics", self.consumer, host, port)
