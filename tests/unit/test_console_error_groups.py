"""Error groups in the console: one failure is one group, whatever spans it left and in whatever order they came."""

from __future__ import annotations

import itertools
import time
from typing import Any

from otel_monitor import semconv
from otel_monitor.console.aggregates import Queries
from otel_monitor.console.error_groups import app_frames
from otel_monitor.console.store import Store

NOW = time.time_ns()
SERVER, CLIENT, INTERNAL = 2, 3, 1
TRACEBACK = """Traceback (most recent call last):
  File "/srv/venv/lib/python3.11/site-packages/starlette/routing.py", line 74, in app
    response = await func(request)
  File "/srv/shop/orders.py", line 60, in checkout
    charge = payments.authorize(order.total_cents)
  File "/srv/shop/payments.py", line 71, in _charge
    raise ProviderFailed(f"answered HTTP {response.status_code}")
shop.payments.ProviderFailed: answered HTTP 503
"""


def span(
    trace: str,
    span_id: str,
    parent: str,
    name: str,
    *,
    service: str = "shop",
    kind: int = INTERNAL,
    end_ms: int,
    status: int | None = None,
    exception: str | None = None,
    fingerprint: str | None = None,
    category: str | None = None,
    user: str | None = None,
    failed: bool = True,
) -> dict[str, Any]:
    """A decoded span as the console's OTLP decoder gives it."""
    attrs: dict[str, Any] = {}
    if status is not None:
        attrs[semconv.HTTP_RESPONSE_STATUS_CODE] = status
    if failed:
        attrs[semconv.ERROR_TYPE] = exception or str(status)
        attrs[semconv.MONITOR_ERROR_CATEGORY] = category or "unknown"
        attrs[semconv.MONITOR_ERROR_FINGERPRINT] = fingerprint or f"fp-{service}-{exception or status}"
    if user:
        attrs[semconv.ENDUSER_PSEUDO_ID] = user
    events = []
    if exception:
        events.append(
            {
                "name": "exception",
                "time_unix_nano": NOW,
                "attributes": {
                    semconv.EXCEPTION_TYPE: exception,
                    semconv.EXCEPTION_MESSAGE: "answered HTTP 503",
                    semconv.EXCEPTION_STACKTRACE: TRACEBACK,
                },
            }
        )
    end = NOW + end_ms * 1_000_000
    return {
        "resource": {semconv.SERVICE_NAME: service},
        "scope": "",
        "trace_id": trace,
        "span_id": span_id,
        "parent_span_id": parent,
        "name": name,
        "kind": kind,
        "start_time_unix_nano": end - 1_000_000,
        "end_time_unix_nano": end,
        "attributes": attrs,
        "events": events,
        "status_code": 2 if failed else 0,
        "status_message": "",
    }


def outage_trace(trace: str, user: str = "u1") -> list[dict[str, Any]]:
    """A checkout failed by a payments 503: the exception in the shop, the 503 on both sides, the 503 answer."""
    return [
        span(
            trace, "a1", "", "POST /api/checkout", kind=SERVER, status=503, end_ms=40, category="dependency", user=user
        ),
        span(trace, "a2", "a1", "payment_authorize", exception="shop.payments.ProviderFailed", end_ms=30),
        span(trace, "a3", "a2", "POST", kind=CLIENT, status=503, end_ms=20, category="dependency"),
        span(
            trace,
            "b1",
            "a3",
            "POST /v1/charges",
            service="payments",
            kind=SERVER,
            status=503,
            end_ms=10,
            category="dependency",
        ),
    ]


def groups(store: Store, service: str | None = None) -> list[dict[str, Any]]:
    return Queries(store, NOW + 60_000_000_000).errors(service, "15m")


def test_one_failed_request_across_two_services_is_one_group() -> None:
    """Client 503, server 503, the shop's exception and its request's 503: one group, one request, four occurrences."""
    store = Store()
    store.add_spans(outage_trace("t1"))
    [group] = groups(store)
    assert (group["service"], group["error_type"]) == ("shop", "shop.payments.ProviderFailed")
    assert (group["requests"], group["occurrences"], group["users"]) == (1, 4, 1)


def test_the_group_does_not_depend_on_the_order_spans_arrive_in() -> None:
    """Every arrival order of the four spans (one batch each) gives the same single group."""
    for order in itertools.permutations(outage_trace("t1")):
        store = Store()
        for s in order:
            store.add_spans([dict(s, attributes=dict(s["attributes"]))])
        found = [(g["error_type"], g["requests"], g["occurrences"]) for g in groups(store)]
        assert found == [("shop.payments.ProviderFailed", 1, 4)], [s["span_id"] for s in order]


