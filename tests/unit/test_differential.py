"""Differential properties: each replacement against the stock path it replaces, on random input.

The span type, the OTLP encoder, the OTLP/HTTP exporters and the direct
histogram path each take random operations or data here, and what leaves
them (the exported OTLP message, the collected metric points) must equal what
the SDK's own path gives for the same input.
"""

from __future__ import annotations

import gzip
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._internal import _log_encoder as sdk_logs
from opentelemetry.exporter.otlp.proto.common._internal import metrics_encoder as sdk_metrics
from opentelemetry.exporter.otlp.proto.common._internal import trace_encoder as sdk_traces
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, TraceFlags

from otel_monitor.fast import spans
from otel_monitor.otlp import encode
from otel_monitor.pipeline.instruments import GuardedInstrument

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.text(max_size=40) | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.booleans()
values = scalars | st.lists(st.text(max_size=10), max_size=4) | st.lists(st.integers(-5, 5), max_size=4) | st.none()
keys = st.sampled_from(["a", "b", "http.route", "db.query.text", "x" * 30, "", "é", "k1", "k2"])
attributes = st.dictionaries(st.sampled_from(["a", "b", "c", "route", "n"]), scalars, max_size=5)


class _Ids(IdGenerator):
    """The same ids, in the same order, for both providers."""

    def __init__(self) -> None:
        self.n = 0

    def generate_span_id(self) -> int:
        self.n += 1
        return self.n

    def generate_trace_id(self) -> int:
        self.n += 1
        return 0xABC0000 + self.n


operations = st.lists(
    st.one_of(
        st.tuples(st.just("set_attribute"), keys, values),
        st.tuples(st.just("set_attributes"), st.dictionaries(keys, values, max_size=4)),
        st.tuples(st.just("add_event"), st.text(max_size=10), attributes),
        st.tuples(st.just("add_link"), attributes),
        st.tuples(st.just("update_name"), st.text(max_size=10)),
        st.tuples(
            st.just("set_status"),
            st.sampled_from([StatusCode.OK, StatusCode.ERROR, StatusCode.UNSET]),
            st.none() | st.text(max_size=10),
        ),
        st.tuples(st.just("record_exception"), st.text(max_size=10)),
        st.tuples(st.just("child")),
    ),
    max_size=12,
)


