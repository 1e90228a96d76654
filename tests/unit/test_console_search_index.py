"""Trace search read off the names the store keeps per trace gives what reading every span gives."""

from __future__ import annotations

import random

import pytest
from starlette.datastructures import QueryParams

from otel_monitor import semconv
from otel_monitor.console import explore
from otel_monitor.console.store import Limits, Store, http_operation

NOW = 1_700_000_000_000_000_000
NAMES = ["GET /items/{id}", "POST /cart", "SELECT /var/db/shop.db", "SELECT shop", "checkout", "render"]
ROUTES = ["/items/{id}", "/cart", None]
OPERATIONS = ["checkout", "browse", None]


def _span(rng: random.Random, trace: int, index: int) -> dict:
    start = NOW - rng.randint(1, 600) * 1_000_000_000
    attrs: dict = {}
    if (route := rng.choice(ROUTES)) is not None:
        attrs.update({semconv.HTTP_ROUTE: route, semconv.HTTP_REQUEST_METHOD: rng.choice(["GET", "POST"])})
    if (operation := rng.choice(OPERATIONS)) is not None:
        attrs[semconv.MONITOR_OPERATION] = operation
    if rng.random() < 0.3:
        attrs[semconv.DB_SYSTEM_NAME] = "sqlite"
    if rng.random() < 0.3:
        attrs["shop.tier"] = rng.choice(["gold", "silver", 3])
    return {
        "resource": {semconv.SERVICE_NAME: rng.choice(["shop", "pay"])},
        "scope": "t",
        "trace_id": f"{trace:032x}",
        "span_id": f"{trace * 16 + index + 1:016x}",
        "parent_span_id": "" if index == 0 else f"{trace * 16 + 1:016x}",
        "name": rng.choice(NAMES),
        "kind": rng.choice([1, 2, 3]),
        "start_time_unix_nano": start,
        "end_time_unix_nano": start + rng.randint(1, 900) * 1_000_000,
        "attributes": attrs,
        "events": [],
        "status_code": rng.choice([0, 0, 2]),
        "status_message": "",
    }


@pytest.fixture(scope="module")
def store() -> Store:
    rng = random.Random(11)
    store = Store()
    store.add_spans([_span(rng, trace, index) for trace in range(1, 400) for index in range(rng.randint(1, 4))])
    return store


def _reference(store: Store, f: explore.Filters, since_ns: int) -> list[str]:
    """Every span read, newest trace first: what the search did before the per-trace names."""
    out = []
    for t in reversed(store.traces.values()):
        if t.end_ns < since_ns or (f.status == "error" and not t.error) or (f.status == "ok" and t.error):
            continue
        ms = (t.end_ns - t.start_ns) / 1e6
        if (f.min_ms is not None and ms < f.min_ms) or (f.max_ms is not None and ms > f.max_ms):
            continue
        if f.operation and not any(
            f.operation
            in (
                s["name"],
                explore.display_name(s["name"], s["attributes"]),
                str(s["attributes"][semconv.MONITOR_OPERATION])
                if semconv.MONITOR_OPERATION in s["attributes"]
                else http_operation(s["attributes"], s["name"]),
            )
            for s in t.spans
        ):
            continue
        if f.attributes and not any(
            all(any(k in src and str(src[k]) == v for src in (s["attributes"], s["resource"])) for k, v in f.attributes)
            for s in t.spans
        ):
            continue
        out.append(t.trace_id)
    return out


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"operation": "checkout"},
        {"operation": "GET /items/{id}"},
        {"operation": "SELECT shop.db"},
        {"operation": "POST /cart"},
        {"operation": "render", "status": "error"},
        {"attr": ["shop.tier=gold"]},
        {"attr": ["shop.tier=3", "service.name=pay"]},
        {"min_ms": "300", "max_ms": "700"},
        {"status": "ok"},
    ],
)
def test_search_matches_reading_every_span(store, query):
    """Each filter, alone or combined, finds exactly the traces a scan of every span finds, newest first."""
    pairs = [(k, item) for k, v in query.items() for item in (v if isinstance(v, list) else [v])]
    f = explore.parse_filters(QueryParams([*pairs, ("limit", "500")]))
    since = NOW - 3_600_000_000_000
    found = explore.search_traces(store, f, since)
    expected = _reference(store, f, since)
    assert expected, "the query should match some traces"
    assert found["total"] == len(expected)
    assert [t["trace_id"] for t in found["traces"]] == expected


def test_slowest_first_pages_through_every_match(store):
    """order=slow: longest first over all matches, offset and limit applied after the ordering."""
    since = NOW - 3_600_000_000_000
    every = sorted(store.traces.values(), key=lambda t: t.start_ns - t.end_ns)
    f = explore.parse_filters(QueryParams("limit=7&offset=5"))
    page = explore.search_traces(store, f, since, order="slow")["traces"]
    assert [t["duration_ms"] for t in page] == [(t.end_ns - t.start_ns) / 1e6 for t in every[5:12]]


def test_operation_traces_include_http_route_operations(store):
    """The newest traces of an operation named by an HTTP route (plain SDKs) are found, at most the limit."""
    found = explore.recent_traces_with(store, "POST /cart", None, NOW - 3_600_000_000_000, limit=5)
    assert len(found) == 5
    for row in found:
        assert "POST /cart" in store.traces[row["trace_id"]].names


def test_search_order_follows_eviction():
    """The traces a search reads stay the store's own, in the same order, as old ones are evicted."""
    rng = random.Random(3)
    store = Store(limits=Limits(max_spans=50))
    for trace in range(1, 80):
        store.add_spans([_span(rng, trace, index) for index in range(rng.randint(1, 3))])
    assert list(store.trace_order) == list(store.traces.values())
    assert store.evicted["spans"] > 0


def test_a_span_arriving_later_is_searched_by_its_shortened_name():
    """A trace already searched by operation is found by the shortened name of a database span added later."""
    rng = random.Random(5)
    store = Store()
    first = _span(rng, 7, 0) | {"name": "GET /a", "attributes": {}}
    store.add_spans([first])
    by_path = explore.parse_filters(QueryParams("operation=SELECT shop.db"))
    assert explore.search_traces(store, by_path, 0)["total"] == 0
    store.add_spans(
        [_span(rng, 7, 1) | {"name": "SELECT /var/db/shop.db", "attributes": {semconv.DB_SYSTEM_NAME: "x"}}]
    )
    assert explore.search_traces(store, by_path, 0)["total"] == 1
