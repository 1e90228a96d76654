"""The console as an OTLP workbench, in headless Chromium: trace search and details, logs with a
live tail, the metrics explorer, resources, sorting, live updates, dark mode, phone width and
axe-core, each checked against the API's numbers.  Screenshots go to test-artifacts/screenshots/.

A Python service (the SDK's OTLP/HTTP protobuf exporters) and a JS SDK service (Node, OTLP/HTTP
JSON, tests/support/js/workbench.js) take part in one trace, one logs page and one metrics view.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from otel_monitor import semconv
from otel_monitor.console.cli import serve
from tests.support.console_telemetry import CHROMIUM, CONFIG, get, logger, meter, post, send_calls, tracer

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
JS = ROOT / "tests" / "support" / "js"
AXE = JS / "node_modules" / "axe-core" / "axe.min.js"
PAGES = ["overview", "operations", "errors", "traces", "logs", "metrics", "resources", "journeys", "alerts", "health"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _checkout_failure() -> None:
    def charge_card(amount: float) -> None:
        raise RuntimeError(f"card declined for {amount} " + "x" * 400)  # a long line must wrap

    charge_card(12.5)


def _send_python(url: str) -> dict[str, Any]:
    """The Python side: a checkout trace (DB span under a millisecond, an exception, a link, logs),
    60 item traces (paging), metrics of three kinds."""
    truth: dict[str, Any] = {}
    with tracer(url) as t, logger(url) as log:
        with t.start_as_current_span("linked job") as other:
            truth["linked"] = (
                format(other.get_span_context().trace_id, "032x"),
                format(other.get_span_context().span_id, "016x"),
            )
        with t.start_as_current_span(
            "POST /checkout",
            kind=SpanKind.SERVER,
            links=[Link(other.get_span_context())],
            attributes={
                semconv.HTTP_REQUEST_METHOD: "POST",
                semconv.HTTP_ROUTE: "/checkout",
                semconv.HTTP_RESPONSE_STATUS_CODE: 500,
                "shop.cart": "c-7",
            },
        ) as root:
            ctx = root.get_span_context()
            truth["trace_id"], truth["root_span_id"] = format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
            start = time.time_ns()
            db = t.start_span(
                "SELECT /tmp/pytest-of-x/shop/shop.db",
                kind=SpanKind.CLIENT,
                start_time=start,
                attributes={semconv.DB_SYSTEM_NAME: "sqlite", semconv.DB_STATEMENT_OLD: "SELECT id FROM orders"},
            )
            db.end(end_time=start + 420_000)  # 420 µs
            truth["db_span_id"] = format(db.get_span_context().span_id, "016x")
            log.emit(body="charging card", severity_text="INFO", severity_number=_severity(9))
            try:
                _checkout_failure()
            except RuntimeError as exc:
                root.record_exception(exc)
                log.emit(
                    body="checkout failed",
                    severity_text="ERROR",
                    severity_number=_severity(17),
                    attributes={"shop.cart": "c-7"},
                )
            root.set_status(Status(StatusCode.ERROR))
        for i in range(60):
            with t.start_as_current_span(
                "GET /items/{id}",
                kind=SpanKind.SERVER,
                attributes={
                    semconv.HTTP_REQUEST_METHOD: "GET",
                    semconv.HTTP_ROUTE: "/items/{id}",
                    semconv.HTTP_RESPONSE_STATUS_CODE: 200,
                    "shop.tier": "gold" if i % 3 == 0 else "basic",
                },
            ):
                pass
    with meter(url) as (m, provider):
        orders = m.create_counter("shop.orders.placed", unit="{order}")
        for payment, n in (("card", 5), ("cash", 2)):
            orders.add(n, {"shop.payment": payment})
        m.create_observable_gauge("shop.queue.depth", unit="{job}", callbacks=[lambda options: [_obs(7)]])
        duration = m.create_histogram(semconv.HTTP_SERVER_REQUEST_DURATION, unit="s")
        for d in (0.01, 0.02, 0.03, 0.5):
            duration.record(
                d,
                {
                    semconv.HTTP_REQUEST_METHOD: "GET",
                    semconv.HTTP_ROUTE: "/items/{id}",
                    semconv.HTTP_RESPONSE_STATUS_CODE: 200,
                },
            )
        provider.force_flush()
    return truth


def _severity(n: int) -> Any:
    from opentelemetry._logs import SeverityNumber

    return SeverityNumber(n)


def _obs(value: float) -> Any:
    from opentelemetry.metrics import Observation

    return Observation(value, {"queue": "emails"})


def _self_parent_trace(url: str) -> str:
    """A span that is its own parent, and two spans each the other's parent: the page still renders."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = semconv.SERVICE_NAME, "loopy"
    spans = rs.scope_spans.add().spans
    now = time.time_ns()
    trace_id = bytes.fromhex("cc" * 16)
    for span_id, parent in (("aa" * 8, "aa" * 8), ("b1" * 8, "b2" * 8), ("b2" * 8, "b1" * 8)):
        span = spans.add()
        span.trace_id, span.span_id, span.parent_span_id = trace_id, bytes.fromhex(span_id), bytes.fromhex(parent)
        span.name, span.start_time_unix_nano, span.end_time_unix_nano = f"loop {span_id[:2]}", now - 2_000_000, now
    status, _ = post(f"{url}/v1/traces", request.SerializeToString())
    assert status == 200
    return "cc" * 16


