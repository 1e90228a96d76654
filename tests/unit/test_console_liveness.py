"""Liveness and plain-SDK rules of the console's store, with a fixed clock.

A service silent past ``stale_after`` is stale, and a check's value lives as
long as its instance; standard HTTP server spans and points from any SDK
become operations by route; a span received twice counts once; OTLP/JSON ids
are hex.  The end-to-end versions, with the JS SDK and a console process, are
in ``tests/e2e/ground_truth/test_plain_sdk.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from otel_monitor import semconv
from otel_monitor.console.aggregates import Queries
from otel_monitor.console.store import Limits, Store, http_failed, http_operation
from otel_monitor.otlp.decode import OTLPDecodeError, flatten_logs, flatten_spans, parse_request

S = 1_000_000_000
T0 = 1_700_000_000 * S  # a fixed time in the past for the data; queries pass their own "now"


def span(
    service: str = "js",
    *,
    trace: str = "ab" * 16,
    span_id: str = "cd" * 8,
    parent: str = "",
    kind: int = 2,
    attrs: dict[str, Any] | None = None,
    status: int = 0,
    end: int = T0,
    instance: str = "i-1",
) -> dict[str, Any]:
    return {
        "resource": {semconv.SERVICE_NAME: service, semconv.SERVICE_INSTANCE_ID: instance},
        "scope": "",
        "trace_id": trace,
        "span_id": span_id,
        "parent_span_id": parent,
        "name": "GET /items/{id}",
        "kind": kind,
        "start_time_unix_nano": end - 10_000_000,
        "end_time_unix_nano": end,
        "attributes": dict(attrs or {}),
        "events": [],
        "status_code": status,
        "status_message": "",
    }


def health_point(service: str, instance: str, value: float, t: int) -> dict[str, Any]:
    return {
        "resource": {semconv.SERVICE_NAME: service, semconv.SERVICE_INSTANCE_ID: instance},
        "scope": "",
        "name": semconv.METRIC_HEALTH_STATUS,
        "unit": "1",
        "type": "gauge",
        "value": value,
        "attributes": {semconv.MONITOR_HEALTH_CHECK: "disk", semconv.MONITOR_HEALTH_CRITICAL: True},
        "start_time_unix_nano": 0,
        "time_unix_nano": t,
    }


def http_point(status: int, count: int, t: int = T0, unit: str = "s") -> dict[str, Any]:
    return {
        "resource": {semconv.SERVICE_NAME: "js"},
        "scope": "",
        "name": semconv.HTTP_SERVER_REQUEST_DURATION,
        "unit": unit,
        "type": "histogram",
        "temporality": 1,
        "count": count,
        "sum": 0.5 * count,
        "bucket_counts": [0, count, 0],
        "explicit_bounds": [0.1, 1.0] if unit == "s" else [100.0, 1000.0],
        "attributes": {
            semconv.HTTP_REQUEST_METHOD: "POST",
            semconv.HTTP_ROUTE: "/orders",
            semconv.HTTP_RESPONSE_STATUS_CODE: status,
        },
        "start_time_unix_nano": t - S,
        "time_unix_nano": t,
    }


def test_a_service_silent_past_stale_after_is_stale_not_ok():
    """209 s after its last data (default 180 s), a stopped service is "stale", its disk check too."""
    store = Store()
    store.add_metric_points([health_point("payments", "p-1", 1, T0)])
    fresh = Queries(store, now_ns=T0 + 60 * S).summary("payments", "15m")[0]
    assert (fresh["status"], fresh["stale"], fresh["live_instances"]) == ("ok", False, 1)
    later = Queries(store, now_ns=T0 + 209 * S)
    row = later.summary("payments", "15m")[0]
    assert (row["status"], row["stale"], row["silent_s"], row["last_seen"]) == ("stale", True, 209.0, T0 // 1_000_000)
    assert [i["stale"] for i in row["instances"]] == [True]
    check = later.health("payments", "15m")[0]
    assert (check["state"], check["value"], check["instances"]) == ("stale", None, 0)


def test_stale_after_is_the_stores_setting():
    """The console sets ``stale_after_ns``; silence shorter than it is live."""
    store = Store()
    store.stale_after_ns = 2 * S
    store.add_spans([span(end=T0)])
    assert not Queries(store, now_ns=T0 + 2 * S).summary("js", "15m")[0]["stale"]
    assert Queries(store, now_ns=T0 + 2 * S + 1).summary("js", "15m")[0]["stale"]


def test_last_seen_is_never_later_than_the_receipt():
    """A sender whose clock runs ahead does not stay live for the difference."""
    store = Store()
    store.add_spans([span(end=T0 * 2)])  # far in the future
    assert store.services["js"] < T0 * 2


def test_a_restarted_instance_leaves_no_ghost():
    """The dead instance's "down" wins while it may be alive, then expires with it."""
    store = Store()
    store.add_metric_points([health_point("shop", "old", 0, T0)])
    store.add_metric_points([health_point("shop", "new", 1, T0 + 5 * S)])
    soon = Queries(store, now_ns=T0 + 10 * S).health("shop", "15m")[0]
    assert (soon["state"], soon["instances"]) == ("down", 2)
    store.add_metric_points([health_point("shop", "new", 1, T0 + 200 * S)])
    later = Queries(store, now_ns=T0 + 201 * S)
    check = later.health("shop", "15m")[0]
    assert (check["state"], check["instances"], check["value"]) == ("up", 1, 1.0)
    summary = later.summary("shop", "15m")[0]
    assert [(i["instance"], i["stale"]) for i in summary["instances"]] == [("new", False), ("old", True)]
    assert summary["failing_checks"] == []