def _run(lean: bool, ops: list[tuple[Any, ...]], limits: SpanLimits) -> bytes:
    """The operations on one span (and its children), exported through the SDK's encoder."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        sampler=ALWAYS_ON,
        span_limits=limits,
        id_generator=_Ids(),
        shutdown_on_exit=False,
        resource=Resource({"service.name": "diff"}),
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if lean:
        assert spans.install(provider)
    tracer = provider.get_tracer("diff")
    span = tracer.start_span("root", kind=SpanKind.SERVER, attributes={"start": 1}, start_time=1_000)
    clock = 2_000
    link_context = SpanContext(7, 8, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    for op in ops:
        clock += 1_000
        if op[0] == "set_attribute":
            span.set_attribute(op[1], op[2])
        elif op[0] == "set_attributes":
            span.set_attributes(op[1])
        elif op[0] == "add_event":
            span.add_event(op[1], op[2], timestamp=clock)
        elif op[0] == "add_link":
            span.add_link(link_context, op[1])
        elif op[0] == "update_name":
            span.update_name(op[1])
        elif op[0] == "set_status":
            span.set_status(op[1], op[2] if op[1] is StatusCode.ERROR else None)
        elif op[0] == "record_exception":
            span.record_exception(ValueError(op[1]), timestamp=clock)
        elif op[0] == "child":
            from opentelemetry import trace

            child = tracer.start_span(
                "child", context=trace.set_span_in_context(span), start_time=clock, links=[Link(link_context)]
            )
            child.set_attribute("db.query.text", "SELECT 1")
            child.end(end_time=clock + 10)
    span.end(end_time=clock + 1_000)
    finished = exporter.get_finished_spans()
    request = sdk_traces.encode_spans(finished)
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                for event in s.events:  # stack traces name the frames of each run
                    for attribute in event.attributes:
                        if attribute.key == "exception.stacktrace":
                            attribute.value.string_value = ""
    return request.SerializeToString()


@SETTINGS
@given(ops=operations, max_attributes=st.sampled_from([None, 3, 128]), max_length=st.sampled_from([None, 5]))
def test_the_span_type_exports_what_the_sdks_span_exports(
    ops: list[tuple[Any, ...]], max_attributes: int | None, max_length: int | None
) -> None:
    """Any sequence of span operations, within any limits, exports the same OTLP message from both span types."""
    limits = SpanLimits(max_span_attributes=max_attributes, max_span_attribute_length=max_length)
    assert _run(True, ops, limits) == _run(False, ops, limits)


def _readable_spans(draw: Any) -> list[Any]:
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Status

    resources = [Resource({"service.name": name}) for name in ("a", "b")] + [Resource({"service.name": "a"})]
    scopes = [InstrumentationScope("s1"), InstrumentationScope("s2", "1.0"), InstrumentationScope("s1")]
    out = []
    for i in range(draw(st.integers(0, 6))):
        out.append(
            ReadableSpan(
                name=draw(st.text(max_size=12)),
                context=SpanContext(
                    draw(st.integers(1, 2**128 - 1)),
                    draw(st.integers(1, 2**64 - 1)),
                    is_remote=False,
                    trace_flags=TraceFlags(draw(st.sampled_from([0, 1]))),
                ),
                parent=draw(
                    st.none()
                    | st.builds(lambda s, r: SpanContext(1, s, is_remote=r), st.integers(1, 2**64 - 1), st.booleans())
                ),
                resource=draw(st.sampled_from(resources)),
                instrumentation_scope=draw(st.sampled_from(scopes)),
                attributes=draw(attributes),
                kind=draw(st.sampled_from(list(SpanKind))),
                events=[
                    Event(draw(st.text(max_size=8)), draw(attributes), timestamp=i + 1)
                    for _ in range(draw(st.integers(0, 2)))
                ],
                links=[
                    Link(SpanContext(3, 4, is_remote=True), draw(attributes)) for _ in range(draw(st.integers(0, 2)))
                ],
                status=Status(draw(st.sampled_from([StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR]))),
                start_time=draw(st.integers(0, 2**62)),
                end_time=draw(st.integers(0, 2**62)),
            )
        )
    return out


@SETTINGS
@given(data=st.data())
def test_the_encoder_writes_the_sdks_trace_message(data: Any) -> None:
    """Random spans, over several equal and distinct resources and scopes, encode to the SDK encoder's message."""
    batch = _readable_spans(data.draw)
    assert ExportTraceServiceRequest.FromString(encode.encode_spans(batch)) == sdk_traces.encode_spans(batch)


@SETTINGS
@given(
    records=st.lists(
        st.tuples(st.sampled_from(["info", "warning", "error"]), st.text(max_size=20) | st.none(), attributes),
        max_size=6,
    )
)
def test_the_encoder_writes_the_sdks_log_message(records: list[tuple[str, Any, dict[str, Any]]]) -> None:
    """Random log records from the SDK's logger encode to the SDK encoder's message."""
    from opentelemetry._logs import SeverityNumber

    provider = LoggerProvider(resource=Resource({"service.name": "diff"}), shutdown_on_exit=False)
    exporter = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("diff")
    numbers = {"info": SeverityNumber.INFO, "warning": SeverityNumber.WARN, "error": SeverityNumber.ERROR}
    for i, (level, body, attrs) in enumerate(records):
        logger.emit(
            timestamp=i + 1,
            observed_timestamp=i + 2,
            severity_text=level,
            severity_number=numbers[level],
            body=body,
            attributes=attrs,
        )
    batch = exporter.get_finished_logs()
    assert ExportLogsServiceRequest.FromString(encode.encode_logs(batch)) == sdk_logs.encode_logs(batch)


