"""The console's pages in headless Chromium show the numbers the API gives; screenshots go to test-artifacts/."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from opentelemetry.metrics import Observation
from opentelemetry.trace import Status, StatusCode

from otel_monitor import semconv
from otel_monitor.console.cli import serve
from tests.support.console_telemetry import (
    CHROMIUM,
    CONFIG,
    chromium_page,
    get,
    logger,
    meter,
    milestone,
    send_calls,
    tracer,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f}%"


def secs(x: float | None) -> str:
    return "–" if x is None else (f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s")


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Debian's chromium: apt-get install chromium")
    config = tmp_path_factory.mktemp("console") / "otel-monitor.yaml"
    config.write_text(CONFIG)
    with serve(port=0, config_path=str(config), evaluate_every=3600) as handle:
        _send_shop_telemetry(handle.url)
        yield handle


def _send_shop_telemetry(url: str) -> None:
    send_calls(url, "search", [0.2] * 90, failed=[0.6] * 10, category="timeout")
    send_calls(url, "checkout", [0.8] * 40, failed=[1.5] * 10, category="database")
    with meter(url) as (m, provider):
        m.create_observable_gauge(
            semconv.METRIC_HEALTH_STATUS,
            callbacks=[
                lambda options: [
                    Observation(1.0, {semconv.MONITOR_HEALTH_CHECK: "database", semconv.MONITOR_HEALTH_CRITICAL: True}),
                    Observation(
                        0.5, {semconv.MONITOR_HEALTH_CHECK: "recommendations", semconv.MONITOR_HEALTH_CRITICAL: False}
                    ),
                ]
            ],
        )
        provider.force_flush()
    with tracer(url) as t, logger(url) as log:
        for i in range(3):
            with t.start_as_current_span(
                "POST /checkout",
                attributes={
                    semconv.MONITOR_OPERATION: "checkout",
                    semconv.ERROR_TYPE: "OperationalError",
                    semconv.MONITOR_ERROR_CATEGORY: "database",
                    semconv.MONITOR_ERROR_FINGERPRINT: "f00dfeed",
                },
            ) as span:
                with t.start_as_current_span("INSERT orders"):
                    log.emit(body=f"inserting order {i}", severity_text="INFO")
                span.record_exception(RuntimeError("database is locked"))
                span.set_status(Status(StatusCode.ERROR))
        for user in ("u1", "u2", "u3", "u4", "u5"):
            milestone(log, "purchase", "signup", user)
        for user in ("u1", "u2", "u3"):
            milestone(log, "purchase", "first_browse", user)
        milestone(log, "purchase", "first_add_to_cart", "u1")


@pytest.fixture(scope="module")
def page(console):
    with chromium_page(ARTIFACTS) as page:
        yield page


def _open(page, console, view: str, ready: str) -> None:
    page.goto(f"{console.url}/#/{view}")
    page.wait_for_selector(f"body[data-ready='{ready}']")
    name = ready if ready == "trace" else view.replace("/", "_")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _cell(page, row_testid: str, column: str) -> str:
    return page.locator(f"[data-testid='{row_testid}'] [data-col='{column}']").inner_text().strip()


def test_overview_cards_match_the_summary(page, console):
    """The overview's status, calls, error rate and percentiles are the API's."""
    _open(page, console, "overview", "overview")
    svc = get(f"{console.url}/api/summary")["services"][0]
    section = page.locator("[data-testid='service-shop']")
    assert section.locator("[data-testid='status']").first.inner_text().lower() == svc["status"]
    assert section.locator("[data-testid='calls']").inner_text() == str(svc["calls"])
    assert section.locator("[data-testid='error-rate']").inner_text() == pct(svc["error_rate"])
    for p in ("p50", "p95", "p99"):
        assert section.locator(f"[data-testid='{p}']").inner_text() == secs(svc[p])
    assert section.locator("svg").count() == 3


def test_operations_table_matches_the_api(page, console):
    """Each operation row shows the API's calls, success rate and percentiles."""
    _open(page, console, "operations", "operations")
    for row in get(f"{console.url}/api/operations")["operations"]:
        testid = f"op-{row['service']}-{row['operation']}"
        assert _cell(page, testid, "calls") == str(row["calls"])
        assert _cell(page, testid, "success") == pct(row["success_rate"])
        assert _cell(page, testid, "p95") == secs(row["p95"])
        assert _cell(page, testid, "p99") == secs(row["p99"])