@pytest.mark.parametrize(
    ("attrs", "otherwise", "failed"),
    [
        ({semconv.HTTP_RESPONSE_STATUS_CODE: 503}, False, True),
        ({semconv.HTTP_RESPONSE_STATUS_CODE: 404}, True, False),  # an SDK marking a 4xx an error: still a success
        ({semconv.HTTP_STATUS_CODE_OLD: "500"}, False, True),
        ({}, True, True),
        ({semconv.HTTP_RESPONSE_STATUS_CODE: "n/a"}, False, False),
    ],
)
def test_http_failure_is_5xx(attrs, otherwise, failed):
    """A server's 5xx fails, a 4xx succeeds; without a status code, the span's own verdict."""
    assert http_failed(attrs, otherwise) is failed


def test_http_operations_are_named_by_route():
    route = {semconv.HTTP_REQUEST_METHOD: "GET", semconv.HTTP_ROUTE: "/items/{id}"}
    assert http_operation(route, "x") == "GET /items/{id}"
    assert http_operation({semconv.HTTP_METHOD_OLD: "POST", semconv.HTTP_ROUTE: "/orders"}, "") == "POST /orders"
    assert http_operation({semconv.HTTP_REQUEST_METHOD: "GET"}, "GET") == "GET"


def test_server_spans_count_and_their_children_do_not():
    """A SERVER span is a call of its route; an INTERNAL child is not."""
    store = Store()
    attrs = {
        semconv.HTTP_REQUEST_METHOD: "GET",
        semconv.HTTP_ROUTE: "/items/{id}",
        semconv.HTTP_RESPONSE_STATUS_CODE: 500,
    }
    store.add_spans([span(attrs=attrs, status=2), span(span_id="ef" * 8, parent="cd" * 8, kind=1)])
    (row,) = Queries(store, now_ns=T0).operations("js", "15m")
    assert (row["operation"], row["calls"], row["errors"], row["source"]) == ("GET /items/{id}", 1, 1, "spans")


def test_a_services_own_operations_are_not_counted_twice():
    """A service sending monitor.operation spans: its plain SERVER spans and HTTP points add nothing."""
    store = Store()
    ours = span(attrs={semconv.MONITOR_OPERATION: "checkout"}, span_id="01" * 8)
    store.add_spans([span(attrs={semconv.HTTP_ROUTE: "/x"}), ours])
    store.add_metric_points([http_point(200, 4)])
    assert [r["operation"] for r in Queries(store, now_ns=T0).operations("js", "15m")] == ["checkout"]


def test_http_duration_points_become_operations_5xx_failing():
    """http.server.request.duration from any SDK: calls by route, 5xx failures, milliseconds converted."""
    store = Store()
    store.add_metric_points([http_point(201, 5), http_point(404, 2), http_point(502, 3)])
    (row,) = Queries(store, now_ns=T0).operations("js", "15m")
    assert (row["operation"], row["calls"], row["errors"], row["source"]) == ("POST /orders", 10, 3, "metrics")
    old = Store()
    old.add_metric_points([http_point(200, 2, unit="ms")])
    (row,) = Queries(old, now_ns=T0).operations("js", "15m")
    assert row["mean"] == pytest.approx(0.0005)


def test_a_span_received_twice_counts_once_within_the_bound():
    """Ids are remembered up to max_span_ids; a retry of a remembered span is dropped and counted."""
    store = Store(limits=Limits(max_span_ids=2))
    attrs = {semconv.HTTP_ROUTE: "/r", semconv.HTTP_REQUEST_METHOD: "GET"}
    first = [span(attrs=attrs, span_id=f"{i:016x}") for i in range(1, 4)]
    store.add_spans(first)
    store.add_spans([dict(s, attributes=dict(attrs)) for s in first[1:]])  # the two newest, again
    assert store.received["duplicate_spans"] == 2
    assert Queries(store, now_ns=T0).operations("js", "15m")[0]["calls"] == 3
    assert len(store._span_ids) == 2  # the bound itself is the behaviour under test


