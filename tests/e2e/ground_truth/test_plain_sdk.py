"""Ground truth for services without otel-monitor: the OpenTelemetry JS SDK.

``tests/support/js/emit.js`` sends a known set of requests as the JS SDK reports them
(SERVER spans with ``http.route`` and ``http.response.status_code``, the
``http.server.request.duration`` histogram, two custom metrics) over OTLP/JSON
or protobuf, and prints what it sent.  The console's figures must equal it
exactly: calls, errors and success rate per route, over both encodings, from
metrics or from spans alone.  The same process stopping must turn the service
stale, and a restarted instance must leave no ghost.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_monitor import semconv
from tests.e2e.ground_truth.support import ConsoleProcess, console, wait_for
from tests.support.console_telemetry import CHROMIUM, chromium_page, meter, post

pytestmark = pytest.mark.slow

JS = Path(__file__).resolve().parents[2] / "support" / "js"
PROTOCOLS = ("json", "protobuf")
# Short enough for a scenario, long enough that a live sender (metrics every 200 ms) never looks silent.
STALE_AFTER_S = 3


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with tests/support/js's pinned OpenTelemetry JS packages installed (``npm ci``)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(
            "the plain-SDK ground truth needs Node.js: install node and npm, then `npm install` in tests/support/js"
        )
    installed = JS / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < (JS / "package-lock.json").stat().st_mtime:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=JS, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"npm ci in {JS} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    return node


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    """A console that calls a service stale after a few seconds of silence."""
    with console(tmp_path_factory.mktemp("console"), "--stale-after", str(STALE_AFTER_S)) as handle:
        yield handle


def emit(node: str, url: str, protocol: str, service: str, *args: str) -> dict[str, Any]:
    """Run the JS SDK script against the console; the truth it prints."""
    done = subprocess.run(
        [node, str(JS / "emit.js"), "--endpoint", url, "--protocol", protocol, "--service", service, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"emit.js failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def expected_rows(truth: dict[str, Any]) -> dict[str, tuple[int, int, float]]:
    """Per operation (named by route): calls, errors (5xx only) and success rate, from the script's own record."""
    return {
        op: (o["calls"], o["errors"], round((o["calls"] - o["errors"]) / o["calls"], 6))
        for op, o in truth["operations"].items()
    }


def console_rows(handle: ConsoleProcess, service: str) -> dict[str, tuple[int, int, float]]:
    return {op: (r["calls"], r["errors"], r["success_rate"]) for op, r in handle.operations(service).items()}


def wait_for_truth(handle: ConsoleProcess, service: str, truth: dict[str, Any], source: str) -> dict[str, Any]:
    expected = expected_rows(truth)

    def counted() -> dict[str, Any] | None:
        rows = handle.operations(service)
        if {op: r["calls"] for op, r in rows.items()} == {op: e[0] for op, e in expected.items()}:
            return rows
        return None

    rows = wait_for(counted, 30, f"{service}'s {sum(e[0] for e in expected.values())} calls")
    assert {r["source"] for r in rows.values()} == {source}
    return rows  # type: ignore[no-any-return]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_js_sdk_routes_calls_and_success_equal_the_truth(node, console_process, protocol):
    """SERVER spans and http.server.request.duration: operations by route, calls and success exact (4xx succeeds)."""
    service = f"js-{protocol}"
    truth = emit(node, console_process.url, protocol, service)
    rows = wait_for_truth(console_process, service, truth, "metrics")
    assert console_rows(console_process, service) == expected_rows(truth)
    for operation, row in rows.items():
        seconds = [r["seconds"] for r in truth["requests"] if r["operation"] == operation]
        # The SDK's histogram points carry the exact min and max; percentiles stay within them.
        assert (row["min"], row["max"]) == (pytest.approx(min(seconds)), pytest.approx(max(seconds))), operation
        assert all(row["min"] <= row[p] <= row["max"] for p in ("p50", "p95", "p99")), row
    summary = console_process.summary(service)
    calls = sum(o["calls"] for o in truth["operations"].values())
    errors = sum(o["errors"] for o in truth["operations"].values())
    assert (summary["calls"], summary["errors"]) == (calls, errors) == (13, 3)
    assert summary["status"] != "ok"  # 3 failures in 13 calls are outside the default SLO


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_js_sdk_spans_alone_give_the_same_figures(node, console_process, protocol):
    """A service sending traces only is counted from its SERVER spans: child spans are not calls."""
    service = f"js-spans-{protocol}"
    truth = emit(node, console_process.url, protocol, service, "--metrics", "no")
    wait_for_truth(console_process, service, truth, "spans")
    assert console_rows(console_process, service) == expected_rows(truth)


