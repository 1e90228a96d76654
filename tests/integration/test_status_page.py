"""The in-app status page: figures from the exported duration histogram, protected, never traced."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, PeriodicExportingMetricReader

from otel_monitor import semconv
from otel_monitor.config.settings import resolve
from otel_monitor.health.registry import HealthRegistry
from otel_monitor.launcher.status_page import StatusTap, add_status_endpoint, status_document
from otel_monitor.pipeline import instruments as metrics
from otel_monitor.semantics.operations import excluded_url_matcher
from otel_monitor.semantics.slo import SLOs
from tests.support.stack import make_stack


class _Discard(MetricExporter):
    def __init__(self) -> None:
        super().__init__()

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


@pytest.fixture
def tapped():
    tap = StatusTap(_Discard())
    provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(tap, export_interval_millis=3_600_000)])
    histogram = metrics.create_instruments(provider, SLOs().buckets).operation_duration
    yield tap, provider, histogram
    provider.shutdown()


def _calls(histogram, operation: str, durations: list[float], outcome: str = "success", failed: bool = False) -> None:
    labels = {semconv.MONITOR_OPERATION: operation, semconv.MONITOR_OPERATION_OUTCOME: outcome}
    if failed:
        labels |= {semconv.MONITOR_ERROR_CATEGORY: "timeout", semconv.ERROR_TYPE: "TimeoutError"}
    for d in durations:
        histogram.record(d, labels)


def test_figures_come_from_the_exported_histogram(tapped):
    """90 calls of 0.1 s, 6 failures of 3 s and 4 forbidden: calls, errors, success rate, max and p50 exact."""
    tap, provider, histogram = tapped
    assert status_document(tap, SLOs())["operations"] == []  # before the first export: nothing made up
    _calls(histogram, "checkout", [0.1] * 90)
    _calls(histogram, "checkout", [3.0] * 6, "server_error", failed=True)
    _calls(histogram, "checkout", [0.01] * 4, "forbidden")
    provider.force_flush()
    (row,) = status_document(tap, SLOs())["operations"]
    assert (row["operation"], row["calls"], row["errors"], row["client_errors"]) == ("checkout", 100, 6, 4)
    assert row["success_rate"] == 0.94 and row["max"] == 3.0
    assert row["mean"] == pytest.approx((90 * 0.1 + 6 * 3.0 + 4 * 0.01) / 100)
    assert row["p50"] == pytest.approx(0.1, rel=0.15) and row["p99"] == pytest.approx(3.0, rel=0.15)


def test_a_failing_4xx_is_an_error_and_a_client_error(tapped):
    """With OTEL_MONITOR_CLIENT_ERRORS_FAIL a 404 carries error.type and its client outcome: it counts among
    errors and among client errors, as in the console."""
    tap, provider, histogram = tapped
    _calls(histogram, "lookup", [0.01] * 8)
    _calls(histogram, "lookup", [0.01] * 2, "client_error", failed=True)
    provider.force_flush()
    (row,) = status_document(tap, SLOs())["operations"]
    assert (row["calls"], row["errors"], row["client_errors"], row["success_rate"]) == (10, 2, 2, 0.8)


def test_last_interval_gives_throughput_and_alerts(tapped, monkeypatch):
    """Between two exports 10 s apart, 20 calls of which 4 failed: 2 calls/s, 80% success, a critical alert."""
    tap, provider, histogram = tapped
    clock = iter([1000.0, 1010.0])
    monkeypatch.setattr("otel_monitor.launcher.status_page.time.time", lambda: next(clock))
    _calls(histogram, "search", [0.05] * 50)
    provider.force_flush()
    _calls(histogram, "search", [0.05] * 16)
    _calls(histogram, "search", [0.05] * 4, "server_error", failed=True)
    provider.force_flush()
    document = status_document(tap, SLOs())
    (row,) = document["operations"]
    assert row["last_interval"] == {
        "seconds": 10.0,
        "calls": 20,
        "errors": 4,
        "throughput_per_s": 2.0,
        "success_rate": 0.8,
        "p95": pytest.approx(0.05, rel=0.15),
    }
    assert document["alerts"] == [
        {
            "alert": "OperationSuccessRateLow",
            "operation": "search",
            "severity": "critical",
            "value": 0.8,
            "threshold": 0.9,
        }
    ]
    assert document["status"] == "critical"


def _app(tap: StatusTap, token: str | None, health: HealthRegistry | None = None) -> FastAPI:
    app = FastAPI()
    add_status_endpoint(app, tap, "/monitoring", token=token, slos=SLOs(), health=health)
    return app


def test_protected_as_health_detailed_is(tapped):
    """With a token: no token gets the verdict only, a wrong one 401, the right one everything."""
    tap, provider, histogram = tapped
    _calls(histogram, "checkout", [0.1] * 3)
    provider.force_flush()
    with TestClient(_app(tap, "s3cret")) as client:
        assert client.get("/monitoring").json() == {"status": "ok"}
        assert client.get("/monitoring", headers={"Authorization": "Bearer nope"}).status_code == 401
        full = client.get("/monitoring", headers={"Authorization": "Bearer s3cret"}).json()
        assert full["operations"][0]["calls"] == 3
        assert client.get("/monitoring?token=s3cret").json()["operations"][0]["operation"] == "checkout"


def test_health_checks_and_their_alerts_are_shown(tapped):
    """A critical check that is down shows in health and as a critical alert."""
    tap, _, _ = tapped
    registry = HealthRegistry(interval=3600)
    registry.add(lambda: False, name="database", critical=True)
    registry.run_once()
    with TestClient(_app(tap, None, registry)) as client:
        document = client.get("/monitoring").json()
    assert document["health"]["status"] == "unhealthy"
    assert document["alerts"] == [
        {"alert": "HealthCheckFailing", "check": "database", "severity": "critical", "value": "down"}
    ]


def test_the_page_is_never_traced(otlp_sink):
    """The status path joins the excluded URLs: serving it leaves no span and no operation point."""
    settings = resolve({"status_path": "/monitoring"}, environ={})
    assert "/monitoring" in settings.excluded_urls
    stack = make_stack(otlp_sink, status_path="/monitoring")
    excluded = excluded_url_matcher(settings.excluded_urls)
    try:
        app = FastAPI(
            telemetry={
                "tracer_provider": stack.tracer_provider,
                "meter_provider": stack.meter_provider,
                "logger_provider": stack.logger_provider,
                "auto_configure": False,
                "exclude": lambda scope: excluded(scope.get("path", "")),
            }
        )

        @app.get("/ping")
        def ping() -> dict[str, bool]:
            return {"ok": True}

        add_status_endpoint(app, StatusTap(_Discard()), "/monitoring")
        with TestClient(app) as client:
            assert client.get("/monitoring").status_code == 200
            assert client.get("/ping").status_code == 200
        stack.flush()
        assert otlp_sink.wait_for(lambda s: any(span["name"] == "GET /ping" for span in s.spans))
        operations = {
            dict(p.attributes)[semconv.MONITOR_OPERATION] for p in stack.points(semconv.METRIC_OPERATION_DURATION)
        }
    finally:
        stack.close()
    assert operations == {"GET /ping"}
    assert not [s for s in otlp_sink.spans if "monitoring" in s["name"]]


def test_a_bad_path_is_refused_with_the_variable_named():
    """OTEL_MONITOR_STATUS_PATH must be a URL path; a bad one is reported and the page stays off."""
    settings = resolve(environ={"OTEL_MONITOR_STATUS_PATH": "monitoring now"})
    assert settings.status_path is None
    assert any("OTEL_MONITOR_STATUS_PATH" in p for p in settings.problems)
