"""The console's uptime objectives and per-instance CPU and memory: the API against the telemetry
sent (probes of a real loopback site by `otel-monitor probe`'s loop, health reports and process
metrics at chosen times), and the overview page in headless Chromium against the API."""

from __future__ import annotations

import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_monitor import semconv
from otel_monitor.console.cli import serve
from otel_monitor.fast.otlp_exporters import OTLPMetricExporter
from otel_monitor.launcher.probe_command import run_probes
from otel_monitor.semantics.uptime import Probe, Uptime
from tests.support.console_telemetry import CHROMIUM, chromium_page, get, resource, send_calls

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CPU_SECONDS = (2.0, 6.0)  # user CPU seconds at two points 10 s apart: 0.4 cores
MEMORY = 123_456_789  # bytes: 117.74 MiB
HEALTH = {"database": [1.0, 1.0, 0.5, 0.0], "disk": [1.0, 0.5, 1.0, 1.0]}  # degraded (0.5) still serves


class Site:
    """/ok answers 200 always; /flip answers the next status of ``flips``."""

    def __init__(self, flips: list[int]) -> None:
        self.flips = list(flips)

        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status = 200 if self.path == "/ok" else site.flips.pop(0)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _config(site: Site, closed: str) -> str:
    return f"""\
uptime:
  objective: 0.999
  probes:
    - {site.url}/ok
    - url: {site.url}/flip
      objective: 0.995
    - {closed}
  health_checks:
    database: 0.9995
"""


def _export(url: str, metrics: list[Metric], service: str = "shop") -> None:
    scope = ScopeMetrics(InstrumentationScope("uptime-browser-test"), metrics, "")
    exporter = OTLPMetricExporter(endpoint=f"{url}/v1/metrics")
    exporter.export(MetricsData([ResourceMetrics(resource(service), [scope], "")]))
    exporter.shutdown()


def _send_health_and_usage(url: str) -> None:
    """Four health reports per check, a second apart; two CPU-time points 10 s apart; memory."""
    base = time.time_ns() - 60 * 10**9
    for i in range(4):
        points = [
            NumberDataPoint({semconv.MONITOR_HEALTH_CHECK: check}, 0, base + i * 10**9, values[i])
            for check, values in HEALTH.items()
        ]
        _export(url, [Metric(semconv.METRIC_HEALTH_STATUS, "", "1", Gauge(points))])
    start = base - 100 * 10**9
    for i, seconds in enumerate(CPU_SECONDS):
        t = base + i * 10 * 10**9
        cpu = NumberDataPoint({"cpu.mode": "user"}, start, t, seconds)
        memory = NumberDataPoint({}, start, t, MEMORY)
        cumulative = AggregationTemporality.CUMULATIVE
        _export(
            url,
            [
                Metric("process.cpu.time", "", "s", Sum([cpu], cumulative, is_monotonic=True)),
                Metric("process.memory.usage", "", "By", Sum([memory], cumulative, is_monotonic=False)),
            ],
        )


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Debian's chromium: apt-get install chromium")
    site = Site([200, 200, 503, 200])
    # Bound, not listening: connections are refused, and no other process can take the port meanwhile.
    refusing = socket.socket()
    refusing.bind(("127.0.0.1", 0))
    closed = f"http://127.0.0.1:{refusing.getsockname()[1]}/"
    config = tmp_path_factory.mktemp("uptime") / "otel-monitor.yaml"
    config.write_text(_config(site, closed))
    with serve(port=0, config_path=str(config), evaluate_every=3600) as handle:
        send_calls(handle.url, "checkout", [0.1] * 5)
        _send_health_and_usage(handle.url)
        from opentelemetry.sdk.resources import Resource

        uptime = Uptime(
            interval=0.05,
            timeout=30,
            probes=(Probe(f"{site.url}/ok"), Probe(f"{site.url}/flip"), Probe(closed)),
            configured=True,
        )
        exporter = OTLPMetricExporter(endpoint=f"{handle.url}/v1/metrics")
        probe_resource = Resource.create({"service.name": "otel-monitor-probe"})
        run_probes(uptime, exporter, probe_resource, stop=threading.Event(), rounds=4, report=lambda _: None)
        exporter.shutdown()
        handle.site, handle.closed = site, closed
        yield handle
    site.server.shutdown()
    site.server.server_close()
    refusing.close()


def _rows(console) -> dict[tuple[str, str], dict]:
    return {(r["kind"], r["target"]): r for r in get(f"{console.url}/api/uptime")["objectives"]}


