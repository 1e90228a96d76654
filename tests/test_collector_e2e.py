"""End to end, as processes on loopback: the example shop and its payment provider under
opentelemetry-instrument send OTLP to the project's collector running a shipped config, and a real
Prometheus (Debian's 2.42) scrapes the collector's prometheus exporter and evaluates the generated rules.

Prometheus 2.42 rather than 3.x: it is the Debian package CI already installs (promtool comes with it),
nothing to build; and it takes metrics the way the shipped stack does, by scraping the collector's
`prometheus` exporter (the compose file runs 2.55, the same scrape and rule semantics).
"""

from __future__ import annotations

import signal
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from examples.traffic import TrafficReport, run_traffic

from .e2e_stack import PROMETHEUS, Prometheus
from .launch import LaunchedApp, launched
from .otelcol import SINGLE, Collector, free_port, local_config, wait_for

pytestmark = pytest.mark.slow

CONFIG_FILE = Path(__file__).resolve().parents[1] / "examples" / "shop" / "otel-monitor.yaml"
JOB = "shop/shop"  # service.namespace/service.name, as the compose stack sets them
# What the traffic generator calls each endpoint, and the operation the shop's config names it.
OPERATION_OF = {
    "POST /api/signup": "signup",
    "POST /api/login": "login",
    "GET /api/products": "catalog_browse",
    "GET /api/products/{id}": "product_view",
    "GET /api/cart": "cart_view",
    "POST /api/cart/items": "cart_add",
    "DELETE /api/cart/items/{id}": "cart_remove",
    "POST /api/checkout": "checkout",
    "GET /api/orders": "order_history",
    "GET /ping": "GET /ping",
}


def stop_flushing(app: LaunchedApp) -> str:
    """SIGINT and wait, so the SDK's exit flush sends the last metrics (uvicorn re-raises SIGTERM before it)."""
    app.process.send_signal(signal.SIGINT)
    app.process.wait(30)
    return app.stop()


@dataclass
class SingleRun:
    prometheus: Prometheus
    collector: Collector
    report: TrafficReport
    expected: Counter[str]


@pytest.fixture(scope="module")
def single_run(otelcol, tmp_path_factory):
    """The single-machine collector (collector/otelcol-config.yaml) and Prometheus; seeded shop traffic."""
    if PROMETHEUS is None:
        pytest.skip("prometheus not found: apt-get install prometheus")
    work = tmp_path_factory.mktemp("single")
    config, ports = local_config(SINGLE, work)
    # No trace or log backend in this run: their exporters queue on disk and retry.
    config["exporters"]["otlp_grpc/jaeger"]["endpoint"] = f"127.0.0.1:{free_port()}"
    config["exporters"]["otlp_http/victorialogs"]["endpoint"] = f"http://127.0.0.1:{free_port()}/insert/opentelemetry"
    collector = Collector(otelcol, config, work, "collector", ports[13133]).start()
    prometheus = Prometheus(work, {"collector:8889": f"127.0.0.1:{ports[8889]}",
                                   "collector:8888": f"127.0.0.1:{ports[8888]}"}).start()
    try:
        common = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports[4318]}", "OTEL_BSP_SCHEDULE_DELAY": "200",
                  "OTEL_METRIC_EXPORT_INTERVAL": "1000", "OTEL_MONITOR_CONFIG": str(CONFIG_FILE),
                  "OTEL_RESOURCE_ATTRIBUTES": "service.namespace=shop,deployment.environment.name=e2e",
                  "OTEL_MONITOR_HEALTH_INTERVAL": "1"}
        with launched("examples.payments.app:app", {**common, "OTEL_SERVICE_NAME": "payments",
                                                     "PAYMENTS_DELAY_MS": "0"}) as payments:
            shop_env = {**common, "OTEL_SERVICE_NAME": "shop", "DATABASE_URL": f"sqlite:///{work / 'shop.db'}",
                        "SHOP_PAYMENTS_PRIMARY_URL": f"{payments.base_url}/primary",
                        "SHOP_PAYMENTS_FALLBACK_URL": f"{payments.base_url}/fallback",
                        "SHOP_PASSWORD_ITERATIONS": "1000", "OTEL_MONITOR_USER_ID_KEY": "test-key"}
            with launched("examples.shop.app:app", shop_env) as shop:
                report = run_traffic(shop.base_url, requests=1500, duration=120, concurrency=4, seed=20261206)
                output = stop_flushing(shop)
            stop_flushing(payments)
        assert sum(report.transport_errors.values()) <= report.by_status[500], f"{report.summary()}\n{output[-3000:]}"
        unknown = set(report.by_endpoint) - set(OPERATION_OF)
        assert not unknown, f"the traffic called endpoints this test does not map: {unknown}"
        expected = Counter({OPERATION_OF[e]: n for e, n in report.answered_by_endpoint.items()})
        yield SingleRun(prometheus, collector, report, expected)
    finally:
        prometheus.stop()
        collector.stop()


def _calls(prometheus: Prometheus, selector: str = "") -> dict[str, float]:
    return prometheus.vector(
        f'sum by (monitor_operation) (monitor_operation_duration_seconds_count{{job="{JOB}"{selector}}})',
        "monitor_operation")


def test_request_counts_in_prometheus_equal_the_requests_sent(single_run: SingleRun) -> None:
    """Per operation, Prometheus holds exactly as many calls as requests the shop answered."""
    expected = {op: float(n) for op, n in single_run.expected.items()}

    def settled():
        calls = _calls(single_run.prometheus)
        return calls if {op: calls.get(op) for op in expected} == expected else None

    calls = wait_for(settled, 60, f"Prometheus calls per operation == {expected}", single_run.collector)
    assert set(calls) - set(expected) <= {"catalog_load", "payment_authorize"}


def test_success_rate_in_prometheus_counts_the_server_errors_sent(single_run: SingleRun) -> None:
    """The shop's failed calls (error_type set) are exactly its 500 answers; 4xx answers are successes."""
    crashes = single_run.report.by_status[500]
    assert crashes > 0, "the seeded traffic should have hit the LEGACY2019 bug"

    def errors():
        calls = _calls(single_run.prometheus, ', error_type!=""')
        return sum(v for op, v in calls.items() if op in single_run.expected)

    try:
        wait_for(lambda: errors() == crashes, 30, f"{crashes} failed calls in Prometheus")
    except AssertionError as exc:
        failed = _calls(single_run.prometheus, ', error_type!=""')
        raise AssertionError(f"{exc}: {failed}\n{single_run.report.summary()}") from None
    checkout = f'monitor_operation="checkout", job="{JOB}"'
    (rate,) = single_run.prometheus.vector(
        f'sum(monitor_operation_duration_seconds_count{{{checkout}, error_type=""}})'
        f' / sum(monitor_operation_duration_seconds_count{{{checkout}}})', "").values()
    answered = single_run.expected["checkout"]
    assert rate == pytest.approx(1 - crashes / answered)
