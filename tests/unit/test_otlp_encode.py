"""Our span encoder writes exactly what the SDK's encoder means, as opentelemetry-proto reads it."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from otel_monitor.otlp.encode import encode_spans, gzip_fast


def same_as_sdk(spans) -> None:
    ours = ExportTraceServiceRequest.FromString(encode_spans(spans))
    assert ours == sdk_encode_spans(spans)


def recorded_spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "shop", "service.instance.id": "abc"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("fastapi", "0.165", schema_url="https://opentelemetry.io/schemas/1.44.0")
    other = provider.get_tracer("opentelemetry.instrumentation.sqlalchemy", "0.66b1")
    remote = SpanContext(
        0xABC,
        0xDEF,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "x1"), ("other", "y")]),
    )
    from opentelemetry.trace import NonRecordingSpan, set_span_in_context

    with tracer.start_as_current_span(
        "GET /items/{id}",
        kind=SpanKind.SERVER,
        context=set_span_in_context(NonRecordingSpan(remote)),
        attributes={
            "http.route": "/items/{id}",
            "http.response.status_code": 500,
            "ratio": 0.25,
            "ok": False,
            "tags": ["a", "b"],
            "codes": [1, -2, 3],
            "big": 2**62,
            "neg": -7,
        },
    ) as span:
        with other.start_as_current_span(
            "SELECT shop", kind=SpanKind.CLIENT, links=[Link(remote, {"why": "batch"})]
        ) as child:
            child.add_event("retry", {"attempt": 2})
        try:
            raise ValueError("bad ünïcode ✓")
        except ValueError as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, "bad value"))
    return exporter.get_finished_spans()


def test_realistic_spans_encode_identically():
    """Server and client spans with remote parents, trace state, events, links and errors match the SDK."""
    same_as_sdk(recorded_spans())


def test_repeated_batches_use_caches_without_changing_output():
    """Caches of keys, pairs and resources never change what is written."""
    spans = recorded_spans()
    first = encode_spans(spans)
    assert encode_spans(spans) == first
    same_as_sdk(spans)


int64_scalars = st.one_of(
    st.text(max_size=80),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.binary(max_size=20),
)
# An attribute integer past int64 is left out, by the SDK's encoder and by ours.
scalars = st.one_of(int64_scalars, st.integers(min_value=-(2**65), max_value=2**65))
values = st.one_of(scalars, st.lists(st.text(max_size=5), max_size=4), st.lists(st.integers(-5, 5), max_size=4))


@settings(max_examples=150, deadline=None)
@given(
    attributes=st.dictionaries(st.text(max_size=20), values, max_size=8),
    name=st.text(max_size=30),
    kind=st.sampled_from(list(SpanKind)),
    event_attributes=st.dictionaries(st.text(max_size=10), scalars, max_size=3),
    description=st.one_of(st.none(), st.text(max_size=20)),
)
def test_arbitrary_attributes_encode_identically(attributes, name, kind, event_attributes, description):
    """Any attribute values the SDK accepts encode to the same message."""
    span = ReadableSpan(
        name=name,
        context=SpanContext(1, 2, is_remote=False),
        parent=None,
        kind=kind,
        resource=Resource({"service.name": "x"}),
        attributes=attributes,
        events=[Event("e", event_attributes, timestamp=5)],
        links=(),
        status=Status(StatusCode.ERROR, description) if description else Status(StatusCode.UNSET),
        start_time=10,
        end_time=20,
        instrumentation_scope=InstrumentationScope("s", "1"),
    )
    same_as_sdk([span])


def test_fast_gzip_is_standard_gzip():
    """Level-1 output is ordinary gzip that any receiver inflates."""
    data = encode_spans(recorded_spans())
    assert gzip.decompress(gzip_fast(data)) == data


def test_lone_surrogate_does_not_lose_the_batch():
    """A string that cannot be UTF-8 is written with U+FFFD, the replacement character, instead of failing the batch."""
    spans = recorded_spans()
    bad = ReadableSpan(
        name="bad\ud800name",
        context=SpanContext(1, 2, is_remote=False),
        kind=SpanKind.INTERNAL,
        resource=Resource({}),
        attributes={"k": "v\udfff"},
        start_time=1,
        end_time=2,
    )
    decoded = ExportTraceServiceRequest.FromString(encode_spans([*spans, bad]))
    names = [s.name for rs in decoded.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert "bad\ufffdname" in names and len(names) == len(spans) + 1


# --- metrics and logs ---------------------------------------------------------


def recorded_metrics():
    """Every kind of point the SDK makes: sums (int, float, up-down), gauges, both histograms, exemplars."""
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

    reader = InMemoryMetricReader()
    provider = MeterProvider(
        resource=Resource({"service.name": "shop"}, schema_url="https://example.com/r"),
        metric_readers=[reader],
        views=[View(instrument_name="exp.*", aggregation=ExponentialBucketHistogramAggregation())],
    )
    meter = provider.get_meter(
        "shop", "1.0", schema_url="https://opentelemetry.io/schemas/1.44.0", attributes={"scope.kind": "app"}
    )
    other = provider.get_meter("otel_monitor")
    counter = meter.create_counter("orders", unit="{order}", description="Orders placed")
    counter.add(3, {"tier": "gold", "ok": True})
    counter.add(2, {"tier": "free", "ok": False})
    meter.create_counter("revenue").add(12.5, {"currency": "EUR"})
    meter.create_up_down_counter("inflight").add(-4)
    meter.create_observable_gauge(
        "temperature", callbacks=[lambda options: [Observation(21.5, {"room": "a"}), Observation(-3, {"room": "b"})]]
    )
    histogram = meter.create_histogram("latency", unit="ms")
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("request"):  # sampled: the points get exemplars with trace ids
        histogram.record(12.0, {"route": "/a"})
        histogram.record(7, {"route": "/a"})
    histogram.record(0.5, {"route": "/b"})
    exponential = other.create_histogram("exp.sizes")
    for value in (0, 1, 2.5, 3, 1000, 1e-3):
        exponential.record(value, {"kind": "x"})
    other.create_histogram("exp.empty")  # no points: a metric with no data
    return reader.get_metrics_data()


def test_metrics_encode_identically():
    """Sums, gauges, histograms, exponential histograms and exemplars match the SDK's encoder."""
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics as sdk_encode_metrics
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    from otel_monitor.otlp.encode import encode_metrics

    data = recorded_metrics()
    ours = ExportMetricsServiceRequest.FromString(encode_metrics(data))
    assert ours == sdk_encode_metrics(data)
    kinds = {
        m.name: m.WhichOneof("data") for rm in ours.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    assert kinds["latency"] == "histogram" and kinds["exp.sizes"] == "exponential_histogram"
    assert kinds["temperature"] == "gauge" and kinds["orders"] == "sum"
    exemplars = [
        e
        for rm in ours.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "latency"
        for p in m.histogram.data_points
        for e in p.exemplars
    ]
    assert any(e.trace_id for e in exemplars)


@pytest.mark.parametrize("max_points", [1, 2, 3, 5, 100])
def test_metric_batches_split_as_the_sdks_exporter_splits(max_points):
    """With a batch size, each request holds at most that many points, the same requests the SDK would send."""
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics as sdk_encode_metrics
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import _split_metrics_data
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    from otel_monitor.otlp.encode import metric_batches

    data = recorded_metrics()
    ours = metric_batches(data, max_points)
    theirs = list(_split_metrics_data(sdk_encode_metrics(data), max_points))
    assert [ExportMetricsServiceRequest.FromString(encoded) for encoded, _ in ours] == theirs
    assert all(0 < count <= max_points for _, count in ours)
    assert sum(count for _, count in ours) == sum(
        len(m.data.data_points) for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    )


def _log(
    body,
    attributes=None,
    *,
    scope=InstrumentationScope("app", "2", "https://s"),
    trace_id=0,
    span_id=0,
    event_name=None,
    severity=None,
    resource=Resource({"service.name": "shop"}),
):
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.sdk._logs import ReadWriteLogRecord
    from opentelemetry.sdk._logs._internal import LogRecord

    record = LogRecord(
        timestamp=1_700_000_000_000_000_001,
        observed_timestamp=1_700_000_000_000_000_002,
        trace_id=trace_id,
        span_id=span_id,
        trace_flags=TraceFlags(1) if trace_id else TraceFlags(0),
        severity_text=severity,
        severity_number=SeverityNumber.WARN if severity else None,
        body=body,
        attributes=attributes,
        event_name=event_name,
    )
    return ReadWriteLogRecord(record, resource=resource, instrumentation_scope=scope)


def same_logs_as_sdk(batch) -> None:
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as sdk_encode_logs
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from otel_monitor.otlp.encode import encode_logs

    assert ExportLogsServiceRequest.FromString(encode_logs(batch)) == sdk_encode_logs(batch)


def test_logs_encode_identically():
    """Records in and out of a trace, events, no body, structured bodies, two scopes and none match the SDK."""
    resource = Resource({"service.name": "shop"})
    same_logs_as_sdk(
        [
            _log(
                "payment declined",
                {"code.function": "pay", "attempt": 2},
                trace_id=0xABC,
                span_id=0xDEF,
                severity="WARN",
                resource=resource,
            ),
            _log(None, resource=resource, scope=None),
            _log({"order": 7, "items": ["a", "b"], "paid": False}, event_name="order.placed", resource=resource),
            _log(b"\x00\x01", scope=InstrumentationScope("other"), resource=resource),
            _log(2.5, {"x": 1}, resource=resource),
        ]
    )


@pytest.mark.filterwarnings("ignore:Log record attributes were dropped")  # empty keys, as in the SDK
@settings(max_examples=100, deadline=None)
@given(
    body=st.one_of(
        st.none(),
        int64_scalars,
        st.lists(int64_scalars, max_size=3),
        st.dictionaries(st.text(max_size=5), int64_scalars, max_size=3),
    ),
    attributes=st.dictionaries(st.text(max_size=20), values, max_size=6),
    severity=st.one_of(st.none(), st.sampled_from(["INFO", "ERROR"])),
)
def test_arbitrary_log_records_encode_identically(body, attributes, severity):
    """Any body and attributes the SDK accepts encode to the same message."""
    same_logs_as_sdk([_log(body, attributes, severity=severity, trace_id=5, span_id=6)])


def test_an_unencodable_value_loses_only_itself():
    """An attribute OTLP cannot carry (odd type, integer past int64) is left out, as the SDK does; never a wrong
    number. An odd log body is sent as text, not dropped."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from otel_monitor.otlp.encode import encode_logs

    class Odd:
        def __str__(self) -> str:
            return "odd object"

    record = _log(Odd(), {"fine": 1})
    record.log_record.attributes = {"fine": 1, "bad": Odd()}  # past the SDK's checks, as a custom processor might
    decoded = ExportLogsServiceRequest.FromString(encode_logs([record]))
    (log_record,) = decoded.resource_logs[0].scope_logs[0].log_records
    assert log_record.body.string_value == "odd object"
    assert [kv.key for kv in log_record.attributes] == ["fine"]
    too_big = {"huge": 1 << 64, "wraps": 1 << 63, "low": -(1 << 63) - 1, "edge": -(1 << 63), "uuid": 2**127 + 5}
    span = ReadableSpan(
        name="s",
        context=SpanContext(1, 2, is_remote=False),
        kind=SpanKind.INTERNAL,
        resource=Resource({}),
        attributes={"fine": "yes", "bad": Odd(), **too_big},
        start_time=1,
        end_time=2,
    )
    for _ in range(2):  # the second time through the cache of small pairs
        encoded = encode_spans([span])
        (decoded_span,) = ExportTraceServiceRequest.FromString(encoded).resource_spans[0].scope_spans[0].spans
        assert {kv.key: kv.value.int_value or kv.value.string_value for kv in decoded_span.attributes} == {
            "fine": "yes",
            "edge": -(1 << 63),
        }


def test_an_unencodable_metric_raises_the_sdks_encoding_exception():
    """A point the wire format cannot hold raises the SDK encoder's EncodingException, wrapping a ValueError."""
    from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import EncodingException
    from opentelemetry.sdk.metrics.export import (
        Gauge,
        Metric,
        MetricsData,
        NumberDataPoint,
        ResourceMetrics,
        ScopeMetrics,
    )
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from otel_monitor.otlp.encode import encode_metrics

    point = NumberDataPoint(attributes={}, start_time_unix_nano=1, time_unix_nano=2, value=2**64)
    metric = Metric(name="too.big", description="", unit="", data=Gauge(data_points=[point]))
    data = MetricsData(
        resource_metrics=[
            ResourceMetrics(
                resource=Resource({}),
                schema_url="",
                scope_metrics=[ScopeMetrics(scope=InstrumentationScope("s"), metrics=[metric], schema_url="")],
            )
        ]
    )
    with pytest.raises(EncodingException) as raised:
        encode_metrics(data)
    assert raised.value.metric is metric and isinstance(raised.value.original_exception, ValueError)


def test_equal_resources_that_are_distinct_objects_go_out_as_one():
    """Spans are grouped by resource and scope equality, as the SDK's encoder groups them, not by identity."""
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    spans = [
        ReadableSpan(
            name=f"s{i}",
            context=SpanContext(1, i + 1, is_remote=False),
            kind=SpanKind.INTERNAL,
            resource=Resource({"service.name": "shop"}),
            instrumentation_scope=InstrumentationScope("t"),
            start_time=1,
            end_time=2,
        )
        for i in range(3)
    ]
    decoded = ExportTraceServiceRequest.FromString(encode_spans(spans))
    assert len(decoded.resource_spans) == 1 and len(decoded.resource_spans[0].scope_spans) == 1
    assert [s.name for s in decoded.resource_spans[0].scope_spans[0].spans] == ["s0", "s1", "s2"]
