"""Client errors and auth failures: counted apart from failures, shown by the console, routed as info."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from opentelemetry.trace import SpanKind

from otel_monitor import semconv
from otel_monitor.console.cli import serve

from .collector_queries import DASHBOARDS, load_dashboard
from .console_telemetry import CONFIG, get, meter, tracer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def console(tmp_path):
    path = tmp_path / "otel-monitor.yaml"
    path.write_text(CONFIG)
    with serve(port=0, config_path=str(path), evaluate_every=3600) as handle:
        yield handle


def _row(handle, operation: str, service: str = "shop") -> dict:
    rows = get(f"{handle.url}/api/operations?service={service}")["operations"]
    return next(r for r in rows if r["operation"] == operation)


def test_console_counts_outcomes_from_the_duration_metric(console):
    """10 successes, 3 forbidden, 2 unauthenticated, 1 rejected, 1 server error: 6 client errors, 5 auth failures."""
    with meter(console.url) as (m, provider):
        hist = m.create_histogram(semconv.METRIC_OPERATION_DURATION, unit="s")
        for outcome, n in (("success", 10), ("forbidden", 3), ("unauthenticated", 2), ("rejected", 1)):
            for _ in range(n):
                hist.record(0.01, {semconv.MONITOR_OPERATION: "login", semconv.MONITOR_OPERATION_OUTCOME: outcome})
        hist.record(0.01, {semconv.MONITOR_OPERATION: "login", semconv.MONITOR_OPERATION_OUTCOME: "server_error",
                           semconv.MONITOR_ERROR_CATEGORY: "bug", semconv.ERROR_TYPE: "KeyError"})
        provider.force_flush()
    row = _row(console, "login")
    assert (row["calls"], row["errors"], row["client_errors"], row["auth_failures"]) == (17, 1, 6, 5)
    assert row["client_error_rate"] == pytest.approx(6 / 17, abs=1e-6)
    assert row["success_rate"] == pytest.approx(16 / 17, abs=1e-6)  # client errors are no failures
    assert row["outcomes"] == {"forbidden": 3, "unauthenticated": 2, "rejected": 1, "server_error": 1}
    (service,) = get(f"{console.url}/api/summary?service=shop")["services"]
    assert (service["client_errors"], service["auth_failures"]) == (6, 5)


def test_console_tells_a_plain_sdks_403_spans_apart(console):
    """Three 403 SERVER spans of an app without otel-monitor: three forbidden calls, no failure."""
    with tracer(console.url, service="legacy") as t:
        for _ in range(3):
            with t.start_as_current_span("GET /admin", kind=SpanKind.SERVER, attributes={
                    semconv.HTTP_REQUEST_METHOD: "GET", semconv.HTTP_ROUTE: "/admin",
                    semconv.HTTP_RESPONSE_STATUS_CODE: 403}):
                pass
    row = _row(console, "GET /admin", service="legacy")
    assert (row["calls"], row["errors"], row["client_errors"], row["auth_failures"]) == (3, 0, 3, 3)
    assert row["outcomes"] == {"forbidden": 3}


def test_info_alerts_notify_without_a_ticket_or_a_page():
    """severity=info routes to a Slack-only receiver; a warning or critical alert inhibits its info twin."""
    config = yaml.safe_load((ROOT / "collector" / "alertmanager" / "alertmanager.yml").read_text())
    routes = {tuple(r["matchers"]): r["receiver"] for r in config["route"]["routes"]}
    receiver = {r["name"]: r for r in config["receivers"]}[routes[('severity="info"',)]]
    assert set(receiver) == {"name", "slack_configs"}
    assert any(i["target_matchers"] == ['severity="info"'] for i in config["inhibit_rules"])


def test_generated_rules_include_an_info_level():
    """The generated rules use all three alert levels."""
    rules = yaml.safe_load((ROOT / "collector" / "prometheus" / "rules" / "otel-monitor.rules.yaml").read_text())
    levels = {r["labels"]["severity"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert levels == {"critical", "warning", "info"}


def test_dashboards_chart_client_errors_from_the_generated_rules():
    """The operations dashboard charts the client-error ratio and auth failures the rules record; errors by outcome."""
    rules = yaml.safe_load((ROOT / "collector" / "prometheus" / "rules" / "otel-monitor.rules.yaml").read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    queries = {p.name: [t["expr"] for panel in load_dashboard(p)["panels"] for t in panel.get("targets", [])
                        if "expr" in t] for p in DASHBOARDS}
    for name in ("monitor:operation_client_error_ratio:rate5m", "monitor:operation_auth_failures:rate5m"):
        assert name in recorded
        assert any(q.startswith(name + "{") for q in queries["operations.json"]), name
    assert any("monitor_operation_outcome" in q for q in queries["errors.json"])
