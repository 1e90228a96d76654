"""The console's JSON API answers match the OTLP that the SDK's exporters sent."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest
from opentelemetry.trace import Status, StatusCode, use_span

from otel_monitor import semconv
from otel_monitor.console.cli import serve
from otel_monitor.console.store import Limits
from tests.support.console_telemetry import CONFIG, get, logger, meter, milestone, record_calls, send_calls, tracer


@pytest.fixture
def console(tmp_path):
    path = tmp_path / "otel-monitor.yaml"
    path.write_text(CONFIG)
    with serve(port=0, config_path=str(path), evaluate_every=3600) as handle:
        yield handle


def _op(handle, name, service="shop"):
    rows = get(f"{handle.url}/api/operations?service={service}")["operations"]
    return next(r for r in rows if r["operation"] == name)


def test_operation_stats_come_from_the_duration_histogram(console):
    """Calls, success rate and percentiles equal what the histogram recorded."""
    send_calls(console.url, "search", [0.2] * 90, failed=[0.6] * 10, category="timeout")
    row = _op(console, "search")
    assert row["source"] == "metrics"
    assert row["calls"] == 100 and row["errors"] == 10
    assert row["success_rate"] == pytest.approx(0.9)
    # The points carry min and max: 90 calls of 0.2 s, 10 of 0.6 s.
    assert (row["min"], row["max"]) == (pytest.approx(0.2), pytest.approx(0.6))
    assert row["p50"] == pytest.approx(0.2, abs=1e-6)
    assert row["p95"] == pytest.approx(0.6, rel=row["percentile_error"]) and row["p95"] <= 0.6
    assert row["error_categories"] == {"timeout": 10}
    assert row["status"] == "warning"  # 90% success is below the 95% warning, not below 90% critical


def test_cumulative_points_are_differenced_and_summed_across_instances(console):
    """Two processes exporting cumulative histograms twice each count every call once."""
    with meter(console.url, instance="worker-1") as (m1, p1), meter(console.url, instance="worker-2") as (m2, p2):
        h1 = m1.create_histogram(semconv.METRIC_OPERATION_DURATION, unit="s")
        h2 = m2.create_histogram(semconv.METRIC_OPERATION_DURATION, unit="s")
        record_calls(h1, "browse", [0.01] * 7)
        record_calls(h2, "browse", [0.01] * 5)
        p1.force_flush()
        p2.force_flush()
        record_calls(h1, "browse", [0.01] * 3)
        p1.force_flush()
        p2.force_flush()  # unchanged cumulative value: adds nothing
    assert _op(console, "browse")["calls"] == 15


def test_a_restarted_process_counts_from_zero(console):
    """A new start time on the same instance is a restart: its total is added, not subtracted."""
    for calls in (8, 3):
        send_calls(console.url, "login", [0.05] * calls, instance="worker-1")
    assert _op(console, "login")["calls"] == 11


def test_operations_fall_back_to_spans_without_metrics(console):
    """A service that sends only spans gets operation rows from its operation spans."""
    with tracer(console.url, service="payments") as t:
        for _ in range(4):
            with t.start_as_current_span("POST /pay", attributes={semconv.MONITOR_OPERATION: "pay"}):
                pass
    row = _op(console, "pay", service="payments")
    assert row["source"] == "spans" and row["calls"] == 4 and row["success_rate"] == 1.0


def test_errors_are_grouped_by_fingerprint(console):
    """Failed spans group by fingerprint with count, category, message, stack trace and example traces."""
    trace_ids = []
    with tracer(console.url) as t:
        for i in range(5):
            fingerprint, category = ("aaa111", "database") if i < 3 else ("bbb222", "timeout")
            with t.start_as_current_span(
                "POST /checkout",
                attributes={
                    semconv.MONITOR_OPERATION: "checkout",
                    semconv.ERROR_TYPE: "OperationalError",
                    semconv.MONITOR_ERROR_CATEGORY: category,
                    semconv.MONITOR_ERROR_FINGERPRINT: fingerprint,
                },
            ) as span:
                span.record_exception(RuntimeError(f"failure {fingerprint}"))
                span.set_status(Status(StatusCode.ERROR))
                trace_ids.append(f"{span.get_span_context().trace_id:032x}")
    groups = {g["fingerprint"]: g for g in get(f"{console.url}/api/errors?window=1h")["errors"]}
    assert set(groups) == {"aaa111", "bbb222"}
    assert groups["aaa111"]["count"] == 3 and groups["aaa111"]["category"] == "database"
    assert groups["bbb222"]["count"] == 2 and groups["bbb222"]["message"] == "failure bbb222"
    assert "RuntimeError" in groups["aaa111"]["stacktrace"]
    assert groups["aaa111"]["trace_ids"] == trace_ids[:3]
    assert groups["aaa111"]["first_seen"] <= groups["aaa111"]["last_seen"]


def test_trace_view_has_spans_and_their_logs(console):
    """/api/traces/{id} returns the trace's spans, parent links and correlated logs."""
    with tracer(console.url) as t, logger(console.url) as log:
        with t.start_as_current_span("GET /items") as root:
            with t.start_as_current_span("SELECT items"):
                log.emit(body="loaded 3 items", severity_text="INFO")
        trace_id = f"{root.get_span_context().trace_id:032x}"
    trace = get(f"{console.url}/api/traces/{trace_id}")
    names = {s["name"]: s for s in trace["spans"]}
    assert set(names) == {"GET /items", "SELECT items"}
    assert names["SELECT items"]["parent_span_id"] == names["GET /items"]["span_id"]
    assert [entry["body"] for entry in trace["logs"]] == ["loaded 3 items"]
    listed = get(f"{console.url}/api/traces?kind=recent")["traces"]
    assert trace_id in [x["trace_id"] for x in listed]


