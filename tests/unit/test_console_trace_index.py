"""Trace search through the store's search index finds what reading every span finds, through
eviction, late spans, hashed values, keys indexed mid-stream and keys dropped."""

from __future__ import annotations

import heapq
import random
from typing import Any

import pytest
from starlette.datastructures import QueryParams

from otel_monitor import semconv
from otel_monitor.console import explore, search_index
from otel_monitor.console.store import Limits, Store, TraceSummary, http_operation

NOW = 1_700_000_000_000_000_000
SECOND = 1_000_000_000
NAMES = ["GET /items/{id}", "POST /cart", "SELECT /var/db/shop.db", "SELECT shop", "checkout", "render"]
ROUTES = ["/items/{id}", "/cart", None]
OPERATIONS = ["checkout", "browse", None]
USERS = [f"user-{i}" for i in range(40)]


def _span(rng: random.Random, trace: int, index: int) -> dict[str, Any]:
    """A span of trace ``trace``: random names, attributes (some numbers, some lists, ids), services, times."""
    start = NOW - rng.randint(1, 1800) * SECOND
    attrs: dict[str, Any] = {}
    if (route := rng.choice(ROUTES)) is not None:
        attrs.update({semconv.HTTP_ROUTE: route, semconv.HTTP_REQUEST_METHOD: rng.choice(["GET", "POST"])})
    if (operation := rng.choice(OPERATIONS)) is not None:
        attrs[semconv.MONITOR_OPERATION] = operation
    if rng.random() < 0.3:
        attrs[semconv.DB_SYSTEM_NAME] = "sqlite"
    if rng.random() < 0.4:
        attrs["shop.tier"] = rng.choice(["gold", "silver", 3, True, 2.5, ["a", 1]])
    if rng.random() < 0.5:
        attrs[semconv.ENDUSER_PSEUDO_ID] = rng.choice(USERS)
    if rng.random() < 0.2:
        attrs["request.id"] = f"r-{trace}-{index}"
    service = rng.choice(["shop", "pay", "mail"])
    return {
        "resource": {semconv.SERVICE_NAME: service, "deployment.environment": rng.choice(["prod", "dev"])},
        "scope": "t",
        "trace_id": f"{trace:032x}",
        "span_id": f"{trace * 16 + index + 1:016x}",
        "parent_span_id": "" if index == 0 else f"{trace * 16 + 1:016x}",
        "name": rng.choice(NAMES),
        "kind": rng.choice([1, 2, 3]),
        "start_time_unix_nano": start,
        "end_time_unix_nano": start + rng.choice([0, 1, rng.randint(1, 900) * 1_000_000]),
        "attributes": attrs,
        "events": [],
        "status_code": rng.choice([0, 0, 0, 2]),
        "status_message": "",
    }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _matches(t: TraceSummary, f: explore.Filters, start_ns: int) -> bool:
    """Every filter, read off every span of the trace: what the search did before the index."""
    if t.end_ns < start_ns or (f.end_ms is not None and t.start_ns > f.end_ms * 1_000_000):
        return False
    if f.service and not any(s["service"] == f.service for s in t.spans):
        return False
    failed = any(s["status_code"] == 2 or semconv.ERROR_TYPE in s["attributes"] for s in t.spans)
    if (f.status == "error" and not failed) or (f.status == "ok" and failed):
        return False
    ms = (t.end_ns - t.start_ns) / 1e6
    if (f.min_ms is not None and ms < f.min_ms) or (f.max_ms is not None and ms > f.max_ms):
        return False
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
        return False
    return not f.attributes or any(
        all(any(k in src and _text(src[k]) == v for src in (s["attributes"], s["resource"])) for k, v in f.attributes)
        for s in t.spans
    )


def _scan(store: Store, f: explore.Filters, since_ns: int, order: str) -> tuple[int, list[str]]:
    """(total, page of trace ids) by reading every trace the store keeps, newest first or longest first."""
    start_ns = max(since_ns, (f.start_ms or 0) * 1_000_000)
    found = [t for t in reversed(store.traces.values()) if _matches(t, f, start_ns)]
    if order == "slow":
        page = heapq.nlargest(f.offset + f.limit, found, key=lambda t: t.end_ns - t.start_ns)[f.offset :]
    else:
        page = found[f.offset : f.offset + f.limit]
    return len(found), [t.trace_id for t in page]


QUERIES = [
    "",
    "operation=checkout",
    "operation=GET /items/{id}",
    "operation=SELECT shop.db",
    "operation=render&status=error",
    "status=error",
    "status=ok&min_ms=200",
    "service=pay",
    "service=pay&operation=POST /cart",
    "attr=shop.tier%3Dgold",
    "attr=shop.tier%3D3",
    "attr=shop.tier%3DTrue",
    "attr=shop.tier%3D2.5",
    "attr=shop.tier%3D['a', 1]",
    "attr=shop.tier%3D3&attr=service.name%3Dpay",
    "attr=deployment.environment%3Ddev&min_ms=100&max_ms=700",
    "attr=enduser.pseudo.id%3Duser-7",
    "attr=enduser.pseudo.id%3Duser-7&attr=http.route%3D/cart",
    "attr=request.id%3Dr-5-0",
    "attr=nothing.here%3Dx",
    "attr=http.route%3D/cart&offset=10&limit=7",
    "min_ms=300",
    "start={recent}",
    "end={old}",
    "offset=20&limit=5",
]


