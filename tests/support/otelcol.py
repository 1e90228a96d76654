"""The project's collector distribution (collector/builder-config.yaml, built by `make collector`)."""

from __future__ import annotations

import copy
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR = ROOT / "collector"
MANIFEST = COLLECTOR / "builder-config.yaml"
SINGLE = COLLECTOR / "otelcol-config.yaml"
SECURE = COLLECTOR / "otelcol-secure.yaml"
AGENT = COLLECTOR / "k8s" / "otelcol-agent.yaml"
GATEWAY = COLLECTOR / "k8s" / "otelcol-gateway.yaml"
BUILT = ROOT / ".collector" / "otelcol-monitor"
NOT_BUILT = "collector not built: run `make collector` (needs Go)"


def collector_binary() -> Path | None:
    """OTEL_MONITOR_COLLECTOR if set, else the binary `make collector` links into .collector/."""
    named = os.environ.get("OTEL_MONITOR_COLLECTOR")
    candidate = Path(named) if named else BUILT
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    if named and shutil.which(named):
        return Path(shutil.which(named))
    return None


def require_collector() -> Path:
    """Path of the built collector; the test is skipped (naming `make collector`) when there is none.
    Tests take it as the `otelcol` fixture (conftest.py)."""
    binary = collector_binary()
    if binary is None:
        pytest.skip(NOT_BUILT)
    return binary


# --- running shipped configs as processes, on loopback only ------------------------------

LISTEN = re.compile(r"^(0\.0\.0\.0|\$\{env:POD_IP\}):(\d+)$")
ANY_HOST = {"0.0.0.0", "${env:POD_IP}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_config(source: Path | dict, work: Path) -> tuple[dict, dict[int, int]]:
    """A shipped config with every listening address moved to 127.0.0.1 on a free port.

    Returns the config and {shipped port: local port}. File-storage folders go under work."""
    config = copy.deepcopy(source) if isinstance(source, dict) else yaml.safe_load(Path(source).read_text())
    ports: dict[int, int] = {}

    def local(port: int) -> int:
        return ports.setdefault(port, free_port())

    def walk(node: object) -> object:
        if isinstance(node, dict):
            if node.get("host") in ANY_HOST and isinstance(node.get("port"), int):
                node["host"], node["port"] = "127.0.0.1", local(node["port"])
            for key, value in node.items():
                if key == "directory" and isinstance(value, str) and value.startswith("/var/lib/otelcol"):
                    node[key] = str(work / value.strip("/").replace("/", "_"))
                    Path(node[key]).mkdir(parents=True, exist_ok=True)
                else:
                    node[key] = walk(value)
            return node
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str):
            match = LISTEN.match(node)
            if match:
                return f"127.0.0.1:{local(int(match.group(2)))}"
        return node

    return walk(config), ports


class Collector:
    """otelcol-monitor running a config file; its log goes to a file, never to an unread pipe."""

    def __init__(
        self, binary: Path, config: dict, work: Path, name: str, health_port: int, env: dict[str, str] | None = None
    ) -> None:
        self.binary, self.config, self.work, self.name = binary, config, work, name
        self.health_url = f"http://127.0.0.1:{health_port}/"
        self.path = work / f"{name}.yaml"
        self.log_path = work / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> Collector:
        self.path.write_text(yaml.safe_dump(self.config, sort_keys=False, width=4096))
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(self.binary), f"--config={self.path}"], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        wait_for(lambda: self._healthy(), timeout, f"{self.name} healthy", self)
        return self

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()[-4000:]}")
        try:
            with urllib.request.urlopen(self.health_url, timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait_for(condition, timeout: float, what: str, subject: object = None, every: float = 0.2):
    """Poll condition() until it returns a true value (returned) or timeout seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() >= deadline:
            log = subject.log()[-3000:] if hasattr(subject, "log") else ""
            raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})\n{log}")
        time.sleep(every)
