"""The console's explorer API: trace search, a trace in full, logs, any metric charted, resources, events."""

from __future__ import annotations

import time
from typing import Any

import pytest
from starlette.testclient import TestClient

from otel_monitor import semconv
from otel_monitor.console.app import Console, create_app
from otel_monitor.console.explore import display_name
from otel_monitor.console.validate import clean_items

NOW = time.time_ns()


@pytest.fixture(autouse=True)
def _now_is_when_the_test_runs() -> None:
    """Items are stamped when each test runs: a time taken at import ages out of the window in a long run."""
    global NOW
    NOW = time.time_ns()


MINUTE = 60 * 10**9
PY = {
    semconv.SERVICE_NAME: "shop",
    semconv.SERVICE_INSTANCE_ID: "i-1",
    semconv.TELEMETRY_SDK_NAME: "opentelemetry",
    semconv.TELEMETRY_SDK_LANGUAGE: "python",
    semconv.TELEMETRY_SDK_VERSION: "1.45.1",
    semconv.TELEMETRY_DISTRO_NAME: "otel-monitor",
    semconv.TELEMETRY_DISTRO_VERSION: "0.9.0",
}
JS = {semconv.SERVICE_NAME: "js-shop", semconv.SERVICE_INSTANCE_ID: "js-1"}


def _span(
    trace: str,
    span: str,
    name: str,
    ms: float,
    parent: str = "",
    status: int = 0,
    resource: dict[str, Any] = PY,
    start: int | None = None,
    **attrs: Any,
) -> dict[str, Any]:
    begin = NOW - 10**9 if start is None else start
    return {
        "resource": resource,
        "scope": "tests",
        "trace_id": trace * 16,
        "span_id": span * 8,
        "parent_span_id": parent * 8 if parent else "",
        "name": name,
        "kind": 2,
        "start_time_unix_nano": begin,
        "end_time_unix_nano": begin + int(ms * 1e6),
        "attributes": attrs,
        "events": [],
        "status_code": status,
        "status_message": "",
        "links": [],
    }


def _log(
    body: str,
    severity: int = 9,
    text: str = "",
    trace: str = "",
    span: str = "",
    resource: dict[str, Any] = PY,
    **attrs: Any,
) -> dict[str, Any]:
    return {
        "resource": resource,
        "scope": "tests",
        "time_unix_nano": NOW - 5 * 10**8,
        "severity_number": severity,
        "severity_text": text,
        "body": body,
        "attributes": attrs,
        "event_name": "",
        "trace_id": trace * 16 if trace else "",
        "span_id": span * 8 if span else "",
    }


def _point(
    name: str, kind: str, value: float, t: int, start: int, resource: dict[str, Any] = PY, **attrs: Any
) -> dict[str, Any]:
    point = {
        "resource": resource,
        "scope": "tests",
        "name": name,
        "unit": "{order}",
        "type": kind,
        "attributes": attrs,
        "start_time_unix_nano": start,
        "time_unix_nano": t,
        "value": value,
    }
    if kind == "sum":
        point.update(monotonic=True, temporality=2)
    return point


@pytest.fixture
def console() -> Console:
    c = Console()
    store = c.store
    store.add_spans(
        clean_items(
            "traces",
            [
                _span("a1", "01", "POST /checkout", 250.0, status=2, **{"shop.cart": "c-7"}),
                _span(
                    "a1",
                    "02",
                    "SELECT /tmp/pytest/shop.db",
                    0.42,
                    parent="01",
                    **{semconv.DB_SYSTEM_NAME: "sqlite", semconv.DB_STATEMENT_OLD: "SELECT 1"},
                ),
                _span("a1", "03", "GET /stock/{sku}", 3.0, parent="01", resource=JS),
                _span("b2", "04", "GET /items/{id}", 12.0, **{"shop.tier": "gold"}),
                _span("c3", "05", "GET /items/{id}", 40.0, **{"shop.tier": "basic"}),
                _span("d4", "06", "loop", 1.0, parent="06"),
            ],
        )
    )
    store.add_logs(
        clean_items(
            "logs",
            [
                _log("charging card", trace="a1", span="01"),
                _log("checkout failed", 17, trace="a1", span="01", **{"shop.cart": "c-7"}),
                _log("stock low", 0, "WARN", trace="a1", span="03", resource=JS),
                _log("debug noise", 5),
            ],
        )
    )
    return c


@pytest.fixture
def client(console: Console) -> TestClient:
    return TestClient(create_app(console, evaluate_every=3600), base_url="http://127.0.0.1")