def test_operation_page_matches_the_api(page, console):
    """The page of one operation shows its calls and success rate and its error group."""
    _open(page, console, "operation/checkout", "operation")
    row = get(f"{console.url}/api/operations/checkout")["rows"][0]
    assert page.locator("[data-testid='calls']").inner_text() == str(row["calls"])
    assert page.locator("[data-testid='success']").inner_text() == pct(row["success_rate"])
    assert page.locator("[data-testid='error-f00dfeed']").count() == 1


def test_errors_page_matches_the_api(page, console):
    """Error groups show their counts; the stack trace and example traces are one click away."""
    _open(page, console, "errors", "errors")
    for group in get(f"{console.url}/api/errors")["errors"]:
        assert _cell(page, f"error-{group['fingerprint']}", "count") == str(group["count"])
    page.locator("[data-testid='error-f00dfeed'] summary").click()
    assert "database is locked" in page.locator("[data-testid='error-f00dfeed'] pre").inner_text()
    page.screenshot(path=str(ARTIFACTS / "errors_open.png"), full_page=True)


def test_traces_and_waterfall_match_the_api(page, console):
    """The failed-traces list links to a waterfall with every span and the trace's logs."""
    _open(page, console, "traces/failed", "traces")
    failed = get(f"{console.url}/api/traces?kind=failed")["traces"]
    assert page.locator("[data-testid='traces'] tbody tr").count() == len(failed) == 3
    trace_id = failed[0]["trace_id"]
    _open(page, console, f"trace/{trace_id}", "trace")
    trace = get(f"{console.url}/api/traces/{trace_id}")
    for span in trace["spans"]:
        assert span["name"] in page.locator(f"[data-testid='span-{span['span_id']}']").inner_text()
    assert page.locator("[data-testid='trace-logs'] tbody tr").count() == len(trace["logs"]) == 1


def test_journeys_page_matches_the_funnel(page, console):
    """Users per step and conversion shown are the API's funnel numbers."""
    _open(page, console, "journeys", "journeys")
    funnel = next(f for f in get(f"{console.url}/api/funnels")["funnels"] if f["journey"] == "purchase")
    for step in funnel["steps"]:
        testid = f"funnel-purchase'] [data-testid='step-{step['step']}"
        assert _cell(page, testid, "users") == str(step["users"])
        assert _cell(page, testid, "conversion") == pct(step["conversion_from_previous"])
    assert [s["users"] for s in funnel["steps"]] == [5, 3, 1, 0]


def test_alerts_page_lists_firing_alerts_and_acknowledges(page, console):
    """Firing alerts are listed; Acknowledge asks who first, then records the name in the API and the list."""
    # Three minutes on (the error-rate alert's for), the failures still in the window.
    now = time.time_ns()
    console.console.alerts.evaluate(now)
    console.console.alerts.evaluate(now + 181 * 10**9)
    page.goto(f"{console.url}/#/overview")
    page.evaluate("localStorage.removeItem('otel-monitor-ack-name')")
    _open(page, console, "alerts", "alerts")
    firing = get(f"{console.url}/api/alerts")["firing"]
    assert page.locator("[data-testid='firing'] tbody tr").count() == len(firing) > 0
    target = "error_rate:shop:checkout"
    page.locator(f"[data-testid='alert-{target}'] button").click()  # no name yet: asked for, nothing sent
    page.wait_for_selector("[data-testid='ack-error'] >> text=Enter your name first")
    assert not next(a for a in get(f"{console.url}/api/alerts")["firing"] if a["id"] == target)["acknowledged"]
    page.fill("[data-testid='ack-name']", "Ada Lovelace")
    page.locator(f"[data-testid='alert-{target}'] button").click()
    page.wait_for_selector(f"[data-testid='alert-{target}'] >> text=acknowledged by Ada Lovelace")
    alert = next(a for a in get(f"{console.url}/api/alerts")["firing"] if a["id"] == target)
    assert (alert["acknowledged"], alert["acknowledged_by"]) == (True, "Ada Lovelace")
    page.screenshot(path=str(ARTIFACTS / "alerts_acknowledged.png"), full_page=True)
    # The name is remembered in this browser for the next acknowledgement.
    assert page.evaluate("localStorage.getItem('otel-monitor-ack-name')") == "Ada Lovelace"


