"""Our instruments, the cardinality guard, and the cache and fallback helpers."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import otel_monitor
from otel_monitor import metrics, semconv
from otel_monitor.slo import DEFAULT_BUCKETS


@pytest.fixture
def reader():
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics.bind(metrics.create_instruments(provider, DEFAULT_BUCKETS, cardinality_limit=2000))
    yield reader
    provider.shutdown()


def points(reader: InMemoryMetricReader, name: str) -> list:
    data = reader.get_metrics_data()
    return [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics if m.name == name
            for p in m.data.data_points]


def test_cardinality_guard_keeps_at_most_the_limit_with_100000_values(reader):
    """100,000 distinct values give at most 2000 series; the rest land on otel.metric.overflow=true."""
    counter = metrics.current().cache_requests
    for i in range(100_000):
        counter.add(1, {semconv.MONITOR_CACHE_NAME: f"cache-{i}"})
    series = points(reader, semconv.METRIC_CACHE_REQUESTS)
    assert len(series) == 2000
    overflow = [p for p in series if dict(p.attributes) == {semconv.OTEL_METRIC_OVERFLOW: True}]
    assert len(overflow) == 1
    assert overflow[0].value == 100_000 - 1999
    assert sum(p.value for p in series) == 100_000


def test_histogram_uses_the_slo_buckets(reader):
    """monitor.operation.duration is a histogram in seconds with the SLO bucket boundaries."""
    metrics.current().operation_duration.record(0.3, {semconv.MONITOR_OPERATION: "checkout"})
    (point,) = points(reader, semconv.METRIC_OPERATION_DURATION)
    assert tuple(point.explicit_bounds) == DEFAULT_BUCKETS


def test_cache_lookup_counts_and_marks_the_span(reader):
    """cache_lookup counts hits and misses per cache and sets both span attributes."""
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("catalog") as span:
        otel_monitor.cache_lookup("catalog", hit=True)
    otel_monitor.cache_lookup("catalog", hit=False)
    otel_monitor.cache_lookup("catalog", hit=True)
    counts = {tuple(sorted(p.attributes.items())): p.value for p in points(reader, semconv.METRIC_CACHE_REQUESTS)}
    assert counts == {((semconv.MONITOR_CACHE_HIT, True), (semconv.MONITOR_CACHE_NAME, "catalog")): 2,
                      ((semconv.MONITOR_CACHE_HIT, False), (semconv.MONITOR_CACHE_NAME, "catalog")): 1}
    assert span.attributes[semconv.MONITOR_CACHE_HIT] is True
    assert span.attributes[semconv.MONITOR_CACHE_NAME] == "catalog"


def test_served_by_counts_fallbacks_only(reader):
    """served_by marks the span; only non-primary layers count monitor.fallbacks."""
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("pay", attributes={semconv.MONITOR_OPERATION: "payment"}) as span:
        otel_monitor.served_by("fallback")
    otel_monitor.served_by("primary", operation="payment")
    otel_monitor.served_by("cache", operation="catalog")
    counts = {tuple(sorted(p.attributes.items())): p.value for p in points(reader, semconv.METRIC_FALLBACKS)}
    assert counts == {((semconv.MONITOR_OPERATION, "payment"), (semconv.MONITOR_SERVICE_LAYER, "fallback")): 1,
                      ((semconv.MONITOR_OPERATION, "catalog"), (semconv.MONITOR_SERVICE_LAYER, "cache")): 1}
    assert span.attributes[semconv.MONITOR_SERVICE_LAYER] == "fallback"