def _ids(answer: dict[str, Any]) -> list[str]:
    return [t["trace_id"][:2] for t in answer["traces"]]


def test_trace_search_filters(client):
    """Every filter narrows the list to the traces it names; total counts all matches."""
    assert client.get("/api/traces").json()["total"] == 4
    assert _ids(client.get("/api/traces?operation=GET /items/{id}").json()) == ["c3", "b2"]
    assert _ids(client.get("/api/traces?operation=SELECT shop.db").json()) == ["a1"]
    assert _ids(client.get("/api/traces?attr=shop.tier=gold").json()) == ["b2"]
    assert _ids(client.get("/api/traces?attr=telemetry.sdk.language=python&status=error").json()) == ["a1"]
    assert _ids(client.get("/api/traces?status=ok&min_ms=10&max_ms=20").json()) == ["b2"]
    assert _ids(client.get("/api/traces?service=js-shop").json()) == ["a1"]
    assert _ids(client.get("/api/traces?kind=slow").json()) == ["a1", "c3", "b2", "d4"]
    assert client.get(f"/api/traces?end={(NOW - 60 * 10**9) // 10**6}").json()["total"] == 0
    page = client.get("/api/traces?limit=2&offset=2").json()
    assert (page["total"], page["offset"], len(page["traces"])) == (4, 2, 2)


@pytest.mark.parametrize(
    "query", ["status=bad", "min_ms=x", "min_ms=-1", "attr=novalue", "limit=zz", "kind=odd", "window=7d"]
)
def test_bad_trace_filters_get_400_naming_them(client, query):
    answer = client.get(f"/api/traces?{query}")
    assert answer.status_code == 400
    assert query.split("=")[0] in answer.json()["error"]


def test_trace_detail_in_full(client):
    """Resource, links, DB statement, the µs duration, logs of both services by time, a self-parent span."""
    trace = client.get("/api/traces/" + "a1" * 16).json()
    assert trace["services"] == ["js-shop", "shop"]
    db = next(s for s in trace["spans"] if s["span_id"] == "02" * 8)
    assert (db["display_name"], db["db_statement"], db["duration_us"]) == ("SELECT shop.db", "SELECT 1", 420.0)
    assert db["resource"][semconv.TELEMETRY_SDK_LANGUAGE] == "python"
    assert [log["body"] for log in trace["logs"]] == ["charging card", "checkout failed", "stock low"]
    http = next(s for s in trace["spans"] if s["span_id"] == "03" * 8)
    assert http["display_name"] == "GET /stock/{sku}"
    loop = client.get("/api/traces/" + "d4" * 16).json()
    assert loop["spans"][0]["parent_span_id"] == loop["spans"][0]["span_id"]


def test_display_name_cuts_paths_of_database_spans_only():
    assert display_name("SELECT /tmp/pytest-of-x/shop/shop.db") == "SELECT shop.db"
    assert display_name("query /var/lib/app.db", {semconv.DB_SYSTEM: "sqlite"}) == "query app.db"
    assert display_name("GET /static/app.js") == "GET /static/app.js"


def test_logs_filters_and_tail(client, console):
    everything = client.get("/api/logs").json()
    assert [log["body"] for log in everything["logs"]] == [
        "debug noise",
        "stock low",
        "checkout failed",
        "charging card",
    ]
    warn = client.get("/api/logs?level=warn").json()
    assert [(log["body"], log["severity"]) for log in warn["logs"]] == [
        ("stock low", "WARN"),
        ("checkout failed", "ERROR"),
    ]
    assert client.get("/api/logs?service=js-shop").json()["total"] == 1
    assert client.get("/api/logs?q=CARD").json()["total"] == 1
    assert client.get("/api/logs?attr=shop.cart=c-7").json()["total"] == 1
    assert client.get("/api/logs?trace_id=" + "a1" * 16).json()["total"] == 3
    assert client.get("/api/logs?span_id=" + "03" * 8).json()["logs"][0]["service"] == "js-shop"
    assert client.get("/api/logs?level=loud").status_code == 400
    assert client.get("/api/logs?trace_id=xyz").status_code == 400
    # The tail: only records after the last one seen.
    last = everything["last_seq"]
    assert client.get(f"/api/logs?after={last}").json()["logs"] == []
    console.store.add_logs(clean_items("logs", [_log("new one")]))
    newer = client.get(f"/api/logs?after={last}").json()
    assert [log["body"] for log in newer["logs"]] == ["new one"] and newer["last_seq"] == last + 1