def _check(store: Store, since_ns: int) -> int:
    """Every query, newest first and longest first, against the scan; how many matched in all."""
    matched = 0
    for query in QUERIES:
        raw = query.replace("{recent}", str((NOW - 300 * SECOND) // 1_000_000))
        raw = raw.replace("{old}", str((NOW - 900 * SECOND) // 1_000_000))
        for order in ("recent", "slow"):
            f = explore.parse_filters(QueryParams(raw if "limit" in raw else raw + "&limit=500"))
            found = explore.search_traces(store, f, since_ns, order=order)
            total, ids = _scan(store, f, since_ns, order)
            assert (found["total"], [t["trace_id"] for t in found["traces"]]) == (total, ids), (query, order)
            matched += total
    return matched


def _fill(store: Store, rng: random.Random, traces: range, late: list[dict[str, Any]]) -> None:
    """Send the spans of ``traces`` in batches, some spans held back and sent later (after newer traces)."""
    batch: list[dict[str, Any]] = []
    for trace in traces:
        for index in range(rng.randint(1, 4)):
            (late if rng.random() < 0.1 else batch).append(_span(rng, trace, index))
        if len(batch) > 40:
            if late and rng.random() < 0.3:
                batch.extend(late[: rng.randint(1, len(late))])
                del late[: len(batch)]
            store.add_spans(batch)
            batch = []
    store.add_spans(batch + late)
    late.clear()


@pytest.mark.parametrize("seed", [1, 2])
def test_search_matches_scan_with_eviction_and_late_spans(seed):
    """The index answers every filter as a scan does while old traces are evicted and spans come late."""
    rng = random.Random(seed)
    store = Store(limits=Limits(max_spans=3000))
    since = NOW - 1200 * SECOND  # some traces end before it
    late: list[dict[str, Any]] = []
    _fill(store, rng, range(1, 1500), late)
    assert _check(store, since) > 0  # keys indexed from here on
    _fill(store, rng, range(1500, 4000), late)
    assert store.evicted["spans"] > 0
    assert list(store.trace_order) == list(store.traces.values())
    assert _check(store, since) > 0
    store.search_index.sweep()
    assert _check(store, since) > 0


def test_search_matches_scan_when_values_are_hashed(monkeypatch):
    """A key with more values than are kept one by one (ids) is searched through hashed buckets, still exactly."""
    monkeypatch.setattr(search_index, "EXACT_VALUES", 8)
    monkeypatch.setattr(search_index, "_BUCKET_MASK", 7)
    rng = random.Random(7)
    store = Store(limits=Limits(max_spans=2000))
    late: list[dict[str, Any]] = []
    _fill(store, rng, range(1, 800), late)
    _check(store, NOW - 1200 * SECOND)
    _fill(store, rng, range(800, 1600), late)
    index = store.search_index
    assert not index.attributes["request.id"].exact and not index.attributes[semconv.ENDUSER_PSEUDO_ID].exact
    assert not index.names.exact or len(NAMES) < 8
    assert _check(store, NOW - 1200 * SECOND) > 0


def test_least_recently_searched_key_is_dropped_and_indexed_again():
    """Past the limit of indexed keys the oldest searched goes; searching it again reads the spans again."""
    rng = random.Random(9)
    store = Store(limits=Limits(max_spans=1000, max_indexed_keys=2))
    _fill(store, rng, range(1, 300), [])
    for key in ("shop.tier", "http.route", "deployment.environment"):
        explore.search_traces(store, explore.parse_filters(QueryParams(f"attr={key}%3Dx")), 0)
    assert list(store.search_index.attributes) == ["http.route", "deployment.environment"]
    assert store.search_index.keys_dropped == 1
    _fill(store, rng, range(300, 600), [])
    assert _check(store, NOW - 1200 * SECOND) > 0


def test_slowest_reads_only_the_longest_buckets():
    """kind=slow without filters stops at the buckets that hold the page (and pages like a full sort)."""
    rng = random.Random(4)
    store = Store()
    _fill(store, rng, range(1, 2000), [])
    seen: list[TraceSummary] = []

    def matches(t: TraceSummary) -> bool:
        seen.append(t)
        return True

    slowest = store.search_index.slowest(10, matches)
    every = sorted(store.traces.values(), key=lambda t: (t.end_ns - t.start_ns, t.seq), reverse=True)
    assert slowest == every[:10]
    assert len(seen) < len(every) // 4


def test_index_figures_count_every_entry_and_follow_eviction():
    """The index's keys and entries (shown by /api/services) are what it holds, and evicted traces leave it."""
    rng = random.Random(5)
    store = Store(limits=Limits(max_spans=3))
    spans = []
    for trace, (attrs, status) in enumerate([({"k": "x"}, 0), ({"k": 1}, 2), ({}, 0)], start=1):
        span = _span(rng, trace, 0) | {"name": "work", "attributes": attrs, "status_code": status, "kind": 1}
        span["resource"] = {semconv.SERVICE_NAME: "shop"}
        spans.append(span)
    store.add_spans(spans)
    explore.search_traces(store, explore.parse_filters(QueryParams("attr=k%3Dx")), 0)
    figures = store.search_index.memory()
    # per trace: its name (also its operation), its service and its duration bucket; one failed; k on two
    assert (figures["index_keys"], figures["index_entries"]) == (1, 3 * 3 + 1 + 2)
    assert figures["index_bytes"] > 0
    store.add_spans([_span(rng, 9, 0) | {"name": "later", "attributes": {}, "status_code": 0}])
    store.search_index.sweep()
    # trace 1 (k=x) evicted, trace 9 in
    assert store.search_index.memory()["index_entries"] == 2 * 3 + 1 + 1 + 3


def _log(rng: random.Random, i: int) -> dict[str, Any]:
    severity = rng.choice([(0, "INFO"), (0, "warn"), (13, ""), (17, "ERROR"), (0, ""), (9, "x")])
    return {
        "resource": {semconv.SERVICE_NAME: rng.choice(["shop", "pay"])},
        "scope": "t",
        "time_unix_nano": NOW - rng.randint(0, 1800) * SECOND,
        "severity_number": severity[0],
        "severity_text": severity[1],
        "body": rng.choice([f"Product {i} shown", "cart emptied", 42, {"product": i}]),
        "event_name": rng.choice(["", "shop.PRODUCT_viewed"]),
        "trace_id": rng.choice(["0" * 32, f"{i % 5:032x}"]),
        "span_id": "0" * 16,
        "attributes": {"n": i % 3},
    }


def _log_scan(store: Store, f: explore.Filters, since_ns: int) -> tuple[int, list[int]]:
    """(total, page of record numbers) by reading every record, newest first."""
    start_ns = max(since_ns, (f.start_ms or 0) * 1_000_000)
    needle = f.text.lower() if f.text else None
    found = [
        r
        for r in reversed(store.logs)
        if r["time_unix_nano"] >= start_ns
        and (f.after_seq is None or r["seq"] > f.after_seq)
        and (f.end_ms is None or r["time_unix_nano"] <= f.end_ms * 1_000_000)
        and (not f.service or r["service"] == f.service)
        and (not f.trace_id or r["trace_id"] == f.trace_id)
        and (f.level is None or explore._severity_number(r) >= f.level)
        and (not needle or needle in str(r["body"]).lower() or needle in r["event_name"].lower())
        and (not f.attributes or all(str(r["attributes"].get(k)) == v for k, v in f.attributes))
    ]
    return len(found), [r["seq"] for r in found[f.offset : f.offset + f.limit]]


def test_log_search_matches_scan_as_records_are_evicted():
    """Log search (window by blocks, the tail's ``after``, level and text) finds what reading every record finds."""
    rng = random.Random(6)
    store = Store(limits=Limits(max_logs=2500))
    since = NOW - 1200 * SECOND
    queries = ["", "level=warn", "level=error&q=product", "q=PRODUCT", "q=42", "service=pay&attr=n%3D1", "after={a}"]
    queries += ["after={a}&level=info", "trace_id=" + f"{3:032x}", "offset=30&limit=9", "end={old}"]
    queries += ["level=error&after={a}", "level=fatal", "level=trace", "level=error&offset=5&limit=3"]
    for round_ in range(4):
        store.add_logs([_log(rng, round_ * 1000 + i) for i in range(1000)])
        for query in queries:
            raw = query.replace("{a}", str(store.log_seq - 700)).replace(
                "{old}", str((NOW - 900 * SECOND) // 1_000_000)
            )
            f = explore.parse_filters(QueryParams(raw if "limit" in raw else raw + "&limit=500"))
            found = explore.search_logs(store, f, since)
            assert (found["total"], [r["seq"] for r in found["logs"]]) == _log_scan(store, f, since), query
    assert store.evicted["logs"] > 0


def test_operation_page_traces_match_scan_after_eviction():
    """An operation's example traces (the newest with it, at most the limit) are those a scan finds."""
    rng = random.Random(8)
    store = Store(limits=Limits(max_spans=1500))
    _fill(store, rng, range(1, 1500), [])
    since = NOW - 1200 * SECOND
    for operation in ("checkout", "POST /cart", "SELECT shop.db", "render"):
        for service in (None, "pay"):
            expected = [
                t.trace_id
                for t in reversed(store.traces.values())
                if t.end_ns >= since and operation in t.names and t.root_name and (not service or service in t.services)
            ][:20]
            found = explore.recent_traces_with(store, operation, service, since)
            assert [row["trace_id"] for row in found] == expected, (operation, service)
