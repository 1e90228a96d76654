"""Fuzzing the OTLP decoders and the console's ingest validation (hypothesis).

Arbitrary bytes, truncated and mutated valid bodies, and structurally valid
requests full of hostile values (NaN and infinite doubles, bytes and deep maps
where names go, buckets that do not match bounds) go through
``parse_request`` in protobuf and JSON, the flatteners and
``console.validate.clean_items``.  The only exception allowed is
``OTLPDecodeError``, and what validation lets through is JSON a browser can
read (no NaN, no bytes).  Example counts and sizes are bounded.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from otel_monitor.console.validate import clean_items
from otel_monitor.otlp.decode import FLATTEN, OTLPDecodeError, parse_request

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONTENT_TYPES = ["application/x-protobuf", "application/json", "application/protobuf; charset=x", "text/plain", ""]

doubles = st.floats(allow_nan=True, allow_infinity=True)
keys = st.sampled_from(
    [
        "service.name",
        "monitor.operation",
        "http.response.status_code",
        "error.type",
        "monitor.health.check",
        "monitor.health.critical",
        "x",
        "",
    ]
) | st.text(max_size=8)

any_values: st.SearchStrategy[AnyValue] = st.recursive(
    st.one_of(
        st.text(max_size=20).map(lambda v: AnyValue(string_value=v)),
        st.binary(max_size=20).map(lambda v: AnyValue(bytes_value=v)),
        st.integers(-(2**63), 2**63 - 1).map(lambda v: AnyValue(int_value=v)),
        doubles.map(lambda v: AnyValue(double_value=v)),
        st.booleans().map(lambda v: AnyValue(bool_value=v)),
        st.just(AnyValue()),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda vs: AnyValue(array_value=ArrayValue(values=vs))),
        st.lists(st.tuples(keys, inner), max_size=4).map(
            lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs]))
        ),
    ),
    max_leaves=12,
)
attribute_lists = st.lists(st.tuples(keys, any_values), max_size=6).map(
    lambda kvs: [KeyValue(key=k, value=v) for k, v in kvs]
)
ids = st.binary(min_size=0, max_size=17)
nanos = st.integers(0, 2**64 - 1)


@st.composite
def trace_requests(draw: Any) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(1, 2))):
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(draw(attribute_lists))
        for _ in range(draw(st.integers(0, 3))):
            span = rs.scope_spans.add().spans.add(
                trace_id=draw(ids),
                span_id=draw(ids),
                parent_span_id=draw(ids),
                name=draw(st.text(max_size=20)),
                kind=draw(st.integers(0, 5)),
                start_time_unix_nano=draw(nanos),
                end_time_unix_nano=draw(nanos),
            )
            span.attributes.extend(draw(attribute_lists))
            span.status.code = draw(st.integers(0, 2))
            span.status.message = draw(st.text(max_size=10))
            for _ in range(draw(st.integers(0, 2))):
                event = span.events.add(name=draw(st.text(max_size=10)), time_unix_nano=draw(nanos))
                event.attributes.extend(draw(attribute_lists))
    return request


@st.composite
def metric_requests(draw: Any) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.extend(draw(attribute_lists))
    sm = rm.scope_metrics.add()
    for _ in range(draw(st.integers(0, 4))):
        metric = sm.metrics.add(
            name=draw(
                st.sampled_from(["monitor.operation.duration", "monitor.health.status", "x"]) | st.text(max_size=8)
            )
        )
        kind = draw(st.sampled_from(["gauge", "sum", "histogram", "exponential_histogram", "summary"]))
        data = getattr(metric, kind)
        point = data.data_points.add(time_unix_nano=draw(nanos), start_time_unix_nano=draw(nanos))
        point.attributes.extend(draw(attribute_lists))
        if kind in ("gauge", "sum"):
            point.as_double = draw(doubles)
        else:
            point.count = draw(st.integers(0, 2**64 - 1))
            point.sum = draw(doubles)
        if kind == "histogram":
            point.bucket_counts.extend(draw(st.lists(st.integers(0, 2**64 - 1), max_size=6)))
            point.explicit_bounds.extend(draw(st.lists(doubles, max_size=6)))
            if draw(st.booleans()):
                point.min, point.max = draw(doubles), draw(doubles)
        if kind in ("sum", "histogram", "exponential_histogram"):
            data.aggregation_temporality = draw(st.integers(0, 2))
    return request


@st.composite
def log_requests(draw: Any) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.extend(draw(attribute_lists))
    for _ in range(draw(st.integers(0, 3))):
        record = rl.scope_logs.add().log_records.add(
            time_unix_nano=draw(nanos),
            severity_number=draw(st.integers(0, 24)),
            severity_text=draw(st.text(max_size=8)),
            trace_id=draw(ids),
            span_id=draw(ids),
            event_name=draw(st.text(max_size=10)),
        )
        record.body.CopyFrom(draw(any_values))
        record.attributes.extend(draw(attribute_lists))
    return request


REQUESTS = {"traces": trace_requests(), "metrics": metric_requests(), "logs": log_requests()}


def _decoded_and_cleaned(signal: str, body: bytes, content_type: str) -> None:
    """Decode and validate; only OTLPDecodeError may escape, and what is kept is strict JSON."""
    try:
        message = parse_request(signal, body, content_type)
    except OTLPDecodeError:
        return
    items = clean_items(signal, FLATTEN[signal](message))
    json.dumps(items, allow_nan=False)


@FUZZ
@given(
    signal=st.sampled_from(sorted(REQUESTS)), body=st.binary(max_size=4096), content_type=st.sampled_from(CONTENT_TYPES)
)
def test_arbitrary_bytes_only_raise_the_decode_error(signal, body, content_type):
    """Random bytes in any content type: a decode error or a clean request, nothing else."""
    _decoded_and_cleaned(signal, body, content_type)


@FUZZ
@given(data=st.data(), signal=st.sampled_from(sorted(REQUESTS)))
def test_hostile_valid_requests_come_out_clean(data, signal):
    """Structurally valid requests full of hostile values decode, and validation leaves strict JSON."""
    request = data.draw(REQUESTS[signal])
    body = request.SerializeToString()
    _decoded_and_cleaned(signal, body, "application/x-protobuf")
    document = json_format.MessageToJson(request)
    _decoded_and_cleaned(signal, document.encode(), "application/json")


@FUZZ
@given(data=st.data(), signal=st.sampled_from(sorted(REQUESTS)))
def test_truncated_and_mutated_requests_only_raise_the_decode_error(data, signal):
    """A valid body cut short or with bytes flipped: a decode error or a clean request."""
    body = bytearray(data.draw(REQUESTS[signal]).SerializeToString())
    if body:
        for _ in range(data.draw(st.integers(0, 4))):
            body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
        body = body[: data.draw(st.integers(0, len(body)))]
    _decoded_and_cleaned(signal, bytes(body), "application/x-protobuf")


@FUZZ
@given(depth=st.integers(1, 3000), signal=st.sampled_from(sorted(REQUESTS)))
def test_deep_json_only_raises_the_decode_error(depth, signal):
    """JSON nested thousands deep is refused as a decode error, never a RecursionError."""
    body = ('{"resourceSpans": ' + "[" * depth + "]" * depth + "}").encode()
    _decoded_and_cleaned(signal, body, "application/json")


# --- the JSON API over fuzzed data and fuzzed queries --------------------------------------------

QUERY_KEYS = [
    "service",
    "window",
    "kind",
    "name",
    "group_by",
    "q",
    "limit",
    "severity",
    "attribute",
    "status",
    "operation",
    "trace_id",
    "since",
    "until",
    "min_duration_ms",
    "x",
]
texts = st.text(max_size=12) | st.sampled_from(["", "0", "-1", "nan", "inf", "1e309", "15m", "shop", "%", "\x00"])


def _api_paths() -> list[str]:
    from otel_monitor.console import api

    return [route.path for route in api.ROUTES if "GET" in (route.methods or ()) and route.path != "/api/events"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_api_never_answers_500(data):
    """Fuzzed OTLP in, then every GET endpoint with fuzzed query and path values: no 500, strict JSON out."""
    from fastapi.testclient import TestClient

    from otel_monitor.console.app import Console, create_app

    console = Console()
    client = TestClient(
        create_app(console, evaluate_every=3600), base_url="http://127.0.0.1", raise_server_exceptions=False
    )
    for signal in sorted(REQUESTS):
        body = data.draw(REQUESTS[signal]).SerializeToString()
        assert client.post(
            f"/v1/{signal}", content=body, headers={"Content-Type": "application/x-protobuf"}
        ).status_code in (200, 400)
    console.alerts.evaluate()
    for path in _api_paths():
        concrete = path.replace("{name:path}", quote(data.draw(texts), safe="") or "x").replace(
            "{trace_id}", quote(data.draw(texts), safe="") or "x"
        )
        params = data.draw(st.dictionaries(st.sampled_from(QUERY_KEYS), texts, max_size=3))
        answer = client.get(concrete, params=params)
        assert answer.status_code < 500, (concrete, params, answer.text[:300])
        if answer.headers.get("content-type", "").startswith("application/json"):
            json.loads(answer.text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
