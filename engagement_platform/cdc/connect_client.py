"""A small client for the Kafka Connect REST API."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any


class ConnectError(RuntimeError):
    """The Connect REST API answered with an error, or a connector did not come up."""


class ConnectClient:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _request(self, method: str, path: str, body: object | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                payload = {"message": raw.decode(errors="replace")}
            return exc.code, payload
        except (urllib.error.URLError, OSError) as exc:
            raise ConnectError(f"Kafka Connect at {self.url} is not reachable: {exc}") from exc

    def _ok(self, method: str, path: str, body: object | None = None) -> Any:
        status, payload = self._request(method, path, body)
        if status >= 400:
            message = payload.get("message") if isinstance(payload, dict) else payload
            raise ConnectError(f"{method} {path} -> {status}: {message}")
        return payload

    def connectors(self) -> list[str]:
        return list(self._ok("GET", "/connectors"))

    def plugins(self) -> list[dict[str, Any]]:
        return list(self._ok("GET", "/connector-plugins"))

    def validate(self, name: str, config: dict[str, str]) -> list[str]:
        """The connector plugin's own verdict on ``config``: one "key: error" line per error.

        Registering validates too, but Connect 4.3 answers a PUT whose config has errors
        with a 500 and a NullPointerException text when the plugin (Debezium 3.6) leaves a
        key without a value; the validate endpoint reports the real messages either way.
        """
        plugin = config.get("connector.class", "")
        payload = self._ok("PUT", f"/connector-plugins/{plugin}/config/validate", {**config, "name": name})
        errors = []
        for entry in payload.get("configs", []):
            value = entry.get("value") or {}
            errors += [f"{value.get('name')}: {error}" for error in value.get("errors", [])]
        return errors

    def put_config(self, name: str, config: dict[str, str]) -> bool:
        """Validate, then create or update; True when the connector was created.

        An unchanged config is not PUT again: Connect restarts a connector on every PUT,
        and re-running the set-up should leave a running pipeline alone.
        """
        status, current = self._request("GET", f"/connectors/{name}/config")
        if status == 200 and {k: v for k, v in current.items() if k != "name"} == config:
            return False
        errors = self.validate(name, config)
        if errors:
            raise ConnectError(f"connector {name} config is invalid: " + "; ".join(errors))
        status, payload = self._request("PUT", f"/connectors/{name}/config", config)
        if status >= 400:
            message = payload.get("message") if isinstance(payload, dict) else payload
            raise ConnectError(f"registering {name} failed ({status}): {message}")
        return status == 201

    def config(self, name: str) -> dict[str, str]:
        return dict(self._ok("GET", f"/connectors/{name}/config"))

    def status(self, name: str) -> dict[str, Any]:
        return dict(self._ok("GET", f"/connectors/{name}/status"))

    def restart(self, name: str) -> None:
        self._ok("POST", f"/connectors/{name}/restart?includeTasks=true")

    def delete(self, name: str) -> None:
        status, payload = self._request("DELETE", f"/connectors/{name}")
        if status >= 400 and status != 404:
            raise ConnectError(f"deleting {name} failed ({status}): {payload}")

    def wait_running(self, name: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the connector and all its tasks are RUNNING; raise with the trace on FAILED."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status, payload = self._request("GET", f"/connectors/{name}/status")
            if status == 200:
                last = payload
                states = [payload["connector"]["state"]] + [t["state"] for t in payload.get("tasks", [])]
                failed = [
                    t for t in [payload["connector"], *payload.get("tasks", [])] if t["state"] == "FAILED"
                ]
                if failed:
                    trace = failed[0].get("trace", "(no trace)")
                    raise ConnectError(f"connector {name} FAILED: {trace}")
                if payload.get("tasks") and all(s == "RUNNING" for s in states):
                    return payload
            time.sleep(0.5)
        raise ConnectError(f"connector {name} not RUNNING after {timeout:.0f}s; last status: {last}")