@SETTINGS
@given(
    points=st.lists(
        st.tuples(
            st.sampled_from(["counter", "updown", "histogram", "gauge"]),
            st.integers(0, 1000) | st.floats(0, 1e6),
            attributes,
        ),
        max_size=20,
    ),
    exponential=st.booleans(),
)
def test_the_encoder_writes_the_sdks_metric_message(
    points: list[tuple[str, Any, dict[str, Any]]], exponential: bool
) -> None:
    """Random recordings of every instrument kind, collected by the SDK, encode to the SDK encoder's message."""
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

    reader = InMemoryMetricReader()
    views = [View(instrument_name="h", aggregation=ExponentialBucketHistogramAggregation())] if exponential else []
    provider = MeterProvider(
        metric_readers=[reader], views=views, resource=Resource({"service.name": "diff"}), shutdown_on_exit=False
    )
    meter = provider.get_meter("diff")
    instruments = {
        "counter": meter.create_counter("c"),
        "updown": meter.create_up_down_counter("u"),
        "histogram": meter.create_histogram("h"),
        "gauge": meter.create_gauge("g"),
    }
    for kind, value, attrs in points:
        instrument = instruments[kind]
        getattr(instrument, "add", None) and instrument.add(value, attrs)  # type: ignore[attr-defined]
        getattr(instrument, "record", None) and instrument.record(value, attrs)  # type: ignore[attr-defined]
        getattr(instrument, "set", None) and instrument.set(value, attrs)  # type: ignore[attr-defined]
    data = reader.get_metrics_data()
    if data is None:
        return
    ours = ExportMetricsServiceRequest.FromString(encode.encode_metrics(data))
    assert ours == sdk_metrics.encode_metrics(data)


@SETTINGS
@given(batch_size=st.integers(0, 5), data=st.data())
def test_the_exporter_sends_the_body_the_sdks_exporter_sends(batch_size: int, data: Any) -> None:
    """otel-monitor's OTLP/HTTP span exporter posts the message the SDK's exporter posts, to the same path."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as SDKExporter

    from otel_monitor.fast.otlp_exporters import OTLPSpanExporter

    batch = _readable_spans(data.draw)[:batch_size]
    sent: dict[str, Any] = {}

    class Transport:
        """The SDK HTTP client's transport seam: what it would post, kept instead of sent."""

        def __init__(self, name: str) -> None:
            self.name = name

        def request(self, method: str, url: str, headers: Any, data: bytes, timeout: float) -> Any:
            body = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            sent[self.name] = (method, url, ExportTraceServiceRequest.FromString(body))
            return type("Result", (), {"status_code": 200, "reason": "OK", "error": None, "headers": {}})()

        def is_connection_error(self, error: Exception) -> bool:
            return False

        def close(self) -> None:
            pass

    for name, cls in (("sdk", SDKExporter), ("ours", OTLPSpanExporter)):
        exporter = cls(endpoint="http://127.0.0.1:1/v1/traces")
        exporter._client._transport = Transport(name)  # the HTTP client's one seam: what it posts
        exporter.export(batch)
        exporter.shutdown()
    if "sdk" in sent:
        assert sent["ours"] == sent["sdk"]


@SETTINGS
@given(
    records=st.lists(
        st.tuples(
            st.floats(0, 100, allow_nan=False),
            st.sampled_from(
                [{}, {"monitor.operation": "checkout"}, {"monitor.operation": "search", "error.type": "500"}]
            ),
        ),
        max_size=40,
    )
)
def test_the_direct_histogram_path_collects_what_the_sdks_record_collects(
    records: list[tuple[float, dict[str, Any]]],
) -> None:
    """Random recordings through the direct histogram path collect the same points as the SDK's own record."""
    from otel_monitor.fast.histograms import DirectAggregations

    collected = []
    for direct in (True, False):
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
        histogram = provider.get_meter("diff").create_histogram("d", explicit_bucket_boundaries_advisory=[1, 10, 50])
        guarded = GuardedInstrument(histogram, 100, DirectAggregations.for_instrument if direct else None)
        for value, attrs in records:
            guarded.record(value, attrs)
        data = reader.get_metrics_data()
        points = (
            []
            if data is None
            else [
                (tuple(sorted(p.attributes.items())), p.count, p.sum, p.min, p.max, tuple(p.bucket_counts))
                for rm in data.resource_metrics
                for sm in rm.scope_metrics
                for m in sm.metrics
                for p in m.data.data_points
            ]
        )
        collected.append(sorted(points))
    assert collected[0] == collected[1]
