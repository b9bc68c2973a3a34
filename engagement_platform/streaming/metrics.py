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

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger("engagement_platform.streaming.metrics")

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
        labels = ["consumer"]
        self._in = Counter("ep_consumer_records_in", "Records consumed", labels, registry=self.registry)
        self._out = Counter(
            "ep_consumer_records_out", "Records written to the sink", labels, registry=self.registry
        )
        self._batch_size = Histogram(
            "ep_consumer_batch_size",
            "Records per written batch",
            labels,
            buckets=BATCH_SIZES,
            registry=self.registry,
        )
        self._batch_seconds = Histogram(
            "ep_consumer_batch_seconds",
            "Seconds to process and write one batch",
            labels,
            buckets=BATCH_SECONDS,
            registry=self.registry,
        )
        self._lag = Gauge(
            "ep_consumer_lag_messages", "Messages behind the high watermark", labels, registry=self.registry
        )
        self._committed = Gauge(
            "ep_consumer_last_commit_timestamp_seconds",
            "When offsets were last committed (Unix time)",
            labels,
            registry=self.registry,
        )

    def count(self, name: str, n: int) -> None:
        if n <= 0:
            return
        counter = self._counters.get(name)
        if counter is None:
            metric = "ep_consumer_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)
            counter = self._counters[name] = Counter(
                metric, f"Summary counter '{name}'", ["consumer"], registry=self.registry
            )
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

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve /metrics on ``host`` (the settings' listen_host: loopback in local mode); port 0
        serves nothing. A taken port costs the metrics, not the consumer: the stream matters more
        than its gauges."""
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
