"""Starting and stopping the processes a benchmark needs: OTLP sink and app server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(command: list[str], cpu: int | None) -> list[str]:
    """Prefix `taskset -c cpu` when there is a core to pin to and taskset exists."""
    if cpu is None or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", str(cpu), *command]


def clean_environment(extra: dict[str, str]) -> dict[str, str]:
    """The parent's environment without any OTEL_* setting, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env.update(extra)
    return env


def rss_kib(pid: int) -> int | None:
    """Resident set size of `pid` from /proc, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class SinkProcess:
    """`python -m benchmarks.sink` in its own process; its counts over HTTP."""

    def __init__(
        self, python: str, count_series: bool = False, cpu: int | None = None, count_records: bool = False
    ) -> None:
        self.python = python
        self.count_series = count_series
        self.count_records = count_records
        self.cpu = cpu
        self.port = 0
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> SinkProcess:
        command = [self.python, "-m", "benchmarks.sink", "--port", "0"]
        if self.count_series:
            command.append("--count-series")
        if self.count_records:
            command.append("--count-records")
        self._process = subprocess.Popen(
            pinned(command, self.cpu), cwd=ROOT, stdout=subprocess.PIPE, text=True, env=clean_environment({})
        )
        assert self._process.stdout is not None
        first = self._process.stdout.readline()
        if not first:
            raise RuntimeError(f"the OTLP sink did not start: {' '.join(command)}")
        self.port = int(json.loads(first)["port"])
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.endpoint + "/stats", timeout=10) as reply:
            return dict(json.load(reply))

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.communicate()

    def __enter__(self) -> SinkProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AppServer:
    """One uvicorn worker (possibly under a launcher), pinned to a core.

    `taskset` and `opentelemetry-instrument` both exec their command, so the
    pid we hold is the server's own: RSS sampling and py-spy see the app.
    """

    def __init__(self, command: list[str], env: dict[str, str], port: int, cpu: int | None, log_path: Path) -> None:
        self.command = pinned(command, cpu)
        self.env = env
        self.port = port
        self.log_path = log_path
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str, timeout: float = 60.0) -> AppServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        self._process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.stop()
                raise RuntimeError(
                    f"server exited with {self._process.returncode}: {' '.join(self.command)}\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.base_url + ready_path, timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready on {self.base_url}{ready_path} after {timeout:.0f}s\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (uvicorn shuts down; the SDK flushes at exit), SIGKILL if it hangs."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._log is not None:
            self._log.close()
        return self._process.returncode

    def __enter__(self) -> AppServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