def test_health_page_matches_the_checks(page, console):
    """Each dependency check shows the API's state and uptime."""
    _open(page, console, "health", "health")
    for check in get(f"{console.url}/api/health")["checks"]:
        row = page.locator(f"[data-testid='check-{check['service']}-{check['check']}']")
        assert row.locator("[data-testid='status']").inner_text().lower() == check["state"]
        assert row.locator("[data-col='uptime']").inner_text() == pct(check["uptime"])


def test_phone_sized_overview_renders(page, console):
    """The overview is usable at phone width (screenshot for review)."""
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{console.url}/#/overview")
    page.wait_for_selector("body[data-ready='overview']")
    page.screenshot(path=str(ARTIFACTS / "overview_phone.png"), full_page=True)
    assert page.locator("[data-testid='service-shop']").is_visible()
    page.set_viewport_size({"width": 1280, "height": 900})


def test_a_span_that_is_its_own_parent_is_rendered(page, console):
    """A trace whose parentage loops (a span its own parent, two spans each other's) shows every span."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from tests.support.console_telemetry import post

    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "loops"
    spans = rs.scope_spans.add().spans
    start = time.time_ns() - 10**9
    for span_id, parent in ((b"\x0a" * 8, b"\x0a" * 8), (b"\x0b" * 8, b"\x0c" * 8), (b"\x0c" * 8, b"\x0b" * 8)):
        span = spans.add(
            trace_id=b"\x0d" * 16,
            span_id=span_id,
            parent_span_id=parent,
            name=f"loop {span_id[0]}",
            start_time_unix_nano=start,
            end_time_unix_nano=start + 10**6,
        )
        assert span.name
    assert post(f"{console.url}/v1/traces", request.SerializeToString())[0] == 200
    _open(page, console, "trace/" + "0d" * 16, "trace")
    for span_id in ("0a", "0b", "0c"):
        assert page.locator(f"[data-testid='span-{span_id * 8}']").count() == 1


def test_alerts_page_shows_a_failing_webhook(page, console):
    """A webhook whose receiver refuses every attempt: the Alerts page says how many attempts and notifications
    failed, and the last error."""
    import socket
    import threading

    from otel_monitor.console.webhook import WebhookNotifier

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    notifier = WebhookNotifier(f"http://127.0.0.1:{port}/hook", attempts=2, backoff=0.01, max_backoff=0.01)
    console.console.alerts.notifier = notifier
    try:
        notifier.notify({"version": "4", "status": "firing", "alerts": []})
        pause = threading.Event()
        for _ in range(400):
            if notifier.failed:
                break
            pause.wait(0.05)
        page.goto(f"{console.url}/#/alerts")
        page.reload()  # the page may be on the Alerts view already: render it again
        page.wait_for_selector("body[data-ready='alerts']")
        text = page.locator("[data-testid='webhook']").inner_text()
        assert text.startswith("Webhook: 0 sent, 1 failed (2 failed attempts, 1 retried)"), text
        assert "last error" in text
    finally:
        console.console.alerts.notifier = None
        notifier.close()
