"""OTLP export requests built by hand: spans at chosen times, for tests that need a past (or a fake) clock."""

from __future__ import annotations

import itertools

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from otel_monitor import semconv

_ids = itertools.count(1)


def _value(v: object) -> AnyValue:
    return AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=str(v))


def spans_request(service: str, operation: str, end_ns: int, durations: list[float], failed: bool = False) -> bytes:
    """One protobuf export request: ``len(durations)`` calls of ``operation`` ending at ``end_ns``, failed or not."""
    spans = []
    for seconds in durations:
        n = next(_ids)
        attrs = {semconv.MONITOR_OPERATION: operation}
        if failed:
            attrs[semconv.ERROR_TYPE] = "TimeoutError"
            attrs[semconv.MONITOR_ERROR_CATEGORY] = "timeout"
        spans.append(
            Span(
                trace_id=n.to_bytes(16, "big"),
                span_id=n.to_bytes(8, "big"),
                name=operation,
                kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=end_ns - round(seconds * 1e9),
                end_time_unix_nano=end_ns,
                attributes=[KeyValue(key=k, value=_value(v)) for k, v in attrs.items()],
                status=Status(code=Status.STATUS_CODE_ERROR if failed else Status.STATUS_CODE_OK),
            )
        )
    resource = [KeyValue(key=semconv.SERVICE_NAME, value=_value(service))]
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource={"attributes": resource}, scope_spans=[ScopeSpans(spans=spans)])]
    )
    return request.SerializeToString()


def duration_request(
    service: str, operation: str, time_ns: int, durations: list[float], failed: bool = False, interval_s: float = 60.0
) -> bytes:
    """One protobuf metrics request: a delta ``monitor.operation.duration`` point of ``durations`` at ``time_ns``,
    counted in otel-monitor's default buckets, failed (``error.type``, category timeout) or not."""
    from bisect import bisect_left

    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.metrics.v1.metrics_pb2 import (
        AggregationTemporality,
        Histogram,
        HistogramDataPoint,
        Metric,
        ResourceMetrics,
        ScopeMetrics,
    )

    from otel_monitor.semantics.slo import SLOs

    bounds = list(SLOs().buckets)
    counts = [0] * (len(bounds) + 1)
    for seconds in durations:
        counts[bisect_left(bounds, seconds)] += 1
    attrs = {semconv.MONITOR_OPERATION: operation}
    if failed:
        attrs[semconv.ERROR_TYPE] = "TimeoutError"
        attrs[semconv.MONITOR_ERROR_CATEGORY] = "timeout"
    point = HistogramDataPoint(
        attributes=[KeyValue(key=k, value=_value(v)) for k, v in attrs.items()],
        start_time_unix_nano=time_ns - round(interval_s * 1e9),
        time_unix_nano=time_ns,
        count=len(durations),
        sum=sum(durations),
        bucket_counts=counts,
        explicit_bounds=bounds,
        min=min(durations),
        max=max(durations),
    )
    metric = Metric(
        name=semconv.METRIC_OPERATION_DURATION,
        unit="s",
        histogram=Histogram(
            data_points=[point], aggregation_temporality=AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
        ),
    )
    resource = [KeyValue(key=semconv.SERVICE_NAME, value=_value(service))]
    request = ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(resource={"attributes": resource}, scope_metrics=[ScopeMetrics(metrics=[metric])])
        ]
    )
    return request.SerializeToString()
