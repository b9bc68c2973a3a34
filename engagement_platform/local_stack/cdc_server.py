"""Local stand-in for a Kafka Connect worker running Debezium's Postgres connector.

Run as ``python -m engagement_platform.local_stack.cdc_server --data-dir DIR``. It serves
the part of the Kafka Connect REST API the platform uses, on 127.0.0.1:CONNECT_URL's
port, with Connect's JSON shapes and status codes, so the same client code drives this
process locally and a real Connect container under docker-compose.

Durability (data dir): ``connectors.json`` holds the registered configs and their target
state, ``offsets/`` the Debezium source offsets, ``epoch`` the broker epoch (below).

Fresh-broker guard: the local broker keeps topics in memory, so a broker restart loses
every topic while Postgres and our offsets survive — resuming from the offsets would
silently skip everything the lost topics held. We keep a marker topic holding an epoch
id we wrote; when the broker no longer has it, the broker is new: we stop the connectors,
delete their offsets and start them again, so Debezium re-snapshots the tables (the
replication slot is reused; sinks are idempotent by id, so duplicates are fine).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from engagement_platform import settings as settings_mod
from engagement_platform.local_stack import cdc_engine
from engagement_platform.local_stack.cdc_engine import ConnectorRunner

log = logging.getLogger("cdc")

EPOCH_TOPIC = "__ep_cdc_epoch"
EPOCH_CHECK_INTERVAL_S = 3.0


class ConnectError(Exception):
    """An error the REST layer reports as ``{"error_code": status, "message": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _atomic_write(path: Path, text: str) -> None:
    """Write via rename so a kill -9 never leaves a half-written registry behind."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------- epoch guard


class BrokerEpochGuard:
    """Detects that the broker lost its data since we last wrote to it.

    The marker topic may hold epochs of several CDC services sharing a broker (tests do
    that); ours is "present" if any record carries it, so services never fight.
    Any doubt (broker unreachable, read error) means "no decision": a wrong "fresh"
    only costs a redundant snapshot, but deciding on a half-answer is pointless.
    """

    def __init__(self, data_dir: Path, bootstrap_servers: str) -> None:
        self.path = data_dir / "epoch"
        self.bootstrap = bootstrap_servers
        self.epoch = self.path.read_text().strip() if self.path.exists() else ""

    def broker_is_fresh(self) -> bool | None:
        """True: our epoch is gone; False: it is there; None: could not tell."""
        from confluent_kafka import Consumer, KafkaError, TopicPartition
        from confluent_kafka.admin import AdminClient

        try:
            md = AdminClient(cdc_engine.kafka_client_config(self.bootstrap)).list_topics(timeout=3)
        except Exception:
            return None
        if not self.epoch or EPOCH_TOPIC not in md.topics:
            return True
        consumer = Consumer(
            {
                **cdc_engine.kafka_client_config(self.bootstrap),
                "group.id": "ep-cdc-epoch-reader",  # never joins: assign() only
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            }
        )
        try:
            consumer.assign([TopicPartition(EPOCH_TOPIC, 0, 0)])
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        return False
                    return None
                if (msg.value() or b"").decode(errors="replace").find(self.epoch) >= 0:
                    return False
            return None
        finally:
            consumer.close()

    def write_new_epoch(self) -> None:
        """Record a new epoch on the broker, then locally (order matters, see recover)."""
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic

        epoch = uuid.uuid4().hex
        admin = AdminClient(cdc_engine.kafka_client_config(self.bootstrap))
        for fut in admin.create_topics([NewTopic(EPOCH_TOPIC, 1, 1)]).values():
            try:
                fut.result(10)
            except Exception as exc:
                if "exist" not in str(exc).lower():
                    raise
        errors: list[Any] = []
        producer = Producer({**cdc_engine.kafka_client_config(self.bootstrap), "acks": "all"})
        producer.produce(
            EPOCH_TOPIC,
            key=b"epoch",
            value=json.dumps({"epoch": epoch, "written_at": time.time()}).encode(),
            partition=0,
            on_delivery=lambda err, _m: errors.append(err) if err else None,
        )
        if producer.flush(10) > 0 or errors:
            raise RuntimeError(f"could not write the epoch marker: {errors or 'timeout'}")
        _atomic_write(self.path, epoch + "\n")
        self.epoch = epoch


# --------------------------------------------------------------------------- worker


class Worker:
    """The registry of connectors and their engines; the REST layer's backend.

    ``_lifecycle`` serialises everything that starts or stops engines (REST calls and
    fresh-broker recovery) — stopping takes seconds, so status reads do not take it.
    """

    def __init__(self, data_dir: Path, settings: settings_mod.Settings) -> None:
        self.data_dir = data_dir
        self.settings = settings
        self.worker_id = f"127.0.0.1:{settings.connect_port}"
        self.registry_path = data_dir / "connectors.json"
        self.entries: dict[str, dict[str, Any]] = {}
        self.runners: dict[str, ConnectorRunner] = {}
        self._lifecycle = threading.RLock()
        self.guard = BrokerEpochGuard(data_dir, settings.kafka_bootstrap_servers)
        self._stop = threading.Event()
        if self.registry_path.exists():
            self.entries = json.loads(self.registry_path.read_text())

    def _save(self) -> None:
        _atomic_write(self.registry_path, json.dumps(self.entries, indent=2, sort_keys=True))

    # ---- engine lifecycle

    def _start(self, name: str) -> None:
        entry = self.entries[name]
        path = cdc_engine.offsets_file(self.data_dir, name)
        if not cdc_engine.offsets_readable(path):
            log.warning("connector %s: offsets file unreadable, removing it (re-snapshot)", name)
            path.unlink()
        runner = ConnectorRunner(
            name, entry["config"], self.data_dir, self.settings.kafka_bootstrap_servers, log.info
        )
        self.runners[name] = runner
        runner.start()

    def _stop_runner(self, name: str) -> None:
        runner = self.runners.pop(name, None)
        if runner is not None:
            runner.stop()

    def start_all(self) -> None:
        """Check the broker, then start every registered connector meant to run."""
        with self._lifecycle:
            fresh = self.guard.broker_is_fresh()
            if fresh:
                self._reset_offsets_and_epoch("at startup")
            elif fresh is None:
                log.warning("broker %s not reachable yet", self.settings.kafka_bootstrap_servers)
            for name, entry in self.entries.items():
                if entry.get("target_state", "STARTED") == "STARTED":
                    self._start(name)
                    log.info("connector %s starting", name)

    def _reset_offsets_and_epoch(self, when: str) -> None:
        """Forget offsets so the next start re-snapshots, then claim the broker.

        Offsets go first: if we die in between, the epoch is still missing on the
        broker and the next check repeats the reset — never the reverse, which would
        resume from old offsets on a broker that lost their records.
        """
        names = [n for n in self.entries if cdc_engine.offsets_file(self.data_dir, n).exists()]
        for name in self.entries:
            cdc_engine.offsets_file(self.data_dir, name).unlink(missing_ok=True)
        self.guard.write_new_epoch()
        if names:
            log.info(
                "fresh Kafka broker detected %s (topics were lost): re-snapshotting %s",
                when,
                ", ".join(sorted(names)),
            )
        else:
            log.info("claimed Kafka broker with epoch %s", self.guard.epoch)

    def check_broker(self) -> None:
        """Periodic guard: on a fresh broker, stop, reset offsets, restart."""
        if self.guard.broker_is_fresh() is not True:
            return
        with self._lifecycle:
            if self.guard.broker_is_fresh() is not True:
                return
            running = [n for n in list(self.runners)]
            for name in running:
                self._stop_runner(name)
            try:
                self._reset_offsets_and_epoch("while running")
            finally:
                for name in running:
                    if name in self.entries:
                        self._start(name)

    def guard_loop(self) -> None:
        while not self._stop.wait(EPOCH_CHECK_INTERVAL_S):
            try:
                self.check_broker()
            except Exception as exc:  # keep guarding; the next round retries
                log.warning("broker epoch check failed: %s", exc)

    def shutdown(self) -> None:
        self._stop.set()
        with self._lifecycle:
            threads = [threading.Thread(target=self._stop_runner, args=(n,)) for n in list(self.runners)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

    # ---- REST operations

    def _entry(self, name: str) -> dict[str, Any]:
        entry = self.entries.get(name)
        if entry is None:
            raise ConnectError(404, f"Connector {name} not found")
        return entry

    def info(self, name: str) -> dict[str, Any]:
        entry = self._entry(name)
        tasks = [] if entry.get("target_state") == "STOPPED" else [{"connector": name, "task": 0}]
        return {"name": name, "config": entry["config"], "tasks": tasks, "type": "source"}

    def config(self, name: str) -> dict[str, str]:
        return dict(self._entry(name)["config"])

    def status(self, name: str) -> dict[str, Any]:
        entry = self._entry(name)
        target = entry.get("target_state", "STARTED")
        runner = self.runners.get(name)
        connector: dict[str, Any] = {"state": "UNASSIGNED", "worker_id": self.worker_id}
        tasks: list[dict[str, Any]] = []
        if target == "STOPPED":
            connector["state"] = "STOPPED"
        elif target == "PAUSED":
            connector["state"] = "PAUSED"
            tasks = [{"id": 0, "state": "PAUSED", "worker_id": self.worker_id}]
        elif runner is not None:
            connector["state"] = runner.connector_state
            if runner.connector_trace:
                connector["trace"] = runner.connector_trace
            task: dict[str, Any] = {"id": 0, "state": runner.task_state}
            task["worker_id"] = self.worker_id
            if runner.task_state == "FAILED" and runner.task_trace:
                task["trace"] = runner.task_trace
            tasks = [task]
        return {"name": name, "connector": connector, "tasks": tasks, "type": "source"}

    def put_config(self, name: str, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict):
            raise ConnectError(400, "Connector configuration must be a JSON object")
        config: dict[str, str] = {}
        for key, value in body.items():
            if isinstance(value, dict | list):
                raise ConnectError(500, f"Cannot deserialize value of type `java.lang.String` for key {key}")
            if value is None:
                continue
            config[str(key)] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if "name" in config and config["name"] != name:
            raise ConnectError(
                400,
                f"Connector name configuration ({config['name']}) doesn't match connector "
                f"name in the URL ({name})",
            )
        config["name"] = name
        cls = config.get("connector.class")
        if not cls:
            raise ConnectError(400, f"Connector config {config} contains no connector type")
        if cls not in (cdc_engine.POSTGRES_CONNECTOR, "PostgresConnector", "Postgres"):
            raise ConnectError(
                500,
                f"Failed to find any class that implements Connector and which name matches "
                f"{cls}, available connectors are: "
                f"PluginDesc{{klass=class {cdc_engine.POSTGRES_CONNECTOR}}}",
            )
        errors = cdc_engine.validate_config(config)
        if errors:
            raise ConnectError(
                400,
                f"Connector configuration is invalid and contains the following "
                f"{len(errors)} error(s):\n"
                + "\n".join(errors)
                + "\nYou can also find the above list of errors at the endpoint "
                "`/connector-plugins/PostgresConnector/config/validate`",
            )
        with self._lifecycle:
            old = self.entries.get(name)
            created = old is None
            runner = self.runners.get(name)
            unchanged = (
                not created
                and old["config"] == config
                and runner is not None
                and runner.alive
                and "FAILED" not in (runner.connector_state, runner.task_state)
            )
            target = "STARTED" if created else old.get("target_state", "STARTED")
            self.entries[name] = {"config": config, "target_state": target}
            self._save()
            if not unchanged and target == "STARTED":
                self._stop_runner(name)
                self._start(name)
                log.info("connector %s %s", name, "created" if created else "reconfigured")
        return (201 if created else 200), self.info(name)

    def delete(self, name: str) -> None:
        with self._lifecycle:
            self._entry(name)
            self._stop_runner(name)
            del self.entries[name]
            self._save()
            # Like Connect, the source offsets outlive the connector: re-creating it
            # under the same name resumes where it stopped.
            log.info("connector %s deleted", name)

    def restart(self, name: str, only_failed: bool) -> None:
        with self._lifecycle:
            entry = self._entry(name)
            if entry.get("target_state", "STARTED") != "STARTED":
                return
            runner = self.runners.get(name)
            failed = runner is None or "FAILED" in (runner.connector_state, runner.task_state)
            if only_failed and not failed:
                return
            self._stop_runner(name)
            self._start(name)
            log.info("connector %s restarted", name)

    def set_target(self, name: str, target: str) -> None:
        with self._lifecycle:
            entry = self._entry(name)
            if entry.get("target_state", "STARTED") == target:
                return
            entry["target_state"] = target
            self._save()
            if target == "STARTED":
                self._start(name)
            else:
                self._stop_runner(name)
            log.info("connector %s %s", name, target.lower())


# --------------------------------------------------------------------------- HTTP


class ConnectHandler(BaseHTTPRequestHandler):
    """Routes the Kafka Connect REST endpoints onto the Worker."""

    worker: Worker
    root_info: dict[str, str]
    plugins: list[dict[str, str]]
    protocol_version = "HTTP/1.1"
    server_version = "ep-local-connect"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Requests are not notable events; keep stdout readable."""

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except ValueError as exc:
            raise ConnectError(400, f"Unable to parse request body as JSON: {exc}") from None

    def _dispatch(self, method: str) -> None:
        try:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            parts = [unquote(p) for p in url.path.split("/") if p]
            status, body, headers = self._route(method, parts, query)
            self._send(status, body, headers)
        except ConnectError as exc:
            self._send(exc.status, {"error_code": exc.status, "message": exc.message})
        except Exception as exc:  # Connect answers 500 with the exception text
            log.exception("request %s %s failed", method, self.path)
            self._send(500, {"error_code": 500, "message": str(exc)})

    def _route(
        self, method: str, parts: list[str], query: dict[str, list[str]]
    ) -> tuple[int, Any, dict[str, str] | None]:
        w = self.worker
        body = self._body() if method == "PUT" else None
        allowed: list[str]
        if parts == []:
            allowed = ["GET"]
            if method == "GET":
                return 200, self.root_info, None
        elif parts == ["connector-plugins"]:
            allowed = ["GET"]
            if method == "GET":
                return 200, self.plugins, None
        elif parts == ["connectors"]:
            allowed = ["GET"]
            if method == "GET":
                names = sorted(w.entries)
                expand = query.get("expand", [])
                if not expand:
                    return 200, names, None
                out: dict[str, Any] = {}
                for n in names:
                    out[n] = {}
                    if "status" in expand:
                        out[n]["status"] = w.status(n)
                    if "info" in expand:
                        out[n]["info"] = w.info(n)
                return 200, out, None
        elif len(parts) == 2 and parts[0] == "connectors":
            allowed = ["GET", "DELETE"]
            if method == "GET":
                return 200, w.info(parts[1]), None
            if method == "DELETE":
                w.delete(parts[1])
                return 204, None, None
        elif len(parts) == 3 and parts[0] == "connectors":
            name, leaf = parts[1], parts[2]
            if leaf == "config":
                allowed = ["GET", "PUT"]
                if method == "GET":
                    return 200, w.config(name), None
                if method == "PUT":
                    status, info = w.put_config(name, body)
                    return status, info, ({"Location": f"/connectors/{name}"} if status == 201 else None)
            elif leaf == "status":
                allowed = ["GET"]
                if method == "GET":
                    return 200, w.status(name), None
            elif leaf == "tasks":
                allowed = ["GET"]
                if method == "GET":
                    w.info(name)
                    return 200, [{"id": {"connector": name, "task": 0}, "config": w.config(name)}], None
            elif leaf == "restart":
                allowed = ["POST"]
                if method == "POST":
                    include_tasks = query.get("includeTasks", ["false"])[0] == "true"
                    only_failed = query.get("onlyFailed", ["false"])[0] == "true"
                    w.restart(name, only_failed)
                    if include_tasks or only_failed:
                        return 202, w.status(name), None
                    return 204, None, None
            elif leaf in ("pause", "resume", "stop"):
                allowed = ["PUT"]
                if method == "PUT":
                    target = {"pause": "PAUSED", "resume": "STARTED", "stop": "STOPPED"}[leaf]
                    w.set_target(name, target)
                    return (204 if leaf == "stop" else 202), None, None
            else:
                raise ConnectError(404, "HTTP 404 Not Found")
        elif len(parts) == 5 and parts[0] == "connectors" and parts[2] == "tasks":
            name = parts[1]
            if parts[3] != "0":
                w.info(name)
                raise ConnectError(404, f"Task {name}-{parts[3]} not found")
            allowed = ["GET"] if parts[4] == "status" else ["POST"]
            if parts[4] == "status" and method == "GET":
                tasks = w.status(name)["tasks"]
                if not tasks:
                    raise ConnectError(404, f"No status found for task {name}-0")
                return 200, tasks[0], None
            if parts[4] == "restart" and method == "POST":
                w.restart(name, only_failed=False)
                return 204, None, None
            if parts[4] not in ("status", "restart"):
                raise ConnectError(404, "HTTP 404 Not Found")
        else:
            raise ConnectError(404, "HTTP 404 Not Found")
        if method not in allowed:
            raise ConnectError(405, "HTTP 405 Method Not Allowed")
        raise ConnectError(404, "HTTP 404 Not Found")

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")


# --------------------------------------------------------------------------- main


def _cluster_id(bootstrap: str) -> str:
    try:
        from confluent_kafka.admin import AdminClient

        return AdminClient(cdc_engine.kafka_client_config(bootstrap)).list_topics(timeout=2).cluster_id or ""
    except Exception:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.INFO,
        format="%(asctime)s cdc %(levelname)s %(message)s",
    )
    started = time.monotonic()
    settings = settings_mod.load()
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)

    cdc_engine.start_jvm(settings.java_home, data_dir)
    # after the JVM (started with -Xrs) so that Python, not the JVM, owns SIGTERM
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    version, commit = cdc_engine.kafka_version()
    worker = Worker(data_dir, settings)
    ConnectHandler.worker = worker
    ConnectHandler.plugins = cdc_engine.connector_plugins()
    ConnectHandler.root_info = {
        "version": version,
        "commit": commit,
        "kafka_cluster_id": _cluster_id(settings.kafka_bootstrap_servers),
    }
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", settings.connect_port), ConnectHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    log.info(
        "Connect REST API on http://127.0.0.1:%d (Debezium %s, ready in %.1fs, data %s)",
        settings.connect_port,
        ConnectHandler.plugins[0]["version"],
        time.monotonic() - started,
        data_dir,
    )
    try:
        worker.start_all()
    except Exception as exc:
        log.error("starting registered connectors failed: %s", exc)
    threading.Thread(target=worker.guard_loop, name="epoch-guard", daemon=True).start()

    stop.wait()
    log.info("stopping: closing connectors and flushing offsets")
    server.shutdown()
    worker.shutdown()
    log.info("stopped")
    sys.stdout.flush()
    # JPype would wait for the JVM's non-daemon threads at exit; all our work is done.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