def test_unknown_trace_is_404_and_bad_id_is_400(console):
    """A trace id that was never received is 404; one that is not 32 hex characters is 400."""
    for trace_id, code in (("0" * 31 + "1", 404), ("not-a-trace", 400)):
        with pytest.raises(urllib.error.HTTPError) as failure:
            urllib.request.urlopen(f"{console.url}/api/traces/{trace_id}")
        assert failure.value.code == code


def test_funnel_counts_distinct_users_per_declared_step(console):
    """Users per step are distinct pseudo ids; conversion is step over previous step."""
    with logger(console.url) as log:
        for user in ("u1", "u2", "u3", "u4"):
            milestone(log, "purchase", "signup", user)
        for user in ("u1", "u2", "u3", "u1"):  # u1 browses twice: still one user
            milestone(log, "purchase", "first_browse", user)
        milestone(log, "purchase", "first_add_to_cart", "u2")
    funnel = next(f for f in get(f"{console.url}/api/funnels")["funnels"] if f["journey"] == "purchase")
    steps = {s["step"]: s for s in funnel["steps"]}
    assert [s["step"] for s in funnel["steps"]] == ["signup", "first_browse", "first_add_to_cart", "first_purchase"]
    assert [s["users"] for s in funnel["steps"]] == [4, 3, 1, 0]
    assert steps["first_browse"]["conversion_from_previous"] == 0.75
    assert steps["first_add_to_cart"]["conversion_from_first"] == 0.25


def test_alerts_pend_fire_after_their_for_and_can_be_acknowledged(console):
    """Failures make the alerts pending at once; the error-rate alert fires after its ``for`` (3m) and can be acked."""
    send_calls(console.url, "checkout", [0.1] * 6, failed=[0.1] * 4)
    answer = get(f"{console.url}/api/alerts")
    assert not answer["firing"]
    pending = {p["alertname"]: p for p in answer["pending"]}
    assert pending["OperationSuccessRateCritical"]["value"] == pytest.approx(0.6)
    assert pending["OperationErrorRateHigh"]["id"] == "error_rate:shop:checkout"
    # Three minutes on, the failures still in its 5-minute window: the error-rate alert fires.
    console.console.alerts.evaluate(time.time_ns() + 181 * 10**9)
    firing = {a["id"]: a for a in get(f"{console.url}/api/alerts")["firing"]}
    alert = firing["error_rate:shop:checkout"]
    assert alert["severity"] == "critical" and alert["value"] == pytest.approx(0.4) and alert["threshold"] == 0.05
    assert "success_rate:shop:checkout" not in firing  # its for is 5m
    request = urllib.request.Request(f"{console.url}/api/alerts/error_rate:shop:checkout/ack", method="POST", data=b"")
    urllib.request.urlopen(request).read()
    firing = {a["id"]: a for a in get(f"{console.url}/api/alerts")["firing"]}
    assert firing["error_rate:shop:checkout"]["acknowledged"] is True


def test_health_checks_show_state_and_make_the_service_critical(console):
    """A critical dependency check reported down shows as down and turns the service red."""
    with meter(console.url) as (m, provider):
        m.create_observable_gauge(
            semconv.METRIC_HEALTH_STATUS,
            callbacks=[
                lambda options: [
                    __import__("opentelemetry.metrics", fromlist=["Observation"]).Observation(
                        0.0, {semconv.MONITOR_HEALTH_CHECK: "database", semconv.MONITOR_HEALTH_CRITICAL: True}
                    )
                ]
            ],
        )
        provider.force_flush()
    with logger(console.url) as log:
        log.emit(
            event_name=semconv.EVENT_HEALTH_CHANGE,
            attributes={
                semconv.MONITOR_HEALTH_CHECK: "database",
                semconv.MONITOR_HEALTH_STATE: "down",
                semconv.MONITOR_HEALTH_PREVIOUS_STATE: "up",
            },
        )
    check = get(f"{console.url}/api/health")["checks"][0]
    assert (check["check"], check["state"], check["critical"], check["uptime"]) == ("database", "down", True, 0.0)
    assert [(i["previous_state"], i["state"]) for i in check["incidents"]] == [("up", "down")]
    summary = get(f"{console.url}/api/summary?service=shop")["services"][0]
    assert summary["status"] == "critical" and summary["failing_checks"] == ["database"]


