"""The console's guard rails: token, loopback, size limits, malformed OTLP."""

from __future__ import annotations

import gzip
import http.client
import urllib.error
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_monitor.console.cli import ConsoleStartError, build_console, serve
from tests.support.console_telemetry import get, post, tracer


@pytest.fixture(scope="module")
def console():
    with serve(port=0, max_body=64 * 1024, evaluate_every=3600) as handle:
        yield handle


def _valid_body() -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, "GET /ok"
    span.start_time_unix_nano, span.end_time_unix_nano = 1, 2
    return request.SerializeToString()


def test_non_loopback_bind_without_token_refuses_to_start(monkeypatch):
    """Listening beyond loopback without OTEL_MONITOR_CONSOLE_TOKEN is refused with the variable named."""
    monkeypatch.delenv("OTEL_MONITOR_CONSOLE_TOKEN", raising=False)
    with pytest.raises(ConsoleStartError, match="OTEL_MONITOR_CONSOLE_TOKEN"):
        build_console(host="0.0.0.0")


def test_token_is_required_for_api_ui_and_ingest():
    """With a token, requests without it get 401; bearer and the UI cookie are accepted."""
    with serve(port=0, token="s3cret-token-0123456", evaluate_every=3600) as handle:
        for path in ("/api/summary", "/"):
            with pytest.raises(urllib.error.HTTPError) as failure:
                urllib.request.urlopen(handle.url + path)
            assert failure.value.code == 401
        assert post(f"{handle.url}/v1/traces", _valid_body())[0] == 401
        assert post(f"{handle.url}/v1/traces", _valid_body(), headers={"Authorization": "Bearer wrong"})[0] == 401
        bearer = {"Authorization": "Bearer s3cret-token-0123456"}
        with tracer(handle.url, headers=bearer) as t, t.start_as_current_span("GET /a"):
            pass
        assert get(f"{handle.url}/api/services", token="s3cret-token-0123456")["received"]["spans"] == 1
        conn = http.client.HTTPConnection("127.0.0.1", handle.port)
        conn.request("GET", "/?token=s3cret-token-0123456")
        response = conn.getresponse()
        assert response.status == 303
        cookie = response.getheader("set-cookie").split(";")[0]
        response.read()
        conn.request("GET", "/api/summary", headers={"Cookie": cookie})
        assert conn.getresponse().status == 200


def test_foreign_host_header_is_refused_without_token(console):
    """Without a token only loopback Host names are served (no DNS rebinding)."""
    conn = http.client.HTTPConnection("127.0.0.1", console.port)
    conn.request("GET", "/api/summary", headers={"Host": "evil.example:4318"})
    assert conn.getresponse().status == 403


def test_oversized_body_gets_413(console):
    """A body over the limit is refused with 413 before it is read."""
    status, body = post(f"{console.url}/v1/traces", b"\0" * (64 * 1024 + 1))
    assert status == 413 and b"limit" in body


def test_gzip_bomb_is_refused(console):
    """A compressed body that inflates past the limit is a 400 naming the limit."""
    status, body = post(
        f"{console.url}/v1/traces", gzip.compress(b"\0" * (1024 * 1024)), headers={"Content-Encoding": "gzip"}
    )
    assert status == 400 and b"limit" in body


def test_malformed_protobuf_is_400_naming_the_problem_and_serving_continues(console):
    """A broken protobuf body gets 400 with the reason; the next valid request is accepted."""
    status, body = post(f"{console.url}/v1/traces", b"\x0a\xff\xff\xff")
    assert status == 400 and b"ExportTraceServiceRequest" in body
    assert post(f"{console.url}/v1/traces", _valid_body())[0] == 200
    assert get(f"{console.url}/api/summary")["services"]


def test_wrong_content_type_is_415_naming_the_supported_ones(console):
    """An unsupported Content-Type is refused with 415 (as OTLP/HTTP says), naming protobuf and JSON."""
    status, body = post(f"{console.url}/v1/logs", b"hello", content_type="text/plain")
    assert status == 415 and b"application/x-protobuf" in body


def test_otlp_json_is_accepted(console):
    """OTLP/JSON bodies are decoded like protobuf ones."""
    body = (
        b'{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-svc"}}]},'
        b'"scopeSpans":[{"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331",'
        b'"name":"GET /json","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}'
    )
    assert post(f"{console.url}/v1/traces", body, content_type="application/json")[0] == 200
    assert "json-svc" in get(f"{console.url}/api/services")["services"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=2048),
        st.text(max_size=512).map(str.encode),
        st.just(_valid_body()).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n])),
    ),
    content_type=st.sampled_from(["application/x-protobuf", "application/json", "text/plain", ""]),
    signal=st.sampled_from(["traces", "metrics", "logs"]),
)
def test_fuzzed_bodies_never_break_the_console(console, body, content_type, signal):
    """Random, truncated and mistyped bodies get 200, 400 or 415, never a server error."""
    status, _ = post(f"{console.url}/v1/{signal}", body, content_type=content_type)
    assert status in (200, 400, 415)
    assert get(f"{console.url}/api/summary")["window"] == "15m"
