"""An app under ``opentelemetry-instrument`` reports to the console with nothing but the endpoint set."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from otel_monitor.console.cli import serve
from tests.support.console_telemetry import get

pytestmark = pytest.mark.slow

APP = """
from fastapi import FastAPI

app = FastAPI()


@app.get("/items/{item_id}")
def item(item_id: int):
    return {"id": item_id}


@app.get("/fail")
def fail():
    raise RuntimeError("inventory service is down")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_launched_app_spans_reach_the_console(tmp_path: Path):
    """Requests to a launched FastAPI app show up as traces, failed traces and an error group."""
    (tmp_path / "launched_app.py").write_text(APP)
    bin_dir = Path(sys.executable).parent
    port = _free_port()
    with serve(port=0, evaluate_every=3600) as console:
        env = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": console.url,
            "OTEL_SERVICE_NAME": "launched",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "PYTHONPATH": str(tmp_path),
        }
        env.pop("OTEL_MONITOR_RAISE_INTERNAL_ERRORS", None)
        app = subprocess.Popen(
            [
                str(bin_dir / "opentelemetry-instrument"),
                str(bin_dir / "uvicorn"),
                "launched_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if _call(f"http://127.0.0.1:{port}/items/0") == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline and app.poll() is None, "the launched app did not start"
                time.sleep(0.2)
            statuses = [_call(f"http://127.0.0.1:{port}/items/{i}") for i in range(1, 6)]
            statuses += [_call(f"http://127.0.0.1:{port}/fail") for _ in range(2)]
            assert statuses == [200] * 5 + [500] * 2
        finally:
            app.send_signal(signal.SIGINT)  # uvicorn shuts down; the SDK flushes at exit
            output = app.communicate(timeout=30)[0].decode(errors="replace")
        traces = get(f"{console.url}/api/traces?service=launched")["traces"]
        item_traces = [t for t in traces if t["name"].startswith("GET /items/{item_id}")]
        assert len(item_traces) == 6, output[-2000:]  # the readiness probe and five calls
        failed = get(f"{console.url}/api/traces?service=launched&kind=failed")["traces"]
        assert len(failed) == 2 and all(t["name"].startswith("GET /fail") for t in failed)
        groups = get(f"{console.url}/api/errors?service=launched")["errors"]
        assert sum(g["count"] for g in groups) >= 2