def test_cache_and_fallback_counters_feed_the_operation_row(console):
    """Cache hit rate and fallback share come from the cache and fallback counters."""
    with meter(console.url) as (m, provider):
        record_calls(m.create_histogram(semconv.METRIC_OPERATION_DURATION, unit="s"), "outfit", [0.3] * 20)
        cache = m.create_counter(semconv.METRIC_CACHE_REQUESTS)
        cache.add(3, {semconv.MONITOR_CACHE_NAME: "outfit", semconv.MONITOR_CACHE_HIT: True})
        cache.add(1, {semconv.MONITOR_CACHE_NAME: "outfit", semconv.MONITOR_CACHE_HIT: False})
        m.create_counter(semconv.METRIC_FALLBACKS).add(
            5, {semconv.MONITOR_OPERATION: "outfit", semconv.MONITOR_SERVICE_LAYER: "fallback"}
        )
        provider.force_flush()
    row = _op(console, "outfit")
    assert row["cache_hit_rate"] == 0.75 and row["fallback_share"] == 0.25


def test_bad_window_is_a_400_naming_the_choices(console):
    """An unknown window is rejected with the allowed values in the message."""
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(f"{console.url}/api/summary?window=7m")
    assert failure.value.code == 400 and b"15m" in failure.value.read()


def test_sqlite_keeps_everything_across_a_restart(tmp_path):
    """With --db, a restarted console answers exactly as before."""
    db = str(tmp_path / "console.db")
    with serve(port=0, db=db) as first:
        send_calls(first.url, "save", [0.02] * 12)
        with tracer(first.url) as t, t.start_as_current_span("POST /save"):
            pass
        before = get(f"{first.url}/api/operations")["operations"]
    with serve(port=0, db=db) as second:
        second.wait_replayed()
        assert get(f"{second.url}/api/operations")["operations"] == before
        assert get(f"{second.url}/api/traces")["traces"][0]["name"] == "POST /save"


def test_oldest_traces_are_evicted_and_counted():
    """Past the span limit whole traces go oldest first, and the eviction count says how many spans."""
    with serve(port=0, limits=Limits(max_spans=10), evaluate_every=3600) as handle:
        trace_ids = []
        with tracer(handle.url) as t:
            for i in range(30):
                with t.start_as_current_span(f"GET /page/{i}") as span:
                    trace_ids.append(f"{span.get_span_context().trace_id:032x}")
        stats = get(f"{handle.url}/api/services")
        assert stats["kept"]["spans"] == 10 and stats["evicted"]["spans"] == 20
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{handle.url}/api/traces/{trace_ids[0]}")
        assert get(f"{handle.url}/api/traces/{trace_ids[-1]}")["spans"][0]["name"] == "GET /page/29"


def test_error_group_takes_its_stack_trace_from_the_logged_exception(console):
    """A failed span with only error.type gets the stack trace of the exception logged in its context, in either order."""
    stacks = {}
    with tracer(console.url) as t, logger(console.url) as log:
        for fingerprint, log_first in (("a11ce0001", True), ("b0b000002", False)):
            span = t.start_span(
                "POST /checkout",
                attributes={
                    semconv.MONITOR_OPERATION: "checkout",
                    semconv.ERROR_TYPE: "TypeError",
                    semconv.MONITOR_ERROR_CATEGORY: "bug",
                    semconv.MONITOR_ERROR_FINGERPRINT: fingerprint,
                },
            )
            span.set_status(Status(StatusCode.ERROR))
            stacks[fingerprint] = (
                f'Traceback (most recent call last):\n  File "orders.py", line 7\nTypeError: {fingerprint}'
            )

            def log_it(span=span, fingerprint=fingerprint):
                with use_span(span, end_on_exit=False):
                    log.emit(
                        body="Exception in ASGI application",
                        severity_text="ERROR",
                        attributes={
                            semconv.EXCEPTION_TYPE: "TypeError",
                            semconv.EXCEPTION_MESSAGE: "unsupported operand",
                            semconv.EXCEPTION_STACKTRACE: stacks[fingerprint],
                        },
                    )

            if log_first:
                log_it()
                span.end()
            else:
                span.end()
                log_it()
    groups = {g["fingerprint"]: g for g in get(f"{console.url}/api/errors")["errors"]}
    for fingerprint, stack in stacks.items():
        assert groups[fingerprint]["stacktrace"] == stack
        assert groups[fingerprint]["message"] == "unsupported operand"
