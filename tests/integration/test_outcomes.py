"""Client errors and auth failures: counted apart from failures, shown by the console, routed as info."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from opentelemetry.trace import SpanKind

from otel_monitor import semconv
from otel_monitor.console.cli import serve
from tests.support.collector_queries import DASHBOARDS, load_dashboard
from tests.support.console_telemetry import CONFIG, get, meter, tracer

ROOT = Path(__file__).resolve().parents[2]


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
        hist.record(
            0.01,
            {
                semconv.MONITOR_OPERATION: "login",
                semconv.MONITOR_OPERATION_OUTCOME: "server_error",
                semconv.MONITOR_ERROR_CATEGORY: "bug",
                semconv.ERROR_TYPE: "KeyError",
            },
        )
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
            with t.start_as_current_span(
                "GET /admin",
                kind=SpanKind.SERVER,
                attributes={
                    semconv.HTTP_REQUEST_METHOD: "GET",
                    semconv.HTTP_ROUTE: "/admin",
                    semconv.HTTP_RESPONSE_STATUS_CODE: 403,
                },
            ):
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
    queries = {
        p.name: [t["expr"] for panel in load_dashboard(p)["panels"] for t in panel.get("targets", []) if "expr" in t]
        for p in DASHBOARDS
    }
    for name in ("monitor:operation_client_error_ratio:rate5m", "monitor:operation_auth_failures:rate5m"):
        assert name in recorded
        assert any(q.startswith(name + "{") for q in queries["operations.json"]), name
    assert any("monitor_operation_outcome" in q for q in queries["errors.json"])


def test_console_shows_cpu_and_memory_per_instance():
    """CPU seconds growing by 3 s (user) and 1 s (system) over 10 s is 0.4 cores busy; memory is the last value."""
    from otel_monitor.console.aggregates import Queries
    from otel_monitor.console.store import Store

    store = Store()
    t0 = time.time_ns() - 20 * 10**9
    resource = {semconv.SERVICE_NAME: "shop", semconv.SERVICE_INSTANCE_ID: "w-1"}

    def point(name: str, t: int, value: float, **attrs: str) -> dict:
        return {
            "name": name,
            "resource": resource,
            "time_unix_nano": t,
            "start_time_unix_nano": t0 - 10**9,
            "type": "sum",
            "value": value,
            "attributes": attrs,
            "temporality": 2,
            "unit": "s",
            "monotonic": True,
        }

    for t, user, system, memory in ((t0, 10.0, 5.0, 200_000_000), (t0 + 10 * 10**9, 13.0, 6.0, 210_000_000)):
        store.add_metric_points(
            [
                point("process.cpu.time", t, user, type="user"),
                point("process.cpu.time", t, system, type="system"),
                point("process.memory.usage", t, memory),
            ]
        )
    (instance,) = Queries(store).instances("shop")
    assert (instance["cpu_cores"], instance["memory_bytes"]) == (0.4, 210_000_000)


def test_an_acknowledgement_records_who(console):
    """POST .../ack with {"by": ...} keeps who acknowledged; an over-long name is refused with a 400."""
    import json
    import urllib.error
    import urllib.request

    from tests.support.console_telemetry import send_calls

    send_calls(console.url, "checkout", [0.1] * 6, failed=[0.1] * 4)
    assert get(f"{console.url}/api/alerts")["pending"]  # evaluated now: pending
    console.console.alerts.evaluate(time.time_ns() + 181 * 10**9)  # its for (3m) later: firing
    url = f"{console.url}/api/alerts/error_rate:shop:checkout/ack"

    def post(body: dict) -> int:
        request = urllib.request.Request(
            url, method="POST", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            return urllib.request.urlopen(request).status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert post({"by": "x" * 101}) == 400
    assert not {a["id"]: a for a in get(f"{console.url}/api/alerts")["firing"]}["error_rate:shop:checkout"][
        "acknowledged"
    ]
    assert post({"by": "ada@example.com"}) == 200
    alert = {a["id"]: a for a in get(f"{console.url}/api/alerts")["firing"]}["error_rate:shop:checkout"]
    assert (alert["acknowledged"], alert["acknowledged_by"]) == (True, "ada@example.com")


def test_cache_hit_rate_only_on_operations_that_use_the_cache(console):
    """browse looks up the catalog cache (3 hits of 4), checkout does not: only browse gets a hit rate;
    the service's overall rate is on its summary."""
    with meter(console.url) as (m, provider):
        hist = m.create_histogram(semconv.METRIC_OPERATION_DURATION, unit="s")
        for operation in ("browse", "checkout"):
            hist.record(0.1, {semconv.MONITOR_OPERATION: operation})
        cache = m.create_counter(semconv.METRIC_CACHE_REQUESTS)
        for hit, n in ((True, 3), (False, 1)):
            cache.add(
                n,
                {
                    semconv.MONITOR_CACHE_NAME: "catalog",
                    semconv.MONITOR_CACHE_HIT: hit,
                    semconv.MONITOR_OPERATION: "browse",
                },
            )
        provider.force_flush()
    assert (_row(console, "browse")["cache_hit_rate"], _row(console, "checkout")["cache_hit_rate"]) == (0.75, None)
    (service,) = get(f"{console.url}/api/summary?service=shop")["services"]
    assert service["cache_hit_rate"] == 0.75


def test_cache_lookup_counts_under_the_current_operation(otlp_sink):
    """otel_monitor.cache_lookup inside an operation labels the count with it; outside, with none."""
    import otel_monitor
    from tests.support.stack import make_stack

    stack = make_stack(otlp_sink)
    try:
        with otel_monitor.operation("browse"):
            otel_monitor.cache_lookup("catalog", True)
        otel_monitor.cache_lookup("catalog", False)
        points = {tuple(sorted(p.attributes.items())): p.value for p in stack.points(semconv.METRIC_CACHE_REQUESTS)}
    finally:
        stack.close()
    assert points == {
        (
            (semconv.MONITOR_CACHE_HIT, True),
            (semconv.MONITOR_CACHE_NAME, "catalog"),
            (semconv.MONITOR_OPERATION, "browse"),
        ): 1,
        ((semconv.MONITOR_CACHE_HIT, False), (semconv.MONITOR_CACHE_NAME, "catalog")): 1,
    }