def test_custom_metrics_are_listed_with_kind_and_last_value():
    store = Store()
    point = {
        "resource": {semconv.SERVICE_NAME: "js"},
        "scope": "",
        "name": "shop.orders.placed",
        "unit": "{order}",
        "type": "sum",
        "temporality": 2,
        "monotonic": True,
        "attributes": {"p": "card"},
        "start_time_unix_nano": T0 - S,
        "time_unix_nano": T0,
        "value": 2,
    }
    store.add_metric_points([point, dict(point, value=5, time_unix_nano=T0 + S)])
    (listed,) = Queries(store, now_ns=T0 + S).metrics("js", "15m")
    assert (listed["kind"], listed["last_value"], listed["temporality"], listed["series"], listed["points"]) == (
        "sum",
        5,
        "cumulative",
        1,
        2,
    )


def test_metric_list_is_bounded():
    store = Store(limits=Limits(max_metrics=3))
    store.add_metric_points(
        [
            {
                "resource": {},
                "scope": "",
                "name": f"m{i}",
                "unit": "",
                "type": "gauge",
                "value": i,
                "attributes": {},
                "start_time_unix_nano": 0,
                "time_unix_nano": T0,
            }
            for i in range(5)
        ]
    )
    assert [m["name"] for m in Queries(store, now_ns=T0).metrics(None, "15m")] == ["m2", "m3", "m4"]
    assert store.evicted["metrics"] == 2


TRACE, SPAN, PARENT = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b173"


def test_otlp_json_ids_are_hex_in_spans_links_and_logs():
    """The OTLP/JSON encoding writes ids as hex; they decode to the same ids as protobuf."""
    traces = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE,
                                "spanId": SPAN,
                                "parentSpanId": PARENT,
                                "name": "x",
                                "links": [{"traceId": TRACE, "spanId": PARENT}],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    (decoded,) = flatten_spans(parse_request("traces", json.dumps(traces).encode(), "application/json"))
    assert (decoded["trace_id"], decoded["span_id"], decoded["parent_span_id"]) == (TRACE, SPAN, PARENT)
    message = parse_request("traces", json.dumps(traces).encode(), "application/json")
    link = message.resource_spans[0].scope_spans[0].spans[0].links[0]
    assert (link.trace_id.hex(), link.span_id.hex()) == (TRACE, PARENT)
    record = {"traceId": TRACE, "spanId": SPAN, "body": {"stringValue": "hi"}}
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
    (record,) = flatten_logs(parse_request("logs", json.dumps(logs).encode(), "application/json"))
    assert (record["trace_id"], record["span_id"]) == (TRACE, SPAN)


