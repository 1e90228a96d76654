"""Debian's Prometheus and Alertmanager as processes on loopback, fed the shipped configs."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from .otelcol import COLLECTOR, free_port, wait_for

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

    def __init__(self, work: Path, targets: dict[str, str], *, alertmanager: str | None = None,
                 rule_files: list[Path] | None = None, interval: str = "1s") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        shipped = yaml.safe_load((COLLECTOR / "prometheus" / "prometheus.yml").read_text())
        shipped["global"].update(scrape_interval=interval, evaluation_interval=interval)
        shipped["rule_files"] = [str(p) for p in (rule_files if rule_files is not None else sorted(RULES.glob("*.rules.yaml")))]
        targets = {**targets, "localhost:9090": f"127.0.0.1:{self.port}"}
        for job in shipped["scrape_configs"]:
            for static in job["static_configs"]:
                static["targets"] = [targets[t] for t in static["targets"]]
        if alertmanager:
            shipped["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager]
        else:
            del shipped["alerting"]
        config = work / "prometheus.yml"
        config.write_text(yaml.safe_dump(shipped, sort_keys=False))
        (work / "prometheus-data").mkdir(exist_ok=True)
        super().__init__("prometheus", [PROMETHEUS, f"--config.file={config}",
                                        f"--storage.tsdb.path={work / 'prometheus-data'}",
                                        f"--web.listen-address=127.0.0.1:{self.port}"], work, f"{self.url}/-/ready")

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
            def do_POST(self) -> None:  # noqa: N802
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
