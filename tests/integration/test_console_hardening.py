"""A console no OTLP request can break: poison is rejected or normalised at ingest, never stored raw.

Each poisoned request is one a sender could really send (protobuf built with
the OTLP classes); after it, and after a good request, every API endpoint must
answer without a 500, the good data must still show, and with ``--db`` the
same holds after the stored requests are replayed.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint

from otel_monitor import semconv
from otel_monitor.console.app import Console, create_app

PROTOBUF = {"Content-Type": "application/x-protobuf"}
ENDPOINTS = [
    "/api/services",
    "/api/summary",
    "/api/operations",
    "/api/errors",
    "/api/traces",
    "/api/metrics",
    "/api/funnels",
    "/api/health",
    "/api/alerts",
]


def _now() -> int:
    """Half a minute ago, when the item is built: a module constant would age past the window in a long run."""
    return time.time_ns() - 30 * 10**9


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bytes):
        return KeyValue(key=key, value=AnyValue(bytes_value=value))
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, dict):
        return KeyValue(
            key=key, value=AnyValue(kvlist_value=KeyValueList(values=[_kv(k, v) for k, v in value.items()]))
        )
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _spans(
    service: Any,
    name: str = "GET /items",
    attributes: dict[str, Any] | None = None,
    trace_id: bytes = b"\x01" * 16,
    span_id: bytes = b"\x02" * 8,
    parent: bytes = b"",
) -> bytes:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(_kv(semconv.SERVICE_NAME, service))
    span = rs.scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.parent_span_id, span.name = trace_id, span_id, parent, name
    span.kind = 2
    now = _now()
    span.start_time_unix_nano, span.end_time_unix_nano = now, now + 5_000_000
    for key, value in (attributes or {semconv.MONITOR_OPERATION: "browse"}).items():
        span.attributes.append(_kv(key, value))
    return request.SerializeToString()


def _histogram(
    total: float = 0.5,
    counts: tuple[int, ...] = (1, 1, 0),
    bounds: tuple[float, ...] = (0.1, 1.0),
    operation: str = "browse",
    service: str = "shop",
) -> bytes:
    now = _now()
    point = HistogramDataPoint(
        start_time_unix_nano=now,
        time_unix_nano=now + 10**9,
        count=sum(counts),
        sum=total,
        bucket_counts=list(counts),
        explicit_bounds=list(bounds),
        attributes=[_kv(semconv.MONITOR_OPERATION, operation)],
    )
    metric = Metric(
        name=semconv.METRIC_OPERATION_DURATION,
        unit="s",
        histogram=Histogram(data_points=[point], aggregation_temporality=2),
    )
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.append(_kv(semconv.SERVICE_NAME, service))
    rm.scope_metrics.add().metrics.append(metric)
    return request.SerializeToString()


def _health(value: float) -> bytes:
    now = _now()
    point = NumberDataPoint(
        time_unix_nano=now + 10**9,
        as_double=value,
        attributes=[_kv(semconv.MONITOR_HEALTH_CHECK, "db"), _kv(semconv.MONITOR_HEALTH_CRITICAL, True)],
    )
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.append(_kv(semconv.SERVICE_NAME, "shop"))
    rm.scope_metrics.add().metrics.append(Metric(name=semconv.METRIC_HEALTH_STATUS, gauge=Gauge(data_points=[point])))
    return request.SerializeToString()


POISON: dict[str, tuple[str, bytes]] = {
    "histogram with a NaN sum": ("metrics", _histogram(total=math.nan)),
    "histogram with an infinite sum": ("metrics", _histogram(total=math.inf)),
    "histogram with more buckets than bounds": ("metrics", _histogram(counts=(1, 1, 1, 1, 1))),
    "histogram with fewer buckets than bounds": ("metrics", _histogram(counts=(2,))),
    "histogram with decreasing bounds": ("metrics", _histogram(bounds=(1.0, 0.1))),
    "NaN health gauge": ("metrics", _health(math.nan)),
    "bytes service.name": ("traces", _spans(b"\xffshop")),
    "integer service.name": ("traces", _spans(42)),
    "map service.name": ("traces", _spans({"a": "b"})),
    "map monitor.operation": ("traces", _spans("shop", attributes={semconv.MONITOR_OPERATION: {"x": 1}})),
    "bytes and NaN attributes": (
        "traces",
        _spans("shop", attributes={"blob": b"\x00\xff", "ratio": math.nan, semconv.HTTP_RESPONSE_STATUS_CODE: "five"}),
    ),
    "a span that is its own parent": ("traces", _spans("shop", span_id=b"\x03" * 8, parent=b"\x03" * 8)),
}


def _client(console: Console) -> TestClient:
    return TestClient(
        create_app(console, evaluate_every=3600), base_url="http://127.0.0.1", raise_server_exceptions=False
    )


def _api_statuses(client: TestClient) -> dict[str, int]:
    statuses = {path: client.get(path).status_code for path in ENDPOINTS}
    statuses["/api/operations?service=shop"] = client.get("/api/operations?service=shop").status_code
    statuses["/api/traces/0101..."] = client.get("/api/traces/" + "01" * 16).status_code
    return statuses


@pytest.mark.parametrize("case", sorted(POISON))
def test_poison_never_makes_the_api_answer_500(case):
    """After a poisoned request (accepted or refused), every endpoint answers, and good data still shows."""
    console = Console()
    client = _client(console)
    signal, body = POISON[case]
    assert client.post(f"/v1/{signal}", content=body, headers=PROTOBUF).status_code in (200, 400)
    assert client.post("/v1/metrics", content=_histogram(), headers=PROTOBUF).status_code == 200
    assert client.post("/v1/traces", content=_spans("shop", trace_id=b"\x05" * 16), headers=PROTOBUF).status_code == 200
    console.alerts.evaluate()
    statuses = _api_statuses(client)
    assert all(status < 500 for status in statuses.values()), statuses
    services = {s["name"] if isinstance(s, dict) else s for s in client.get("/api/services").json()["services"]}
    assert "shop" in services


def test_rejected_points_are_counted_and_good_ones_kept():
    """A NaN histogram point is refused and counted; the same request's good point is stored."""
    console = Console()
    client = _client(console)
    client.post("/v1/metrics", content=_histogram(total=math.nan), headers=PROTOBUF)
    client.post("/v1/metrics", content=_histogram(operation="checkout"), headers=PROTOBUF)
    assert console.rejections.counts == {("metrics", "non-finite sum"): 1}
    rows = client.get("/api/operations?service=shop").json()["operations"]
    assert [r["operation"] for r in rows] == ["checkout"] and rows[0]["calls"] == 2