def test_an_unknown_exception_after_a_503_is_a_dependency_failure() -> None:
    """The root cause's category 'unknown' takes the failed call's HTTP status: 503 is dependency."""
    store = Store()
    store.add_spans(outage_trace("t1"))
    assert groups(store)[0]["category"] == "dependency"


def test_the_same_exception_on_a_child_and_its_root_is_one_group() -> None:
    """An exception recorded on a child span and again on the root: one group, counted once."""
    store = Store()
    store.add_spans(
        [
            span(
                "t2",
                "r",
                "",
                "GET /orders",
                kind=SERVER,
                status=500,
                exception="KeyError",
                fingerprint="root-fp",
                end_ms=20,
                category="bug",
            ),
            span(
                "t2", "c", "r", "load_orders", exception="KeyError", fingerprint="child-fp", end_ms=10, category="bug"
            ),
        ]
    )
    [group] = groups(store)
    assert (group["fingerprint"], group["requests"], group["occurrences"]) == ("child-fp", 1, 2)


def test_a_declined_card_is_one_group() -> None:
    """The decline exception and the provider's 402 on the client span: one group."""
    store = Store()
    store.add_spans(
        [
            span(
                "t3",
                "p",
                "",
                "payment_authorize",
                exception="shop.payments.PaymentDeclined",
                end_ms=20,
                category="payment_declined",
            ),
            span("t3", "c", "p", "POST", kind=CLIENT, status=402, end_ms=10, category="payment_declined"),
        ]
    )
    assert [(g["error_type"], g["requests"]) for g in groups(store)] == [("shop.payments.PaymentDeclined", 1)]


def test_a_failure_without_an_exception_is_grouped_at_the_deepest_span() -> None:
    """Only statuses (services without otel-monitor): the callee's server span, the first to end, is the group."""
    store = Store()
    store.add_spans([s for s in outage_trace("t4") if s["span_id"] != "a2"])
    [group] = groups(store)
    assert (group["service"], group["requests"], group["occurrences"]) == ("payments", 1, 3)


def test_groups_are_ranked_by_failed_requests_then_users_not_spans() -> None:
    """A bug failing 3 requests of 3 users outranks an outage of one request that left many spans."""
    store = Store()
    store.add_spans(
        outage_trace("t5")
        + [
            span("t5", f"x{i}", "a1", "retry", kind=CLIENT, status=503, end_ms=35 + i, category="dependency")
            for i in range(6)
        ]
    )
    for i in range(3):
        store.add_spans(
            [
                span(
                    f"b{i}",
                    "r",
                    "",
                    "GET /cart",
                    kind=SERVER,
                    status=500,
                    exception="TypeError",
                    fingerprint="bug-fp",
                    end_ms=5,
                    category="bug",
                    user=f"user{i}",
                )
            ]
        )
    ranked = [(g["error_type"], g["requests"], g["users"], g["occurrences"]) for g in groups(store)]
    assert ranked == [("TypeError", 3, 3, 3), ("shop.payments.ProviderFailed", 1, 1, 10)]


def test_requests_with_more_users_rank_first_on_equal_requests() -> None:
    """Two groups of two failed requests: the one that failed two users comes before the one that failed one."""
    store = Store()
    for i, (error, user) in enumerate(
        [("KeyError", "same"), ("KeyError", "same"), ("ValueError", "a"), ("ValueError", "b")]
    ):
        store.add_spans(
            [
                span(
                    f"u{i}",
                    "r",
                    "",
                    "GET /x",
                    kind=SERVER,
                    status=500,
                    exception=error,
                    fingerprint=error,
                    end_ms=5,
                    category="bug",
                    user=user,
                )
            ]
        )
    assert [(g["error_type"], g["users"]) for g in groups(store)] == [("ValueError", 2), ("KeyError", 1)]


def test_app_frames_come_first_without_library_frames() -> None:
    """The group lists the app's own frames, innermost first; site-packages frames are left out."""
    store = Store()
    store.add_spans(outage_trace("t6"))
    frames = groups(store)[0]["app_frames"]
    assert [(f["file"], f["function"]) for f in frames] == [
        ("/srv/shop/payments.py", "_charge"),
        ("/srv/shop/orders.py", "checkout"),
    ]
    assert frames[0]["code"].startswith("raise ProviderFailed")
    assert app_frames("") == []
