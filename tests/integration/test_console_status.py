"""``otel-monitor status``: one line per service, non-zero exit when one is unhealthy."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from otel_monitor.cli import main
from otel_monitor.console.cli import serve
from tests.support.console_telemetry import send_calls


@pytest.fixture
def console():
    with serve(port=0, evaluate_every=3600) as handle:
        yield handle


def test_healthy_services_exit_zero(console, capsys):
    """All operations within their SLOs: exit 0 and an OK line per service."""
    send_calls(console.url, "browse", [0.02] * 20)
    assert main(["status", "--url", console.url]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("shop") and " OK " in line and "calls=20" in line


def test_a_critical_service_exits_one_and_names_the_operation(console, capsys):
    """A success rate below the critical threshold makes status exit 1 naming the operation."""
    send_calls(console.url, "checkout", [0.02] * 5, failed=[0.02] * 5, category="database")
    assert main(["status", "--url", console.url]) == 1
    out = capsys.readouterr().out
    assert "CRITICAL" in out and "operation checkout" in out


def test_unreachable_console_exits_two(capsys):
    """No console listening: exit 2 with a message saying why."""
    assert main(["status", "--url", "http://127.0.0.1:9"]) == 2
    assert "cannot read health" in capsys.readouterr().err


class _FakePrometheus(BaseHTTPRequestHandler):
    """Answers /api/v1/query like Prometheus for the queries status makes."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        query = parse_qs(urlparse(self.path).query)["query"][0]
        result = []
        labels = {"job": "shop", "monitor_operation": "checkout"}
        if query.startswith("sum by") and "monitor_error_category" in query:
            result = [{"metric": labels, "value": [0, "3"]}]
        elif query.startswith("sum by"):
            result = [{"metric": labels, "value": [0, "100"]}]
        elif query.startswith("histogram_quantile"):
            result = [{"metric": labels, "value": [0, "0.2"]}]
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_prometheus_source_is_judged_with_the_config_thresholds(capsys):
    """With --prometheus, 97% success against the default 95%/90% thresholds is healthy (exit 0)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakePrometheus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert main(["status", "--prometheus", f"http://127.0.0.1:{server.server_port}"]) == 0
        assert main(["status", "--strict", "--prometheus", f"http://127.0.0.1:{server.server_port}"]) == 0
    finally:
        server.shutdown()
    assert "shop" in capsys.readouterr().out