def test_service_name_of_the_wrong_type_is_normalised():
    """service.name sent as bytes or an integer is stored as text, a map as no name at all."""
    console = Console()
    client = _client(console)
    for i, service in enumerate((b"payments", 42, {"a": "b"})):
        client.post("/v1/traces", content=_spans(service, trace_id=bytes([i + 1]) * 16), headers=PROTOBUF)
    services = {s["name"] if isinstance(s, dict) else s for s in client.get("/api/services").json()["services"]}
    assert {"payments", "42", "unknown_service"} <= services


def test_attribute_limits_bound_a_span():
    """A span with thousands of attributes and megabyte values is stored cut to the limits."""
    from otel_monitor.console import validate

    console = Console()
    client = _client(console)
    attributes = {f"a{i}": "x" * 10 for i in range(5000)}
    attributes["big"] = "y" * 2_000_000
    client.post(
        "/v1/traces", content=_spans("shop", attributes={"big": "y" * 2_000_000, **attributes}), headers=PROTOBUF
    )
    detail = client.get("/api/traces/" + "01" * 16).json()
    span = detail["spans"][0]
    assert len(span["attributes"]) <= validate.MAX_ATTRIBUTES
    assert len(span["attributes"]["big"]) == validate.MAX_STRING


@pytest.mark.parametrize(
    "case",
    ["histogram with a NaN sum", "NaN health gauge", "bytes service.name", "histogram with more buckets than bounds"],
)
def test_poison_stored_with_db_is_not_replayed_raw(case, tmp_path):
    """With --db the poisoned request is stored and replayed at the next start: the API still answers."""
    db = str(tmp_path / "console.db")
    signal, body = POISON[case]
    first = Console(db=db)
    first.replay()
    client = _client(first)
    client.post(f"/v1/{signal}", content=body, headers=PROTOBUF)
    client.post("/v1/metrics", content=_histogram(), headers=PROTOBUF)
    first.close()
    second = Console(db=db)
    second.replay()
    second.alerts.evaluate()
    statuses = _api_statuses(_client(second))
    second.close()
    assert all(status < 500 for status in statuses.values()), statuses


