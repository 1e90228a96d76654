"""The README's quickstart, run as a user runs it: a fresh venv, an app of their own outside the repository."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.launch import ROOT, free_port

# Creating a venv and installing into it takes minutes on a busy machine, more than the suite's default limit.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# An app of the user's own, with a route that raises: nothing in it knows about otel-monitor.
MYAPP = """
from fastapi import FastAPI

app = FastAPI()


@app.get("/an-endpoint-that-raises")
def an_endpoint_that_raises():
    raise RuntimeError("the warehouse service is down")
"""


def quickstart_commands() -> list[str]:
    """The shell lines of the README's quickstart block, comments dropped."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Quickstart on your own app", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [
        line.split("  #", 1)[0].strip()
        for line in block.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _source_copy(target: Path) -> Path:
    """What a release would ship: the package and its metadata, without the checkout's build output."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    shutil.copytree(
        ROOT / "otel_monitor", target / "otel_monitor", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    return target


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.load(reply)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _poll(what: str, check: Callable[[], Any], processes: list[subprocess.Popen[bytes]], seconds: float) -> Any:
    """``check()`` until it returns something true, for at most ``seconds``; fails early if a process exits."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = check()
            if result:
                return result
        except OSError:
            pass
        for process in processes:
            assert process.poll() is None, f"{what}: {process.args} exited with {process.returncode}"
        assert time.monotonic() < deadline, f"{what}: not within {seconds:g} s"
        time.sleep(0.25)


@contextmanager
def _running(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_the_readme_quickstart_shows_a_failed_request_and_its_exception(tmp_path: Path):
    """pip install with the README's extras, console, app under the launcher, one failing request: both show."""
    commands = quickstart_commands()
    install, console_line, launch, curl = commands
    extras = re.fullmatch(r'pip install "otel-monitor\[([a-z,]+)\]"', install)
    assert extras, install
    assert console_line == "otel-monitor console &"
    assert launch == "opentelemetry-instrument --service_name myapp uvicorn myapp:app"
    assert curl.startswith("curl http://127.0.0.1:8000/an-endpoint-that-raises")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    bin_dir = venv / "bin"
    source = _source_copy(tmp_path / "otel-monitor")
    # The pip cache is kept (no --no-cache-dir): the packages come from it when it has them.
    done = subprocess.run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"{source}[{extras.group(1)}]",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    # The user's app lives in a folder of its own, away from the repository and its packages.
    project = tmp_path / "myproject"
    project.mkdir()
    (project / "myapp.py").write_text(MYAPP)
    # The user's shell: no variable of ours or the test suite's, the venv's commands first on PATH.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    console_port, app_port = free_port(), free_port()
    console_url = f"http://127.0.0.1:{console_port}"
    # The quickstart's commands; only the ports differ (and the console's gRPC port, which is off here).
    console_command = [str(bin_dir / "otel-monitor"), "console", "--port", str(console_port), "--grpc-port", "0"]
    app_command = [
        str(bin_dir / "opentelemetry-instrument"),
        "--service_name",
        "myapp",
        "--exporter_otlp_endpoint",
        console_url,
        "uvicorn",
        "myapp:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(app_port),
    ]
    with _running(console_command, env, project, tmp_path / "console.log") as console:
        _poll("the console serves its API", lambda: _get_json(f"{console_url}/api/services") is not None, [console], 60)
        with _running(app_command, env, project, tmp_path / "app.log") as app:
            url = f"http://127.0.0.1:{app_port}/an-endpoint-that-raises"
            assert _poll("the app answers", lambda: _status(url), [app], 60) == 500

            def failed_operation() -> Any:
                return [
                    op
                    for op in _get_json(f"{console_url}/api/operations?service=myapp")["operations"]
                    if op.get("errors")
                ]

            def error_group() -> Any:
                # The group shows once the span is in; its message and traceback come with the log record.
                return [
                    group
                    for group in _get_json(f"{console_url}/api/errors?service=myapp")["errors"]
                    if group["error_type"] == "RuntimeError" and group["app_frames"]
                ]

            try:
                operations = _poll("the failed request under operations", failed_operation, [app, console], 60)
                errors = _poll("the exception under errors", error_group, [app, console], 60)
            except AssertionError:
                logs = "".join(
                    f"\n--- {name}\n{(tmp_path / name).read_text()[-3000:]}" for name in ("console.log", "app.log")
                )
                raise AssertionError(logs) from None
    assert [op["operation"] for op in operations] == ["GET /an-endpoint-that-raises"], operations
    (group,) = errors
    assert group["message"] == "the warehouse service is down", group
    (frame,) = group["app_frames"]  # the app's own frame; FastAPI's, Starlette's and anyio's are left out
    assert (Path(frame["file"]).name, frame["function"]) == ("myapp.py", "an_endpoint_that_raises"), group
