"""`make demo` runs the shop and payments under opentelemetry-instrument and their telemetry arrives over OTLP."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from otel_monitor import semconv
from otel_monitor.testing import OTLPSink

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_demo_serves_traffic_and_exports_linked_traces(otlp_sink: OTLPSink) -> None:
    """A short demo run exits 0, prints the URLs, reports the health checks, and both services export one distributed trace."""
    shop_port, payments_port = free_port(), free_port()
    env = {**os.environ, **otlp_sink.env()}
    command = [
        sys.executable, "-m", "examples.demo", "--duration", "4", "--rate", "25", "--seed", "4", "--no-console", "--exit",
        "--shop-port", str(shop_port), "--payments-port", str(payments_port),
    ]  # fmt: skip
    finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert f"http://127.0.0.1:{shop_port}/docs" in finished.stdout
    assert f"telemetry: OTLP to {otlp_sink.endpoint}" in finished.stdout

    def service_of(span: dict) -> str:
        return span["resource"].get(semconv.SERVICE_NAME, "")

    # The shop's own checks (in code) and the config file's shared disk check, each reported once.
    shop_checks = health_checks_of(otlp_sink, "shop")
    assert sorted(shop_checks) == ["database", "disk", "payments"]
    # Up, or degraded when a busy machine makes a check slow: never down.
    changes = [r.get("attributes") for r in otlp_sink.logs if "health" in str(r.get("attributes", {}))]
    assert shop_checks["database"] >= 0.5 and shop_checks["payments"] >= 0.5, (changes, finished.stderr[-3000:])
    assert sorted(health_checks_of(otlp_sink, "payments")) == ["disk"]

    shop_routes = {s["attributes"].get(semconv.HTTP_ROUTE) for s in otlp_sink.spans if service_of(s) == "shop"}
    assert {"/api/products", "/api/products/{product_id}"} <= shop_routes
    payment_traces = {s["trace_id"] for s in otlp_sink.spans if service_of(s) == "payments"}
    checkout_traces = {
        s["trace_id"] for s in otlp_sink.spans if s["attributes"].get(semconv.HTTP_ROUTE) == "/api/checkout"
    }
    assert payment_traces & checkout_traces, "a checkout's payment call should continue the checkout's trace"
    # The config file's uptime: URLs were probed beside the shop (they name port 8000, not this run's).
    probed = {p["attributes"]["http.url"] for p in otlp_sink.metric_points("httpcheck.status")}
    assert probed == {"http://localhost:8000/ping", "http://localhost:8000/api/products"}, finished.stdout


def health_checks_of(sink: OTLPSink, service: str) -> dict[str, float]:
    return {
        p["attributes"][semconv.MONITOR_HEALTH_CHECK]: p["value"]
        for p in sink.metrics
        if p["name"] == semconv.METRIC_HEALTH_STATUS and p["resource"].get(semconv.SERVICE_NAME) == service
    }


def test_demo_starts_the_console_and_it_shows_the_shop() -> None:
    """With the console, the demo prints its URL and, while traffic runs, the console lists the shop's
    operations, its health checks and the purchase funnel."""
    import time

    from tests.support.console_telemetry import get

    shop_port, payments_port, console_port = free_port(), free_port(), free_port()
    command = [
        sys.executable, "-m", "examples.demo", "--duration", "12", "--rate", "25", "--seed", "5", "--exit",
        "--shop-port", str(shop_port), "--payments-port", str(payments_port), "--console-port", str(console_port),
    ]  # fmt: skip
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_EXPORTER_OTLP")}
    demo = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    console = f"http://127.0.0.1:{console_port}"
    seen: dict[str, object] = {}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and demo.poll() is None and len(seen) < 3:
            try:
                operations = {r["operation"] for r in get(f"{console}/api/operations?service=shop")["operations"]}
                checks = {c["check"]: c["state"] for c in get(f"{console}/api/health?service=shop")["checks"]}
                funnel = next(f for f in get(f"{console}/api/funnels")["funnels"] if f["journey"] == "purchase")
            except OSError:
                time.sleep(0.5)
                continue
            if {"catalog_browse", "product_view"} <= operations:
                seen["operations"] = operations
            if {"database", "payments"} <= set(checks):
                seen["health"] = checks
            if funnel["steps"][0]["users"] > 0:
                seen["funnel"] = funnel
            time.sleep(0.5)
        stdout, stderr = demo.communicate(timeout=90)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0, stderr
    assert f"console:   {console}/" in stdout
    assert set(seen) == {"operations", "health", "funnel"}, seen
    assert seen["health"]["database"] == "up"  # type: ignore[index]
    # The generator's own figures beside the console's: the same calls, the same rate over the same minute.
    rows = re.findall(r"^  (\S+ \S+)\s+\S+\s+(\d+) / (\d+)\s+([\d.]+) / ([\d.]+)\s+[\d.]+ / [\d.]+", stdout, re.M)
    assert rows, stdout
    for endpoint, sent, counted, own_rate, console_rate in rows:
        assert sent == counted, (endpoint, sent, counted)
        assert abs(float(console_rate) - float(own_rate)) <= 0.05 * float(own_rate), (endpoint, own_rate, console_rate)