# --- the HTTP surface: origin, token, cookie, framing, loopback, slow clients ------------------

TOKEN = "a-console-token-of-24-chars"


def _gate_client(console: Console, base_url: str = "http://127.0.0.1:4318") -> TestClient:
    return TestClient(
        create_app(console, evaluate_every=3600),
        base_url=base_url,
        raise_server_exceptions=False,
        follow_redirects=False,
    )


@pytest.mark.parametrize("token", [None, TOKEN])
def test_cross_origin_acknowledgement_is_refused(token):
    """POST /api/alerts/{id}/ack from a page on another loopback port gets 403; from the console's own page, not."""
    console = Console(token=token)
    client = _gate_client(console)
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    foreign = client.post(
        "/api/alerts/x/ack", headers={**auth, "Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-site"}
    )
    assert foreign.status_code == 403 and "cross-origin" in foreign.json()["error"]
    assert client.post("/api/alerts/x/ack", headers={**auth, "Sec-Fetch-Site": "cross-site"}).status_code == 403
    own = client.post(
        "/api/alerts/x/ack", headers={**auth, "Origin": "http://127.0.0.1:4318", "Sec-Fetch-Site": "same-origin"}
    )
    assert own.status_code != 403
    # A browser page posting OTLP from elsewhere is refused too; exporters send no Origin.
    assert (
        client.post(
            "/v1/metrics", content=_histogram(), headers={**PROTOBUF, **auth, "Origin": "http://evil.example"}
        ).status_code
        == 403
    )
    assert client.post("/v1/metrics", content=_histogram(), headers={**PROTOBUF, **auth}).status_code == 200


def test_short_token_is_refused():
    """A token under 16 characters is refused at start, with the variable named."""
    from otel_monitor.console.cli import ConsoleStartError, build_console

    with pytest.raises(ConsoleStartError, match="OTEL_MONITOR_CONSOLE_TOKEN is 1 characters long: use at least 16"):
        build_console(token="x")
    with pytest.raises(ValueError, match="at least 16"):
        create_app(Console(token="short-token"))


def test_cookie_is_signed_expiring_and_secure_over_tls():
    """The UI cookie carries no digest of the token, has a Max-Age, is Secure over https, and a forged one fails."""
    import hashlib

    console = Console(token=TOKEN)
    for scheme in ("http", "https"):
        client = _gate_client(console, f"{scheme}://127.0.0.1:4318")
        answer = client.get(f"/?token={TOKEN}")
        assert answer.status_code == 303
        header = answer.headers["set-cookie"]
        assert "Max-Age=43200" in header and "HttpOnly" in header and "SameSite=Strict" in header
        assert ("Secure" in header) == (scheme == "https")
        value = header.split(";")[0].split("=", 1)[1]
        assert hashlib.sha256(b"otel-monitor-console:" + TOKEN.encode()).hexdigest() not in value
        assert client.get("/api/summary", headers={"Cookie": f"otel_monitor_console_token={value}"}).status_code == 200
        expires, mac = value.split(".")
        for forged in (f"{int(expires) + 10**6}.{mac}", f"{int(time.time()) - 10}.{mac}", mac):
            assert (
                client.get("/api/summary", headers={"Cookie": f"otel_monitor_console_token={forged}"}).status_code
                == 401
            )


def test_an_expired_cookie_is_refused():
    """A cookie past its lifetime no longer opens the console."""
    from otel_monitor.console.app import TokenGate

    gate = TokenGate(create_app(Console(), evaluate_every=3600), TOKEN)
    stale = gate.cookie_value(int(time.time()) - 1)
    assert not gate._cookie_matches({b"cookie": f"otel_monitor_console_token={stale}".encode()})
    fresh = gate.cookie_value(int(time.time()) + 60)
    assert gate._cookie_matches({b"cookie": f"otel_monitor_console_token={fresh}".encode()})