def test_a_span_posted_twice_counts_once(node, console_process):
    """The same spans exported twice (an exporter's retry) count once in calls and errors."""
    service = "js-retried"
    before = console_process.api("/api/services")["received"].get("duplicate_spans", 0)
    truth = emit(node, console_process.url, "json", service, "--metrics", "no", "--repeat", "2")
    wait_for_truth(console_process, service, truth, "spans")
    assert console_rows(console_process, service) == expected_rows(truth)
    duplicates = console_process.api("/api/services")["received"]["duplicate_spans"] - before
    assert duplicates == truth["spans_sent"] // 2 == 26


def test_a_json_trace_opens_by_its_hex_id_and_joins_a_protobuf_one(node, console_process):
    """OTLP/JSON ids are hex: the JS SDK's trace opens by its id, and a protobuf span joins it."""
    truth = emit(node, console_process.url, "json", "js-trace", "--metrics", "no")
    sent = truth["traces"][0]
    trace = wait_for(lambda: console_process.api(f"/api/traces/{sent['trace_id']}"), 15, "the JSON trace")
    spans = {s["span_id"]: s for s in trace["spans"]}
    assert trace["trace_id"] == sent["trace_id"]
    assert set(spans) == {sent["span_id"], sent["child_span_id"]}
    assert spans[sent["child_span_id"]]["parent_span_id"] == sent["span_id"]
    # A Python service called by the JS one sends its span as protobuf, in the same trace.
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attribute = resource_spans.resource.attributes.add()
    attribute.key, attribute.value.string_value = semconv.SERVICE_NAME, "py-downstream"
    span = resource_spans.scope_spans.add().spans.add()
    span.trace_id, span.span_id = bytes.fromhex(sent["trace_id"]), bytes.fromhex("00f067aa0ba902b7")
    span.parent_span_id, span.name, span.kind = bytes.fromhex(sent["child_span_id"]), "GET /stock", 2
    span.start_time_unix_nano, span.end_time_unix_nano = 1, 2
    assert post(f"{console_process.url}/v1/traces", request.SerializeToString())[0] == 200
    joined = console_process.api(f"/api/traces/{sent['trace_id']}")
    assert sorted({s["service"] for s in joined["spans"]}) == ["js-trace", "py-downstream"]
    assert len(joined["spans"]) == 3


def test_custom_metrics_are_kept_and_listed(node, console_process):
    """The app's own metrics are listed by service with their kind and last value."""
    truth = emit(node, console_process.url, "protobuf", "js-metrics")

    def shop_metrics() -> dict[str, Any] | None:
        rows = console_process.api("/api/metrics", service="js-metrics")["metrics"]
        return {m["name"]: m for m in rows if m["name"].startswith("shop.")} or None

    listed = wait_for(shop_metrics, 15, "the custom metrics")
    for name, expected in truth["custom_metrics"].items():
        assert (listed[name]["kind"], listed[name]["last_value"]) == (expected["kind"], expected["value"]), name
    assert listed["shop.orders.placed"]["monotonic"] is True
    assert listed["shop.orders.placed"]["temporality"] == "cumulative"
    every = {m["name"]: m for m in console_process.api("/api/metrics", service="js-metrics")["metrics"]}
    assert every["http.server.request.duration"]["kind"] == "histogram"
    series = {(r["operation"], r["status"]) for r in truth["requests"]}
    assert every["http.server.request.duration"]["series"] == len(series)