def test_metric_series_by_kind_and_group(client, console):
    """A cumulative sum's per-minute increase as a rate, grouped by an attribute; a gauge summed over
    instances; a restart counts from zero; unknown names 404."""
    minute = (NOW // MINUTE) * MINUTE
    start = console.store.started_ns
    add = console.store.add_metric_points
    add(
        clean_items(
            "metrics",
            [
                _point("orders", "sum", 3, minute - MINUTE + 1, start, payment="card"),
                _point("orders", "sum", 1, minute - MINUTE + 1, start, payment="cash"),
            ],
        )
    )
    add(
        clean_items(
            "metrics",
            [
                _point("orders", "sum", 9, minute + 1, start, payment="card"),
                _point("orders", "sum", 2, minute + 1, start, payment="cash"),
            ],
        )
    )
    series = client.get("/api/metrics/series?name=orders&group_by=payment&window=5m").json()
    assert (series["kind"], series["stat"], series["unit"]) == ("sum", "rate", "{order}")
    rates = {g["group"]: [p["v"] for p in g["points"][-2:]] for g in series["groups"]}
    assert rates == {"payment=card": [3 / 60, 6 / 60], "payment=cash": [1 / 60, 1 / 60]}
    # One line per service without a grouping.
    assert [g["group"] for g in client.get("/api/metrics/series?name=orders&window=5m").json()["groups"]] == ["shop"]
    # A restarted process (a new start time) counts from zero.
    add(clean_items("metrics", [_point("orders", "sum", 4, minute + 2, minute + 1, payment="card")]))
    card = client.get("/api/metrics/series?name=orders&group_by=payment&window=5m").json()["groups"][0]
    assert card["points"][-1]["v"] == pytest.approx(10 / 60)
    add(
        clean_items(
            "metrics",
            [
                _point("depth", "gauge", 7, minute + 1, 0),
                _point("depth", "gauge", 5, minute + 1, 0, resource={**PY, semconv.SERVICE_INSTANCE_ID: "i-2"}),
            ],
        )
    )
    gauge = client.get("/api/metrics/series?name=depth&window=5m").json()
    assert gauge["groups"][0]["points"][-1]["v"] == 12
    by_instance = client.get("/api/metrics/series?name=depth&window=5m&group_by=service.instance.id").json()
    assert {g["group"]: g["points"][-1]["v"] for g in by_instance["groups"]} == {
        "service.instance.id=i-1": 7,
        "service.instance.id=i-2": 5,
    }
    listed = {m["name"]: m for m in client.get("/api/metrics").json()["metrics"]}
    assert listed["orders"]["attribute_keys"] == ["payment", "service.instance.id"]
    assert client.get("/api/metrics/series?name=nothing").status_code == 404
    assert client.get("/api/metrics/series").status_code == 400


def test_metric_series_histogram_percentiles(client, console):
    minute = (NOW // MINUTE) * MINUTE
    point = {
        "resource": PY,
        "scope": "t",
        "name": "latency",
        "unit": "s",
        "type": "histogram",
        "attributes": {},
        "start_time_unix_nano": console.store.started_ns,
        "time_unix_nano": minute + 1,
        "count": 4,
        "sum": 0.7,
        "bucket_counts": [0, 3, 1],
        "explicit_bounds": [0.01, 0.1],
        "temporality": 2,
        "min": 0.02,
        "max": 0.5,
    }
    console.store.add_metric_points(clean_items("metrics", [point]))
    last = client.get("/api/metrics/series?name=latency&window=5m").json()["groups"][0]["points"][-1]
    assert last["count"] == 4 and last["p99"] == pytest.approx(0.5 - (0.5 - 0.1) * 0.04 * 4 / 4, rel=0.05)
    assert 0.02 <= last["p50"] <= 0.1


def test_resources(client, console):
    """Each instance with its resource, SDK and distro, first and last seen; silent ones stale."""
    services = {s["service"]: s for s in client.get("/api/resources").json()["services"]}
    shop = services["shop"]["instances"][0]
    assert (shop["sdk"], shop["distro"]) == ("opentelemetry python 1.45.1", "otel-monitor 0.9.0")
    assert shop["first_seen"] <= shop["last_seen"] and not shop["stale"]
    assert services["js-shop"]["instances"][0]["sdk"] is None
    console.store.stale_after_ns = 1
    assert all(s["stale"] for s in client.get("/api/resources").json()["services"])


def test_events_stream_tells_of_new_data(client):
    with client.stream("GET", "/api/events?max=1&interval=0.1") as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        body = answer.read().decode()
    assert "event: update" in body and '"last_log": 4' in body
    assert client.get("/api/events?interval=x").status_code == 400