def test_the_ui_may_not_be_framed():
    """The page forbids framing: CSP frame-ancestors 'none' and X-Frame-Options DENY."""
    answer = _gate_client(Console()).get("/")
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("host", ["127.0.0.2", "127.1.2.3", "localhost", "[::1]"])
def test_every_loopback_address_is_loopback(host):
    """A console on 127.0.0.2 (any of 127.0.0.0/8) answers requests naming it; a foreign name still gets 403."""
    console = Console()
    assert _gate_client(console, f"http://{host}:4318").get("/api/summary").status_code == 200
    assert _gate_client(console, "http://attacker.example:4318").get("/api/summary").status_code == 403


@pytest.mark.slow
def test_slow_client_flood_keeps_ingest_alive(monkeypatch):
    """Clients that never finish their headers are closed after the read timeout, and past the connection
    cap the longest-waiting is closed first: OTLP ingest keeps being answered throughout."""
    import socket

    from otel_monitor.console import server
    from otel_monitor.console.cli import serve
    from tests.support.console_telemetry import post

    monkeypatch.setattr(server, "READ_TIMEOUT_S", 1.0)
    monkeypatch.setattr(server, "MAX_CONNECTIONS", 40)
    with serve(port=0, evaluate_every=3600) as handle:
        dribblers = []
        for _ in range(80):
            sock = socket.create_connection(("127.0.0.1", handle.port), timeout=5)
            sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n")
            dribblers.append(sock)
        assert post(f"{handle.url}/v1/metrics", _histogram())[0] == 200
        closed = 0
        deadline = time.monotonic() + 15
        for sock in dribblers:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                closed += sock.recv(1) == b""
            except (TimeoutError, ConnectionResetError):
                closed += isinstance(sys.exc_info()[1], ConnectionResetError)
            sock.close()
        assert closed == len(dribblers)
        assert post(f"{handle.url}/v1/metrics", _histogram())[0] == 200


def test_one_span_keeps_at_most_its_character_budget():
    """A span with many events of many large attributes is stored within MAX_ITEM_CHARS of text."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue as Value

    from otel_monitor.console import validate

    now = _now()
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(_kv(semconv.SERVICE_NAME, "shop"))
    span = rs.scope_spans.add().spans.add(
        trace_id=b"\x07" * 16, span_id=b"\x08" * 8, name="big", start_time_unix_nano=now, end_time_unix_nano=now + 1
    )
    for i in range(100):
        event = span.events.add(name=f"event {i}", time_unix_nano=now)
        for j in range(20):
            event.attributes.add(key=f"k{j}", value=Value(string_value="z" * 4000))
    console = Console()
    assert _client(console).post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF).status_code == 200
    stored = _client(console).get("/api/traces/" + "07" * 16).json()["spans"][0]
    text = sum(len(k) + len(v) for e in stored["events"] for k, v in e["attributes"].items())
    assert text <= validate.MAX_ITEM_CHARS and len(stored["events"]) < 100


def test_a_long_stack_trace_keeps_its_innermost_frames():
    """A stack trace past the limit loses its outer frames, not the app's frame and the exception line."""
    from otel_monitor.console import validate

    outer = "".join(
        f'  File "/a/long/venv/path/lib/python3.11/site-packages/framework/layer{i}.py", line {i}, in call\n'
        f"    await app(scope, receive, send)\n"
        for i in range(100)
    )
    inner = '  File "/srv/myproject/myapp.py", line 9, in an_endpoint_that_raises\n    raise RuntimeError("down")\n'
    trace = "Traceback (most recent call last):\n" + outer + inner + "RuntimeError: down"
    kept = validate.clean_attributes({semconv.EXCEPTION_STACKTRACE: trace})[semconv.EXCEPTION_STACKTRACE]
    assert len(kept) == validate.MAX_STRING < len(trace)
    assert kept.endswith(inner + "RuntimeError: down") and kept.startswith("…\n")