def _send_grpc_worker(grpc_port: int, trace_id: str, parent_span_id: str) -> None:
    """A Python service over OTLP/gRPC joining the trace: a span, a log in it, a histogram."""
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    from tests.support.console_telemetry import resource

    endpoint = f"127.0.0.1:{grpc_port}"
    spans = TracerProvider(resource=resource("worker"))
    spans.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    logs = LoggerProvider(resource=resource("worker"))
    logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True)))
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint, insecure=True), export_interval_millis=3_600_000
    )
    metrics = MeterProvider(resource=resource("worker"), metric_readers=[reader])
    parent = set_span_in_context(
        NonRecordingSpan(
            SpanContext(
                int(trace_id, 16), int(parent_span_id, 16), is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
            )
        )
    )
    try:
        with spans.get_tracer("worker").start_as_current_span("process order", context=parent, kind=SpanKind.CONSUMER):
            logs.get_logger("worker").emit(
                body="worker picked the order", severity_text="INFO", severity_number=_severity(9)
            )
        metrics.get_meter("worker").create_histogram(semconv.HTTP_SERVER_REQUEST_DURATION, unit="s").record(
            0.2,
            {semconv.HTTP_REQUEST_METHOD: "POST", semconv.HTTP_ROUTE: "/jobs", semconv.HTTP_RESPONSE_STATUS_CODE: 202},
        )
        metrics.force_flush()
    finally:
        spans.shutdown()
        logs.shutdown()
        metrics.shutdown()