def test_api_uptime_of_probed_urls_matches_the_answers_given(console):
    """4 probes each: /ok always 200 (100%), /flip 200, 200, 503, 200 (75%), a closed port never answers (0%)."""
    rows = _rows(console)
    ok, flip, closed = (
        rows[("probe", u)] for u in (f"{console.site.url}/ok", f"{console.site.url}/flip", console.closed)
    )
    assert (ok["samples"], ok["down"], ok["uptime"], ok["objective"], ok["status_code"]) == (4, 0, 1.0, 0.999, 200)
    assert (flip["samples"], flip["down"], flip["uptime"], flip["objective"]) == (4, 1, 0.75, 0.995)
    assert flip["budget_left"] == pytest.approx(1 - 0.25 / 0.005)  # the budget is spent 50 times over
    assert flip["up"] is True and flip["status_code"] == 200 and flip["met"] is False
    assert (closed["uptime"], closed["up"], closed["status_code"]) == (0.0, False, 0)
    assert "refused" in closed["error"].lower()
    assert {r["service"] for (kind, _), r in rows.items() if kind == "probe"} == {"otel-monitor-probe"}


def test_api_uptime_of_health_checks_counts_degraded_as_up(console):
    """database: up, up, degraded, down (75%, objective 99.95%); disk: degraded once (100%, default 99.9%)."""
    rows = _rows(console)
    database, disk = rows[("health_check", "database")], rows[("health_check", "disk")]
    assert (database["samples"], database["down"], database["uptime"], database["objective"]) == (4, 1, 0.75, 0.9995)
    assert database["up"] is False
    assert (disk["samples"], disk["down"], disk["uptime"], disk["objective"], disk["met"]) == (4, 0, 1.0, 0.999, True)


def test_api_cpu_and_memory_per_instance(console):
    """4 CPU-seconds over 10 s is 0.4 cores; memory is the last usage reported."""
    (shop,) = [s for s in get(f"{console.url}/api/summary")["services"] if s["service"] == "shop"]
    (instance,) = shop["instances"]
    assert instance["cpu_cores"] == pytest.approx(0.4)
    assert instance["memory_bytes"] == MEMORY


def _pct(x: float) -> str:
    """The page's uptimePct: to the thousandth of a percent, trailing zeros dropped."""
    return f"{round(x * 100, 3):g}%"


def test_overview_shows_the_apis_uptime_objectives_and_usage(console):
    """Each uptime row shows the API's uptime, objective, budget and samples; the shop's instance its CPU and memory."""
    rows = get(f"{console.url}/api/uptime")["objectives"]
    with chromium_page(ARTIFACTS) as page:
        page.goto(f"{console.url}/#/overview")
        page.wait_for_selector("[data-testid='overview-uptime'] tbody tr")
        for r in rows:
            testid = f"uptime-{r['kind']}-{r['service']}-{r['method'] or ''}{r['target']}"
            row = page.locator(f"[data-testid='{testid}']")
            cells = {
                c: row.locator(f"[data-col='{c}']").inner_text() for c in ("uptime", "objective", "budget", "down")
            }
            assert cells == {
                "uptime": _pct(r["uptime"]),
                "objective": _pct(r["objective"]),
                "budget": f"{r['budget_left'] * 100:.1f}%",
                "down": f"{r['down']} / {r['samples']}",
            }, testid
        flip = page.locator(f"[data-testid='uptime-probe-otel-monitor-probe-GET{console.site.url}/flip']").inner_text()
        assert "75%" in flip and "99.5%" in flip and "-4900.0%" in flip and "HTTP 200" in flip
        liveness = page.locator("[data-testid='service-shop'] [data-testid='liveness']").inner_text()
        assert "CPU 0.40 cores, memory 117.74 MiB" in liveness
        page.screenshot(path=str(ARTIFACTS / "overview-uptime.png"), full_page=True)


def test_alerts_page_lists_uptime_alerts_with_their_runbooks(console):
    """/flip (75%, objective 99.5%), the closed port (0%) and the database check (75%, 99.95%) are below their
    objectives and burn their budgets: their uptime alerts pend, fire 5 minutes on, and the alerts page links
    each to the overview and its runbook; /ok (100%) raises none."""
    now = time.time_ns()
    console.console.alerts.evaluate(now)
    console.console.alerts.evaluate(now + 301 * 10**9)
    below = {
        s.family_id: s.threshold
        for s in console.console.alerts.rules.values()
        if s.alertname == "UptimeBelowObjective" and s.state == "firing"
    }
    assert below == {
        f"uptime:otel-monitor-probe:{console.site.url}/flip": 0.995,
        f"uptime:otel-monitor-probe:{console.closed}": 0.999,
        "uptime:shop:database": 0.9995,
    }
    firing = {a["id"]: a for a in get(f"{console.url}/api/alerts")["firing"] if a["rule"] == "uptime"}
    assert set(firing) == set(below)
    with chromium_page(ARTIFACTS) as page:
        page.goto(f"{console.url}/#/alerts")
        page.wait_for_selector("body[data-ready='alerts']")
        for alert_id, alert in firing.items():
            row = page.locator(f"[data-testid='alert-{alert_id}']")
            assert alert["summary"] in row.inner_text()
            assert row.locator("[data-testid='alert-runbook']").get_attribute("href") == (
                f"docs/runbooks/{alert['alertname']}.md"
            )
            assert row.locator("[data-testid='alert-overview']").get_attribute("href") == "#/overview"
        page.screenshot(path=str(ARTIFACTS / "alerts-uptime.png"), full_page=True)
