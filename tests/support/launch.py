"""Start an app as a user would: a subprocess under ``opentelemetry-instrument``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET a URL; return (status, body) for any HTTP status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until_serving(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app exited with {process.returncode}")
        try:
            get(url, timeout=1.0)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


class LaunchedApp:
    def __init__(self, process: subprocess.Popen[bytes], base_url: str) -> None:
        self.process = process
        self.base_url = base_url
        self.output = ""
        # Drain the app's output as it comes: a full pipe would block the app itself.
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in iter(self.process.stdout.readline, b""):
            self._chunks.append(line)

    def output_so_far(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")

    def get(self, path: str) -> tuple[int, bytes]:
        return get(self.base_url + path)

    def stop(self, timeout: float = 20.0) -> str:
        """SIGTERM the app and return everything it printed."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)
        self.output = self.output_so_far()
        return self.output


@contextmanager
def launched(
    app: str,
    env: Mapping[str, str],
    *,
    launcher: bool = True,
    extra_args: tuple[str, ...] = (),
    health_path: str = "/health",
    server: str = "uvicorn",
    port: int | None = None,
) -> Iterator[LaunchedApp]:
    """Run ``uvicorn app`` or ``gunicorn app`` (under ``opentelemetry-instrument`` unless launcher=False),
    on ``port`` if given (an app started again where its callers expect it), else a free one."""
    port = port or free_port()
    if server == "gunicorn":
        command = [str(BIN / "gunicorn"), app, "--bind", f"127.0.0.1:{port}", *extra_args]
    else:
        command = [str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port), *extra_args]
    if launcher:
        command = [str(BIN / "opentelemetry-instrument"), *command]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    process = subprocess.Popen(command, env=full_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    app_handle = LaunchedApp(process, f"http://127.0.0.1:{port}")
    try:
        try:
            wait_until_serving(app_handle.base_url + health_path, process)
        except RuntimeError as exc:
            app_handle.stop()
            raise RuntimeError(f"{exc}:\n{app_handle.output[-4000:]}") from None
        yield app_handle
    finally:
        app_handle.stop()