@pytest.mark.parametrize(
    "body", [b"[]", b"null", b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":7}]}]}]}', b"[" * 100_000]
)
def test_bad_otlp_json_is_a_clear_decode_error(body):
    with pytest.raises(OTLPDecodeError, match="OTLP/JSON"):
        parse_request("traces", body, "application/json")


def test_log_records_keep_a_service_live():
    """A log record is data too: its time counts as last seen, whenever it arrives."""
    store = Store()
    store._receipt_ns = 1  # an old receipt from an earlier request must not cap a later one
    store.add_logs(
        [
            {
                "resource": {semconv.SERVICE_NAME: "worker", semconv.SERVICE_INSTANCE_ID: "w-1"},
                "scope": "",
                "time_unix_nano": T0,
                "severity_number": 9,
                "severity_text": "INFO",
                "body": "tick",
                "attributes": {},
                "event_name": "",
                "trace_id": "",
                "span_id": "",
            }
        ]
    )
    assert (store.services["worker"], store.instances[("worker", "w-1")]) == (T0, T0)
    assert not Queries(store, now_ns=T0 + 60 * S).summary("worker", "15m")[0]["stale"]


def test_a_4xx_server_span_marked_as_an_error_still_succeeds():
    """Some SDKs set ERROR on a 4xx server span: the call still succeeds and makes no error group."""
    store = Store()
    attrs = {
        semconv.HTTP_REQUEST_METHOD: "GET",
        semconv.HTTP_ROUTE: "/items/{id}",
        semconv.HTTP_RESPONSE_STATUS_CODE: 404,
    }
    store.add_spans([span(attrs=attrs, status=2)])
    (row,) = Queries(store, now_ns=T0).operations("js", "15m")
    assert (row["calls"], row["errors"], row["success_rate"]) == (1, 0, 1.0)
    assert Queries(store, now_ns=T0).errors("js", "15m") == []


def test_client_errors_fail_makes_a_plain_sdks_4xx_fail():
    """--client-errors-fail: a plain SDK's 404 span and 404 points fail (with an error group), keeping their
    client outcome; by default the same data succeeds."""
    attrs = {semconv.HTTP_REQUEST_METHOD: "GET", semconv.HTTP_ROUTE: "/items/{id}"}
    spans = [
        span(
            trace=f"{i:032x}",
            span_id=f"{i:016x}",
            attrs={**attrs, semconv.HTTP_RESPONSE_STATUS_CODE: 404 if i % 2 else 200},
        )
        for i in range(1, 7)
    ]
    points = [http_point(201, 5), http_point(404, 2), http_point(502, 3)]
    judged = {}
    for fail in (False, True):
        store = Store()
        store.client_errors_fail = fail
        store.add_spans([dict(s) for s in spans])
        (from_spans,) = Queries(store, now_ns=T0).operations("js", "15m")
        groups = Queries(store, now_ns=T0).errors("js", "15m")
        other = Store()
        other.client_errors_fail = fail
        other.add_metric_points(points)
        (from_metrics,) = Queries(other, now_ns=T0).operations("js", "15m")
        judged[fail] = (
            (from_spans["calls"], from_spans["errors"], from_spans["success_rate"], from_spans["client_errors"]),
            (from_metrics["calls"], from_metrics["errors"], from_metrics["client_errors"]),
            sum(g["requests"] for g in groups),
        )
    assert judged[False] == ((6, 0, 1.0, 3), (10, 3, 2), 0)
    assert judged[True] == ((6, 3, 0.5, 3), (10, 5, 2), 3)


def _exports(store: Store, service: str, instance: str, every_s: float, count: int, start: int = T0) -> int:
    """``count`` metric exports of one instance, ``every_s`` apart; returns the last one's time."""
    t = start
    for i in range(count):
        t = start + int(i * every_s * S)
        store.add_metric_points([health_point(service, instance, 1, t)])
    return t


def test_staleness_counts_each_senders_own_export_intervals():
    """Two senders, exporting every 2 s and every 100 s: each is stale after 3 of its own intervals."""
    store = Store()
    fast = _exports(store, "fast", "f-1", 2, 4)
    slow = _exports(store, "slow", "s-1", 100, 4)
    assert store.export_cadence.interval_ns("fast", "f-1") == 2 * S
    assert store.export_cadence.interval_ns("slow", "s-1") == 100 * S

    def stale(service: str, now: int) -> tuple[bool, float]:
        row = Queries(store, now_ns=now).summary(service, "15m")[0]
        return row["stale"], row["stale_after_s"]

    assert stale("fast", fast + 6 * S) == (False, 6.0)
    assert stale("fast", fast + 7 * S) == (True, 6.0)
    # The fixed 180 s would call the slow sender dead between two of its exports.
    assert stale("slow", slow + 209 * S) == (False, 300.0)
    assert stale("slow", slow + 301 * S) == (True, 300.0)
    instance = Queries(store, now_ns=fast + 7 * S).summary("fast", "15m")[0]["instances"][0]
    assert (instance["stale"], instance["export_interval_s"]) == (True, 2.0)


def test_staleness_falls_back_to_stale_after_until_the_interval_is_known():
    """Fewer than three exports (or spans only): the fixed stale-after; intervals = 0 always uses it."""
    store = Store()
    store.stale_after_ns = 180 * S
    last = _exports(store, "young", "y-1", 2, 2)
    assert Queries(store, now_ns=last + 179 * S).summary("young", "15m")[0]["stale_after_s"] == 180.0
    assert not Queries(store, now_ns=last + 179 * S).summary("young", "15m")[0]["stale"]
    _exports(store, "young", "y-1", 2, 1, start=last + 2 * S)
    assert Queries(store, now_ns=last + 2 * S + 7 * S).summary("young", "15m")[0]["stale"]
    store.export_cadence.intervals = 0
    assert not Queries(store, now_ns=last + 2 * S + 7 * S).summary("young", "15m")[0]["stale"]


def test_a_shutdown_flush_does_not_shorten_the_interval():
    """An early export (a flush at exit) among regular ones: the interval stays the regular one."""
    store = Store()
    last = _exports(store, "app", "a-1", 60, 4)
    store.add_metric_points([health_point("app", "a-1", 1, last + 1 * S)])
    assert store.export_cadence.interval_ns("app", "a-1") == 60 * S
