"""Our span encoder writes exactly what the SDK's encoder means, as opentelemetry-proto reads it."""

from __future__ import annotations

import gzip

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

from otel_monitor.otlp_encode import encode_spans, gzip_fast


def same_as_sdk(spans) -> None:
    ours = ExportTraceServiceRequest.FromString(encode_spans(spans))
    assert ours == sdk_encode_spans(spans)


def recorded_spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "shop", "service.instance.id": "abc"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("fastapi", "0.165", schema_url="https://opentelemetry.io/schemas/1.44.0")
    other = provider.get_tracer("opentelemetry.instrumentation.sqlalchemy", "0.66b1")
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1),
                         trace_state=TraceState([("vendor", "x1"), ("other", "y")]))
    from opentelemetry.trace import set_span_in_context, NonRecordingSpan

    with tracer.start_as_current_span("GET /items/{id}", kind=SpanKind.SERVER,
                                      context=set_span_in_context(NonRecordingSpan(remote)),
                                      attributes={"http.route": "/items/{id}", "http.response.status_code": 500,
                                                  "ratio": 0.25, "ok": False, "tags": ["a", "b"],
                                                  "codes": [1, -2, 3], "big": 2**62, "neg": -7}) as span:
        with other.start_as_current_span("SELECT shop", kind=SpanKind.CLIENT,
                                         links=[Link(remote, {"why": "batch"})]) as child:
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


scalars = st.one_of(st.text(max_size=80), st.booleans(), st.integers(min_value=-2**63, max_value=2**63 - 1),
                    st.floats(allow_nan=False), st.binary(max_size=20))
values = st.one_of(scalars, st.lists(st.text(max_size=5), max_size=4), st.lists(st.integers(-5, 5), max_size=4))


@settings(max_examples=150, deadline=None)
@given(attributes=st.dictionaries(st.text(max_size=20), values, max_size=8),
       name=st.text(max_size=30), kind=st.sampled_from(list(SpanKind)),
       event_attributes=st.dictionaries(st.text(max_size=10), scalars, max_size=3),
       description=st.one_of(st.none(), st.text(max_size=20)))
def test_arbitrary_attributes_encode_identically(attributes, name, kind, event_attributes, description):
    """Any attribute values the SDK accepts encode to the same message."""
    span = ReadableSpan(
        name=name, context=SpanContext(1, 2, is_remote=False), parent=None, kind=kind,
        resource=Resource({"service.name": "x"}), attributes=attributes,
        events=[Event("e", event_attributes, timestamp=5)], links=(),
        status=Status(StatusCode.ERROR, description) if description else Status(StatusCode.UNSET),
        start_time=10, end_time=20, instrumentation_scope=InstrumentationScope("s", "1"))
    same_as_sdk([span])


def test_fast_gzip_is_standard_gzip():
    """Level-1 output is ordinary gzip that any receiver inflates."""
    data = encode_spans(recorded_spans())
    assert gzip.decompress(gzip_fast(data)) == data


def test_lone_surrogate_does_not_lose_the_batch():
    """A string that cannot be UTF-8 is written with a replacement character instead of failing the batch."""
    spans = recorded_spans()
    bad = ReadableSpan(name="bad\ud800name", context=SpanContext(1, 2, is_remote=False), kind=SpanKind.INTERNAL,
                       resource=Resource({}), attributes={"k": "v\udfff"}, start_time=1, end_time=2)
    decoded = ExportTraceServiceRequest.FromString(encode_spans([*spans, bad]))
    names = [s.name for rs in decoded.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert "bad?name" in names and len(names) == len(spans) + 1
