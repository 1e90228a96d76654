"""Debian's Prometheus and Alertmanager as processes on loopback, fed the shipped configs."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from .otelcol import BUILT, COLLECTOR, free_port, local_config, wait_for

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
RULES = COLLECTOR / "prometheus" / "rules"


class Process:
    def __init__(self, name: str, command: list[str], work: Path, ready_url: str) -> None:
        self.name, self.command, self.work, self.ready_url = name, command, work, ready_url
        self.log_path = work / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0):
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, cwd=self.work)
        log.close()
        wait_for(self._ready, timeout, f"{self.name} ready", self)
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()[-4000:]}")
        try:
            with urllib.request.urlopen(self.ready_url, timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Prometheus(Process):
    """The shipped collector/prometheus/prometheus.yml with its targets moved to the local ports."""

    def __init__(
        self,
        work: Path,
        targets: dict[str, str | list[str]],
        *,
        alertmanager: str | None = None,
        rule_files: list[Path] | None = None,
        interval: str = "1s",
        remote_write: bool = False,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        shipped = yaml.safe_load((COLLECTOR / "prometheus" / "prometheus.yml").read_text())
        shipped["global"].update(scrape_interval=interval, evaluation_interval=interval)
        rules = rule_files if rule_files is not None else sorted(RULES.glob("*.rules.yaml"))
        shipped["rule_files"] = [str(p) for p in rules]
        targets = {**targets, "localhost:9090": f"127.0.0.1:{self.port}"}
        # A shipped target with no local counterpart in this run is left out.
        for job in shipped["scrape_configs"]:
            for static in job["static_configs"]:
                local = [targets.get(t, []) for t in static["targets"]]
                static["targets"] = [t for group in local for t in ([group] if isinstance(group, str) else group)]
        shipped["scrape_configs"] = [
            j for j in shipped["scrape_configs"] if any(s["targets"] for s in j["static_configs"])
        ]
        if alertmanager:
            shipped["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager]
        else:
            del shipped["alerting"]
        config = work / "prometheus.yml"
        config.write_text(yaml.safe_dump(shipped, sort_keys=False))
        (work / "prometheus-data").mkdir(exist_ok=True)
        command = [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        if remote_write:  # the gateways push metrics (prometheus_remote_write)
            command.append("--web.enable-remote-write-receiver")
        super().__init__("prometheus", command, work, f"{self.url}/-/ready")

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def vector(self, expr: str, label: str) -> dict[str, float]:
        """An instant vector as {value of label: value}."""
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr)}

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.load(response)


class Webhook:
    """An HTTP receiver for Alertmanager's webhook notifications; keeps every payload."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        received = self.payloads

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the trace and log backends, built from Go modules by `make backends` ---------------

JAEGER = BUILT.parent / "jaeger"
VICTORIA_LOGS = BUILT.parent / "victoria-logs"
BACKENDS_NOT_BUILT = "Jaeger and VictoriaLogs not built: run `make backends` (needs Go)"


def backends_built() -> bool:
    return JAEGER.is_file() and VICTORIA_LOGS.is_file()


class Jaeger(Process):
    """Jaeger v2 running the shipped collector/jaeger/jaeger.yaml, its listeners moved to free loopback ports."""

    def __init__(self, work: Path) -> None:
        config, self.ports = local_config(COLLECTOR / "jaeger" / "jaeger.yaml", work)
        path = work / "jaeger.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.url = f"http://127.0.0.1:{self.ports[16686]}"
        self.otlp_grpc = f"127.0.0.1:{self.ports[4317]}"
        super().__init__(
            "jaeger", [str(JAEGER), f"--config={path}"], work, f"http://127.0.0.1:{self.ports[13133]}/status"
        )

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace as Jaeger's query API gives it (spans, processes), or None."""
        try:
            with urllib.request.urlopen(f"{self.url}/api/traces/{trace_id}", timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return body["data"][0] if body.get("data") else None

    def traces(self, service: str, limit: int = 10000) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"service": service, "limit": limit, "lookback": "1h"})
        with urllib.request.urlopen(f"{self.url}/api/traces?{query}", timeout=30) as response:
            return json.load(response).get("data") or []


class VictoriaLogs(Process):
    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.otlp_endpoint = f"{self.url}/insert/opentelemetry"
        super().__init__(
            "victoria-logs",
            [
                str(VICTORIA_LOGS),
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={work / 'victoria-logs-data'}",
            ],
            work,
            f"{self.url}/health",
        )

    def query(self, logsql: str, limit: int = 10000) -> list[dict[str, Any]]:
        """Log entries matching a LogsQL query, one dict per entry."""
        data = urllib.parse.urlencode({"query": logsql, "limit": limit}).encode()
        with urllib.request.urlopen(f"{self.url}/select/logsql/query", data=data, timeout=30) as response:
            return [json.loads(line) for line in response.read().decode().splitlines() if line.strip()]


class TracedClient:
    """HTTP calls that each start a trace whose id the test chose (a sampled W3C traceparent)."""

    def __init__(self, base_url: str) -> None:
        import httpx

        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.headers: dict[str, str] = {}
        self.traces: dict[str, list[str]] = {}
        self.parents: dict[str, str] = {}
        self.statuses: Counter[str] = Counter()

    def call(self, kind: str, method: str, path: str, **kwargs: Any):
        trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
        headers = {**self.headers, "traceparent": f"00-{trace_id}-{span_id}-01"}
        response = self.http.request(method, path, headers=headers, **kwargs)
        self.traces.setdefault(kind, []).append(trace_id)
        self.parents[trace_id] = span_id
        self.statuses[f"{kind} {response.status_code}"] += 1
        return response

    def close(self) -> None:
        self.http.close()


def services(trace: dict[str, Any]) -> set[str]:
    return {trace["processes"][span["processID"]]["serviceName"] for span in trace["spans"]}


def orphans(trace: dict[str, Any], remote_parent: str) -> list[str]:
    """Spans whose parent is neither in the trace nor the test's own (remote) parent: a trace cut apart."""
    ids = {span["spanID"] for span in trace["spans"]}
    cut = []
    for span in trace["spans"]:
        parents = [r["spanID"] for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
        if any(p not in ids and p != remote_parent for p in parents):
            cut.append(span["operationName"])
    return cut


class Alertmanager(Process):
    """Debian's Alertmanager with the shipped routes and inhibitions; every receiver delivers to the test's
    webhook instead of PagerDuty, Slack and e-mail (the receiver's name is in each notification).

    ``timings`` (say ``{"group_wait": "2s", "group_interval": "5s"}``) replaces those values wherever the
    shipped routes set them: the routing, grouping and inhibitions stay as shipped, only sooner."""

    def __init__(self, work: Path, webhook_url: str, timings: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        shipped = yaml.safe_load((COLLECTOR / "alertmanager" / "alertmanager.yml").read_text())
        shipped["global"] = {"resolve_timeout": shipped["global"]["resolve_timeout"]}
        for route in [shipped["route"], *shipped["route"].get("routes", [])]:
            for key, value in (timings or {}).items():
                if key in route:
                    route[key] = value
        shipped["receivers"] = [
            {"name": r["name"], "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}
            for r in shipped["receivers"]
        ]
        config = work / "alertmanager.yml"
        config.write_text(yaml.safe_dump(shipped, sort_keys=False))
        super().__init__(
            "alertmanager",
            [
                ALERTMANAGER,
                f"--config.file={config}",
                f"--storage.path={work / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            work,
            f"{self.url}/-/ready",
        )
