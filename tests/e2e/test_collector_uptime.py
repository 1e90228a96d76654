"""Uptime end to end: `otel-monitor probe`'s loop probes a loopback site and sends to the single-machine
collector; Prometheus, with the generated rules, records each URL's state from httpcheck.status."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.sdk.resources import Resource

from otel_monitor.fast.otlp_exporters import OTLPMetricExporter
from otel_monitor.launcher.probe_command import run_probes
from otel_monitor.semantics.uptime import Probe, Uptime
from tests.support.e2e_stack import PROMETHEUS, Prometheus
from tests.support.otelcol import SINGLE, Collector, free_port, local_config, wait_for

pytestmark = pytest.mark.slow


class Site:
    """/flip answers ``status``; the test changes it."""

    def __init__(self) -> None:
        self.status = 200
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(site.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/flip"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def stack(otelcol, tmp_path_factory):
    if PROMETHEUS is None:
        pytest.skip("prometheus not found: apt-get install prometheus")
    work = tmp_path_factory.mktemp("uptime")
    config, ports = local_config(SINGLE, work / "collector")
    config["exporters"]["otlp_grpc/jaeger"]["endpoint"] = f"127.0.0.1:{free_port()}"
    config["exporters"]["otlp_http/victorialogs"]["endpoint"] = f"http://127.0.0.1:{free_port()}"
    collector = Collector(otelcol, config, work, "single", ports[13133]).start()
    prometheus = Prometheus(work, {"collector:8889": f"127.0.0.1:{ports[8889]}"})
    site = Site()
    try:
        prometheus.start()
        yield site, prometheus, f"http://127.0.0.1:{ports[4318]}"
    finally:
        prometheus.stop()
        collector.stop()
        site.server.shutdown()
        site.server.server_close()


def _probe(site: Site, endpoint: str, rounds: int) -> None:
    uptime = Uptime(interval=0.2, timeout=30, probes=(Probe(site.url),), configured=True)
    exporter = OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics")
    resource = Resource.create({"service.name": "otel-monitor-probe"})
    run_probes(uptime, exporter, resource, stop=threading.Event(), rounds=rounds, report=lambda _: None)
    exporter.shutdown()


def test_a_failing_url_is_down_at_once_and_up_again_after(stack):
    """200, then 503, then 200: monitor:probe_up follows each change within a scrape or two, with one
    httpcheck_status series per status class (the collector drops http.status_code)."""
    site, prometheus, endpoint = stack
    selector = f'{{http_url="{site.url}", job="otel-monitor-probe"}}'

    def probe_up() -> float | None:
        result = prometheus.query(f"monitor:probe_up{selector}")
        return float(result[0]["value"][1]) if result else None

    _probe(site, endpoint, 3)
    assert wait_for(lambda: probe_up() == 1.0, 30, "probe up") is True
    site.status = 503
    _probe(site, endpoint, 3)
    assert wait_for(lambda: probe_up() == 0.0, 30, "probe down") is True
    series = prometheus.query(f"httpcheck_status{selector}")
    assert sorted(s["metric"]["http_status_class"] for s in series) == ["1xx", "2xx", "3xx", "4xx", "5xx"]
    assert not any("http_status_code" in s["metric"] for s in series)
    site.status = 200
    _probe(site, endpoint, 3)
    assert wait_for(lambda: probe_up() == 1.0, 30, "probe up again") is True
    duration = prometheus.query(f"httpcheck_duration_milliseconds{selector}")
    assert duration and float(duration[0]["value"][1]) >= 0


def test_uptime_rules_evaluate_on_the_probe_series(stack):
    """The uptime group's rules are healthy in Prometheus and the 5-minute uptime is between 0 and 1."""
    site, prometheus, _ = stack
    uptime = wait_for(
        lambda: prometheus.query(f'monitor:probe_uptime:ratio_5m{{http_url="{site.url}"}}'), 30, "uptime recorded"
    )
    assert 0 < float(uptime[0]["value"][1]) < 1  # up, then down, then up within 5 minutes
    groups = prometheus.get("/api/v1/rules")["data"]["groups"]
    (group,) = [g for g in groups if g["name"] == "otel-monitor.uptime"]
    assert {r["health"] for r in group["rules"]} == {"ok"}