def test_a_stopped_service_turns_stale_and_status_fails(node, live):
    """Live while it exports, "stale" once silent past three of its own export intervals (learnt from its
    exports): the API says so and status exits 1."""
    service = "js-stopping"
    # Metrics every 200 ms for 1.5 s: the console sees a live service, then silence.
    emit(node, live.url, "json", service, "--linger-ms", "1500")
    summary = wait_for(lambda: (s := live.summary(service))["stale"] and s, STALE_AFTER_S + 15, f"{service} stale")
    assert summary["status"] == "stale"
    (interval,) = [i["export_interval_s"] for i in summary["instances"]]
    assert 0.2 <= interval < 1.0, interval  # the SDK's 200 ms, plus each export's own time
    assert summary["stale_after_s"] == pytest.approx(3 * interval) and summary["silent_s"] > summary["stale_after_s"]
    assert summary["live_instances"] == 0 and [i["stale"] for i in summary["instances"]] == [True]
    code, output = live.status("--service", service)
    assert code == 1, output
    assert "STALE" in output and "no data for" in output


def test_a_restarted_instance_leaves_no_ghost(live):
    """After a restart (new service.instance.id), the dead instance's "down" expires with it; its alert resolves."""
    service = "restarted"

    def report(instance: str, value: int) -> None:
        with meter(live.url, service, instance) as (m, provider):
            gauge = m.create_gauge(semconv.METRIC_HEALTH_STATUS)
            gauge.set(value, {semconv.MONITOR_HEALTH_CHECK: "disk", semconv.MONITOR_HEALTH_CRITICAL: True})
            provider.force_flush()

    def disk() -> dict[str, Any]:
        return next(c for c in live.api("/api/health", service=service)["checks"] if c["check"] == "disk")

    report("before-restart", 0)
    wait_for(lambda: disk()["state"] == "down", 15, "the first instance's disk check down")

    # The new process reports healthy, again and again, while the old one is gone.
    def healthy_and_alone() -> dict[str, Any] | None:
        report("after-restart", 1)
        row = disk()
        return row if row["instances"] == 1 and row["state"] == "up" else None

    row = wait_for(healthy_and_alone, STALE_AFTER_S + 15, "the disk check up on the new instance alone")
    assert row["value"] == 1
    summary = live.summary(service)
    instances = [(i["instance"], i["stale"]) for i in summary["instances"]]
    assert instances == [("after-restart", False), ("before-restart", True)]
    assert summary["live_instances"] == 1 and "disk" not in summary["failing_checks"]
    firing = live.api("/api/alerts", service=service)["firing"]
    assert not [a for a in firing if a["subject"] == "disk"], firing


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    with chromium_page(tmp_path_factory.mktemp("browser")) as page:
        yield page


def test_browser_pages_show_the_js_service_stale_and_its_metrics(node, live, page):
    """Overview: the stopped JS service shows "stale", its calls and last seen; Operations and Metrics: the truth."""
    service = "js-browser"
    truth = emit(node, live.url, "protobuf", service)
    wait_for(lambda: live.summary(service)["stale"], STALE_AFTER_S + 15, f"{service} stale")
    page.goto(f"{live.url}/?service={service}#/overview")
    page.wait_for_selector("body[data-ready='overview']")
    section = page.locator(f"[data-testid='service-{service}']")
    assert section.locator("[data-testid='status']").first.inner_text().lower() == "stale"
    assert section.locator("[data-testid='calls']").inner_text() == "13"
    assert "no data for" in section.locator("[data-testid='liveness']").inner_text()
    page.goto(f"{live.url}/?service={service}#/operations")
    page.wait_for_selector("body[data-ready='operations']")
    for operation, (calls, _errors, success) in expected_rows(truth).items():
        row = page.locator(f"[data-testid='op-{service}-{operation}']")
        assert row.locator("[data-col='calls']").inner_text() == str(calls)
        assert row.locator("[data-col='success']").inner_text() == f"{success * 100:.1f}%"
    page.goto(f"{live.url}/?service={service}#/metrics")
    page.wait_for_selector("body[data-ready='metrics']")
    for name, expected in truth["custom_metrics"].items():
        cell = page.locator(f"[data-testid='metric-{service}-{name}'] [data-col='value']")
        assert cell.inner_text() == str(expected["value"])