def _send_js_protobuf(url: str) -> None:
    """The ground-truth JS SDK service (tests/support/js/emit.js) over OTLP/HTTP protobuf."""
    subprocess.run(
        [
            shutil.which("node") or "node",
            str(JS / "emit.js"),
            "--endpoint",
            url,
            "--protocol",
            "protobuf",
            "--service",
            "js-shop",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def _send_js(url: str, parent: str) -> dict[str, Any]:
    out = subprocess.run(
        [shutil.which("node") or "node", str(JS / "workbench.js"), "--endpoint", url, "--parent", parent],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _wait(condition: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def console(tmp_path_factory) -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Debian's chromium: apt-get install chromium")
    if not (JS / "node_modules" / "@opentelemetry" / "sdk-logs").exists() or not AXE.exists():
        pytest.skip("needs the npm packages: npm ci --prefix tests/support/js")
    config = tmp_path_factory.mktemp("console") / "otel-monitor.yaml"
    config.write_text(CONFIG)
    with serve(port=0, config_path=str(config), evaluate_every=3600, grpc_port=0) as handle:
        send_calls(handle.url, "checkout", [0.8] * 40, failed=[1.5] * 10, category="database")
        truth = _send_python(handle.url)
        truth["js"] = _send_js(handle.url, f"{truth['trace_id']}-{truth['root_span_id']}")
        _send_grpc_worker(handle.grpc_port, truth["trace_id"], truth["root_span_id"])
        _send_js_protobuf(handle.url)
        truth["loop"] = _self_parent_trace(handle.url)
        now = time.time_ns()
        handle.console.alerts.evaluate(now)
        handle.console.alerts.evaluate(now + 181 * 10**9)
        handle.truth = truth
        _wait(lambda: len(get(f"{handle.url}/api/traces/{truth['trace_id']}")["spans"]) == 5, "the JS and gRPC spans")
        yield handle


@pytest.fixture(scope="module")
def browser(console) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator[Any]:
    # The console's CSP forbids inline scripts: axe-core goes in with the CSP bypassed for the test.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def _open(page, console, hash_: str, ready: str, shot: str | None = None) -> None:
    page.goto(f"{console.url}/#/{hash_}")
    page.wait_for_selector(f"body[data-ready='{ready}']")
    # Only the hash may have changed (no reload): wait for this address's render.
    page.wait_for_function("document.body.dataset.rendered === location.hash")
    if shot:
        page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)


def _rendered(page, part: str) -> None:
    """Wait until the page shows the address holding ``part`` (rendered, not just navigated to)."""
    page.wait_for_function(f"(document.body.dataset.rendered || '').includes({json.dumps(part)})")


def _axe(page) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _page_width(page) -> int:
    return int(page.evaluate("document.scrollingElement.scrollWidth"))


# --- traces ----------------------------------------------------------------------------
def test_trace_search_filters_in_the_url_and_pages(page, console):
    """Operation and attribute filters come from the URL; rows and totals are the API's; 60 traces page."""
    _open(page, console, "traces/recent?operation=GET%20%2Fitems%2F%7Bid%7D&service=shop", "traces", "traces_search")
    found = get(f"{console.url}/api/traces?operation=GET%20/items/%7Bid%7D&service=shop")
    assert found["total"] == 60
    assert page.locator("[data-testid='traces'] tbody tr").count() == 50
    assert page.locator("[data-testid='trace-count']").inner_text() == "1–50 of 60"
    page.locator("[data-testid='next-page']").click()
    page.wait_for_function("document.querySelector(\"[data-testid='trace-count']\")?.textContent === '51–60 of 60'")
    assert page.locator("[data-testid='traces'] tbody tr").count() == 10
    # An attribute filter typed into the form lands in the URL and matches the API.
    page.fill("#f-attr", "shop.tier=gold")
    page.click("form[data-testid='trace-filters'] button[type=submit]")
    page.wait_for_function("location.hash.includes('attr=shop.tier%3Dgold')")
    page.wait_for_function("document.querySelector(\"[data-testid='trace-count']\")?.textContent.endsWith('of 20')")
    gold = get(f"{console.url}/api/traces?operation=GET%20/items/%7Bid%7D&service=shop&attr=shop.tier%3Dgold")
    assert gold["total"] == 20
    assert page.locator("[data-testid='traces'] tbody tr").count() == 20
    # Status and duration filters: the failed checkout is the one error trace over 0.1 ms.
    _open(page, console, "traces/recent?status=error&min_ms=0.1&service=shop", "traces")
    failed = get(f"{console.url}/api/traces?status=error&min_ms=0.1&service=shop")
    assert [t["trace_id"] for t in failed["traces"]] == [console.truth["trace_id"]]
    assert page.locator("[data-testid='traces'] tbody tr").count() == 1


def test_trace_details_panel_python_and_js_in_one_trace(page, console):
    """One trace holds Python over OTLP/HTTP protobuf and over gRPC and JS over OTLP/HTTP JSON; a span's panel shows attributes, exception,
    links, resource, status, the DB statement and the duration to the µs; logs are interleaved."""
    truth = console.truth
    trace_id = truth["trace_id"]
    api = get(f"{console.url}/api/traces/{trace_id}")
    assert api["services"] == ["js-inventory", "shop", "worker"]
    _open(page, console, f"trace/{trace_id}", "trace")
    for span in api["spans"]:
        assert span["display_name"] in page.locator(f"[data-testid='span-{span['span_id']}']").inner_text()
    db_row = page.locator(f"[data-testid='span-{truth['db_span_id']}']").inner_text()
    assert "SELECT shop.db" in db_row and "/tmp/" not in db_row
    assert "420 µs" in db_row and "0.0 ms" not in db_row
    # Logs of both services sit in the waterfall under their spans, by time, and in the trace's log table.
    assert page.locator("tr.wf-log").count() == len(api["logs"]) == 4
    first_cells = page.locator("[data-testid='waterfall'] tbody tr td:first-child").all_inner_texts()
    expected = [
        "POST /checkout",
        "SELECT shop.db",
        "charging card",
        "checkout failed",
        "GET /stock/{sku}",
        "SELECT inventory",
        "stock low for sku 42",
        "process order",
        "worker picked the order",
    ]
    assert [next((e for e in expected if e in cell), cell) for cell in first_cells] == expected
    assert page.locator("[data-testid='trace-logs'] tbody tr").count() == 4
    assert {log["service"] for log in api["logs"]} == {"shop", "js-inventory", "worker"}
    # Copyable id and permalink.
    assert page.locator("[data-testid='trace-id']").inner_text() == trace_id
    assert page.locator("[data-testid='permalink']").get_attribute("href").endswith(f"#/trace/{trace_id}")
    # The root span's panel.
    page.locator(f"[data-testid='span-{truth['root_span_id']}'] a.span-link").click()
    panel = page.locator("[data-testid='span-details']")
    panel.wait_for()
    root = next(s for s in api["spans"] if s["span_id"] == truth["root_span_id"])
    assert panel.locator("[data-testid='span-status']").inner_text() == "error"
    us = root["duration_us"]
    assert panel.locator("[data-testid='span-duration']").inner_text() == (
        f"{us:.0f} µs" if us < 1000 else f"{us / 1000:.3f} ms"
    )
    assert "shop.cart" in panel.locator("[data-testid='span-attributes']").inner_text()
    assert "service.instance.id" in panel.locator("[data-testid='span-resource']").inner_text()
    assert truth["linked"][0][:16] in panel.locator("[data-testid='span-links']").inner_text()
    exception = panel.locator("[data-testid='span-exception']")
    assert "card declined" in exception.inner_text()
    # The app's own frames first: charge_card (innermost) before the test's caller.
    frames = exception.locator("ol.app-frames li").all_inner_texts()
    assert "charge_card" in frames[0] and all("site-packages" not in f for f in frames)
    exception.locator("summary").click()
    assert "Traceback" in exception.locator("pre").inner_text()
    assert _page_width(page) <= 1280, "a traceback widened the page"
    assert exception.locator("pre").evaluate("pre => pre.scrollWidth <= pre.clientWidth"), "the traceback does not wrap"
    page.screenshot(path=str(SHOTS / "trace_details.png"), full_page=True)
    # The DB span: statement and duration in µs.
    page.locator(f"[data-testid='span-{truth['db_span_id']}'] a.span-link").click()
    _rendered(page, f"span={truth['db_span_id']}")
    page.locator("[data-testid='db-statement']").wait_for()
    assert page.locator("[data-testid='db-statement']").inner_text() == "SELECT id FROM orders"
    assert page.locator("[data-testid='span-duration']").inner_text() == "420 µs"
    # The JS spans: the DB statement of a JS client span too.
    page.locator(f"[data-testid='span-{truth['js']['db_span_id']}'] a.span-link").click()
    _rendered(page, f"span={truth['js']['db_span_id']}")
    page.locator("[data-testid='db-statement']").wait_for()
    assert "SELECT qty FROM stock" in page.locator("[data-testid='db-statement']").inner_text()
    assert "js-inventory" in page.locator("[data-testid='span-resource']").inner_text()
    page.screenshot(path=str(SHOTS / "trace_js_span.png"), full_page=True)


def test_a_span_that_is_its_own_parent_renders(page, console):
    """A self-parent span and a two-span cycle: every span is shown, no JavaScript error."""
    trace_id = console.truth["loop"]
    _open(page, console, f"trace/{trace_id}", "trace", "trace_cycle")
    api = get(f"{console.url}/api/traces/{trace_id}")
    assert len(api["spans"]) == 3
    for span in api["spans"]:
        assert page.locator(f"[data-testid='span-{span['span_id']}']").count() == 1
    assert page.locator("[data-testid='trace-logs']").count() == 0
    assert page.locator("h2", has_text="Logs").count() == 0, "an empty Logs header on a trace without logs"


# --- logs --------------------------------------------------------------------------------
def test_logs_page_filters_links_and_both_services(page, console):
    """Level and text filters are the API's; each log links to its trace and span; Python and JS logs together."""
    _open(page, console, "logs", "logs", "logs")
    everything = get(f"{console.url}/api/logs?limit=500")
    rows = page.locator("[data-testid='logs'] tbody tr")
    assert rows.count() == min(50, everything["total"])
    services = set(page.locator("[data-testid='logs'] tbody td:nth-child(3)").all_inner_texts())
    assert {"shop", "js-inventory", "worker"} <= services
    _open(page, console, "logs?level=warn", "logs", "logs_warn")
    warn = get(f"{console.url}/api/logs?level=warn")
    assert warn["total"] == 2  # the Python ERROR and the JS WARN
    assert page.locator("[data-testid='logs'] tbody tr").count() == 2
    assert sorted(page.locator("[data-col='level']").all_inner_texts()) == ["ERROR", "WARN"]
    js_log = next(log for log in warn["logs"] if log["service"] == "js-inventory")
    href = page.locator(f"[data-testid='log-{js_log['seq']}'] [data-testid='log-trace-link']").get_attribute("href")
    assert href == f"#/trace/{console.truth['trace_id']}?span={js_log['span_id']}"
    _open(page, console, "logs?q=checkout&attr=shop.cart%3Dc-7", "logs")
    assert get(f"{console.url}/api/logs?q=checkout&attr=shop.cart%3Dc-7")["total"] == 1
    assert page.locator("[data-testid='logs'] tbody tr").count() == 1
    page.locator("[data-testid='log-trace-link']").click()
    page.wait_for_selector("[data-testid='span-details']")
    assert console.truth["trace_id"] in page.url


def test_live_tail_adds_new_logs_and_pauses(page, console):
    """A new record appears on top without a reload; paused, it waits; resumed, it shows."""
    _open(page, console, "logs", "logs")
    with logger(console.url, service="tailer") as log:
        log.emit(body="tail one", severity_text="INFO")
    page.wait_for_selector("[data-testid='logs'] tbody tr:first-child >> text=tail one", timeout=15000)
    page.click("#pause")
    assert page.locator("[data-testid='tail-state']").inner_text() == "live tail paused"
    with logger(console.url, service="tailer") as log:
        log.emit(body="tail two", severity_text="INFO")
    _wait(lambda: get(f"{console.url}/api/logs?q=tail%20two")["total"] == 1, "the second record stored")
    page.wait_for_timeout(2500)  # two event intervals: a paused tail must not take it in
    assert page.locator("[data-testid='logs'] >> text=tail two").count() == 0
    page.screenshot(path=str(SHOTS / "logs_paused.png"), full_page=True)
    page.click("#pause")
    page.wait_for_selector("[data-testid='logs'] tbody tr:first-child >> text=tail two", timeout=15000)


# --- metrics -------------------------------------------------------------------------------
def test_metrics_explorer_charts_by_kind_and_group(page, console):
    """The app's own counter as a rate grouped by an attribute; the HTTP histogram of the Python
    and the JS service in one view."""
    listed = get(f"{console.url}/api/metrics")["metrics"]
    names = {(m["service"], m["name"]) for m in listed}
    assert {
        ("shop", "shop.orders.placed"),
        ("shop", "shop.queue.depth"),
        ("js-inventory", "http.server.request.duration"),
    } <= names
    _open(
        page,
        console,
        "metrics?name=shop.orders.placed&service=shop&group_by=shop.payment",
        "metrics",
        "metrics_counter",
    )
    series = get(f"{console.url}/api/metrics/series?name=shop.orders.placed&service=shop&group_by=shop.payment")
    assert series["kind"] == "sum" and series["stat"] == "rate"
    assert [g["group"] for g in series["groups"]] == ["shop.payment=card", "shop.payment=cash"]
    rates = {g["group"]: [p["v"] for p in g["points"] if p["v"] is not None] for g in series["groups"]}
    assert rates == {"shop.payment=card": [5 / 60], "shop.payment=cash": [2 / 60]}
    assert (
        "2 series: shop.payment=card, shop.payment=cash" in page.locator("[data-testid='metric-groups']").inner_text()
    )
    assert page.locator("[data-testid='metric-svg'] path").count() == 2
    assert "rate per second" in page.locator("[data-testid='metric-chart'] h2").inner_text()
    # One metrics view, two SDKs: the HTTP duration histogram of both services.
    _open(page, console, "metrics?name=http.server.request.duration", "metrics", "metrics_histogram_both_services")
    both = get(f"{console.url}/api/metrics/series?name=http.server.request.duration")
    assert [g["group"] for g in both["groups"]] == ["js-inventory", "js-shop", "shop", "worker"]
    assert both["stat"] == "percentiles"
    text = page.locator("[data-testid='metric-groups']").inner_text()
    assert text.startswith("4 series: js-inventory, js-shop, shop, worker")
    # The gauge: its value.
    _open(page, console, "metrics?name=shop.queue.depth&service=shop", "metrics")
    gauge = get(f"{console.url}/api/metrics/series?name=shop.queue.depth&service=shop")
    assert [p["v"] for p in gauge["groups"][0]["points"] if p["v"] is not None] == [7.0]
    assert "7 job" in page.locator("[data-testid='metric-svg']").inner_html()


# --- resources -------------------------------------------------------------------------------
def test_resources_page_matches_the_api(page, console):
    """Every instance with its SDK, first and last seen and state, as the API says."""
    _open(page, console, "resources", "resources", "resources")
    for svc in get(f"{console.url}/api/resources")["services"]:
        for inst in svc["instances"]:
            row = page.locator(f"[data-testid='instance-{svc['service']}-{inst['instance']}']")
            assert row.locator("[data-col='sdk']").inner_text() == (inst["sdk"] or "–")
            assert row.locator("[data-testid='status']").inner_text().lower() == ("stale" if inst["stale"] else "live")
    js = next(s for s in get(f"{console.url}/api/resources")["services"] if s["service"] == "js-inventory")
    assert js["instances"][0]["sdk"].startswith("opentelemetry nodejs")
    shop = next(s for s in get(f"{console.url}/api/resources")["services"] if s["service"] == "shop")
    assert shop["instances"][0]["sdk"].startswith("opentelemetry python")


# --- everyday UX -------------------------------------------------------------------------------
def test_overview_shows_firing_alerts_with_links_and_health(page, console):
    _open(page, console, "overview", "overview", "overview")
    firing = get(f"{console.url}/api/alerts")["firing"]
    assert firing
    section = page.locator("[data-testid='overview-alerts']")
    assert section.locator("li").count() == len(firing)
    alert = next(a for a in firing if a["subject"] == "checkout")
    item = page.locator(f"[data-testid='overview-alert-{alert['id']}']")
    assert item.locator("[data-testid='alert-operation']").get_attribute("href") == "#/operation/checkout"
    assert "operation=checkout" in item.locator("[data-testid='alert-traces']").get_attribute("href")
    assert page.locator("[data-testid='overview-health']").is_visible()


def test_tables_sort_by_a_column(page, console):
    """Clicking a header sorts by it (numbers as numbers), again reverses."""
    _open(page, console, "traces/recent?limit=100", "traces")
    header = page.locator("table[data-testid='traces'] th button", has_text="duration")
    header.click()
    values = [
        float(v)
        for v in page.locator("table[data-testid='traces'] td[data-col='duration']").evaluate_all(
            "cells => cells.map(c => c.dataset.sort)"
        )
    ]
    assert values == sorted(values)
    header.click()
    values = [
        float(v)
        for v in page.locator("table[data-testid='traces'] td[data-col='duration']").evaluate_all(
            "cells => cells.map(c => c.dataset.sort)"
        )
    ]
    assert values == sorted(values, reverse=True)
    assert page.locator("table[data-testid='traces'] th[aria-sort='descending']").count() == 1
    page.screenshot(path=str(SHOTS / "traces_sorted.png"), full_page=True)


def test_live_update_keeps_an_open_traceback_open(page, console):
    """New data re-renders the errors page; the stack trace the user opened stays open."""
    _open(page, console, "errors", "errors")
    group = get(f"{console.url}/api/errors")["errors"][0]["fingerprint"]
    page.locator(f"[data-testid='error-{group}'] summary").first.click()
    before = page.locator("#updated").inner_text()
    with tracer(console.url, service="poke") as t, t.start_as_current_span("poke"):
        pass
    page.wait_for_function(f"document.getElementById('updated').textContent !== {json.dumps(before)}", timeout=15000)
    assert page.locator(f"[data-testid='error-{group}'] details").first.evaluate("d => d.open")
    page.screenshot(path=str(SHOTS / "errors_open_after_update.png"), full_page=True)


def test_dark_mode_follows_the_system(browser, console):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark", bypass_csp=True)
    page = context.new_page()
    try:
        _open(
            page,
            console,
            f"trace/{console.truth['trace_id']}?span={console.truth['root_span_id']}",
            "trace",
            "trace_dark",
        )
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(13, 17, 23)"
        assert _axe(page) == []
    finally:
        context.close()


@pytest.mark.parametrize(
    "view",
    [
        "overview",
        "operations",
        "errors",
        "traces",
        "logs",
        "metrics?name=shop.orders.placed",
        "resources",
        "alerts",
        "trace",
    ],
)
def test_phone_width_scrolls_tables_not_the_page(browser, console, view):
    """At 390 px the page is 390 px wide: wide tables scroll inside their own box."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, bypass_csp=True)
    page = context.new_page()
    try:
        target = f"trace/{console.truth['trace_id']}?span={console.truth['root_span_id']}" if view == "trace" else view
        ready = view.split("?")[0]
        _open(page, console, target, ready)
        if view == "trace":
            page.locator("[data-testid='span-exception'] summary").click()
        page.screenshot(path=str(SHOTS / f"phone_{ready}.png"), full_page=True)
        assert _page_width(page) <= 390
    finally:
        context.close()


@pytest.mark.parametrize("view", [*PAGES, "trace", "metrics-chart"])
def test_no_serious_accessibility_violations(page, console, view):
    """axe-core finds no serious or critical violation on any page."""
    if view == "trace":
        _open(page, console, f"trace/{console.truth['trace_id']}?span={console.truth['root_span_id']}", "trace")
    elif view == "metrics-chart":
        _open(page, console, "metrics?name=http.server.request.duration", "metrics")
    else:
        _open(page, console, view, view)
    assert _axe(page) == []
