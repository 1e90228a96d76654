"""Our instruments, the cardinality guard, and the cache and fallback helpers."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import otel_monitor
from otel_monitor import runtime, semconv, testing
from otel_monitor.fast.histograms import DirectAggregations
from otel_monitor.pipeline import instruments as metrics
from otel_monitor.semantics.slo import DEFAULT_BUCKETS

# The launcher's direct histogram path (OTEL_MONITOR_DIRECT_HISTOGRAMS on), which these tests exercise.
DIRECT = DirectAggregations.for_instrument


@pytest.fixture
def reader():
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    runtime.current().instruments = metrics.create_instruments(provider, DEFAULT_BUCKETS, cardinality_limit=2000)
    yield reader
    provider.shutdown()
    testing.reset()


def points(reader: InMemoryMetricReader, name: str) -> list:
    data = reader.get_metrics_data()
    return [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points
    ]


def test_cardinality_guard_keeps_at_most_the_limit_with_100000_values(reader):
    """100,000 distinct values give at most 2000 series; the rest land on otel.metric.overflow=true."""
    counter = metrics.instruments_in_use().cache_requests
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
    metrics.instruments_in_use().operation_duration.record(0.3, {semconv.MONITOR_OPERATION: "checkout"})
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
    assert counts == {
        ((semconv.MONITOR_CACHE_HIT, True), (semconv.MONITOR_CACHE_NAME, "catalog")): 2,
        ((semconv.MONITOR_CACHE_HIT, False), (semconv.MONITOR_CACHE_NAME, "catalog")): 1,
    }
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
    assert counts == {
        ((semconv.MONITOR_OPERATION, "payment"), (semconv.MONITOR_SERVICE_LAYER, "fallback")): 1,
        ((semconv.MONITOR_OPERATION, "catalog"), (semconv.MONITOR_SERVICE_LAYER, "cache")): 1,
    }
    assert span.attributes[semconv.MONITOR_SERVICE_LAYER] == "fallback"


def _histogram_points(reader: InMemoryMetricReader) -> dict:
    return {frozenset(p.attributes.items()): p for p in points(reader, semconv.METRIC_OPERATION_DURATION)}


VALUES = [0.0, 0.0004, 0.003, 0.02, 0.02, 0.7, 3.5, 42.0]


def _labels(i: int) -> dict[str, str]:
    # A second label that the view below drops: the series are per operation only.
    return {semconv.MONITOR_OPERATION: f"op-{i % 3}", "http.request.method": "GET"}


def _record_mix(instruments: metrics.Instruments, n: int = 400) -> None:
    for i in range(n):
        labels = _labels(i)
        instruments.operation_duration.record(VALUES[i % len(VALUES)], labels, key=(labels[semconv.MONITOR_OPERATION],))


def _count_sdk_records(provider: MeterProvider, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many measurements reach the SDK's own dispatch (the rest took the direct path)."""
    consumer = provider._measurement_consumer
    calls = [0]
    original = consumer.consume_measurement

    def counting(measurement):
        calls[0] += 1
        return original(measurement)

    monkeypatch.setattr(consumer, "consume_measurement", counting)
    return calls


@pytest.mark.parametrize("exemplars", ["always_off", "always_on"])
def test_operation_histogram_counts_exactly_what_the_sdk_counts(
    exemplars: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Direct path or not, every bucket, sum, min and max equal the SDK's own histogram's, on two readers and a view."""
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, AlwaysOnExemplarFilter
    from opentelemetry.sdk.metrics.view import View

    exemplar_filter = AlwaysOffExemplarFilter() if exemplars == "always_off" else AlwaysOnExemplarFilter()
    keep_operation = View(instrument_name="*", attribute_keys={semconv.MONITOR_OPERATION})
    ours, second, plain = InMemoryMetricReader(), InMemoryMetricReader(), InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[ours, second], exemplar_filter=exemplar_filter, views=[keep_operation])
    reference = MeterProvider(metric_readers=[plain], exemplar_filter=exemplar_filter, views=[keep_operation])
    instruments = metrics.create_instruments(provider, DEFAULT_BUCKETS, direct=DIRECT)
    expected = reference.get_meter("x").create_histogram(
        semconv.METRIC_OPERATION_DURATION, explicit_bucket_boundaries_advisory=list(DEFAULT_BUCKETS)
    )
    sdk_records = _count_sdk_records(provider, monkeypatch)
    _record_mix(instruments)
    for i in range(400):
        expected.record(VALUES[i % len(VALUES)], _labels(i))
    # Exemplars off: only the first record of each of the 3 sets goes through the SDK.
    # Exemplars on: every record does, so exemplars stay complete.
    assert sdk_records[0] == (3 if exemplars == "always_off" else 400)
    for reader in (ours, second):
        got, want = _histogram_points(reader), _histogram_points(plain)
        assert got.keys() == want.keys() and len(got) == 3
        for key, point in want.items():
            mine = got[key]
            assert (mine.count, mine.sum, mine.min, mine.max) == (point.count, point.sum, point.min, point.max)
            assert list(mine.bucket_counts) == list(point.bucket_counts)
            assert bool(mine.exemplars) is (exemplars == "always_on")
    provider.shutdown()
    reference.shutdown()


def test_operation_histogram_follows_fresh_state_after_fork_and_an_added_reader() -> None:
    """When the SDK's reader storages are replaced (fresh state after fork, a reader added), records land in the new ones."""
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter

    from otel_monitor.launcher.configurator import _fresh_metric_state

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], exemplar_filter=AlwaysOffExemplarFilter())
    instruments = metrics.create_instruments(provider, DEFAULT_BUCKETS, direct=DIRECT)
    _record_mix(instruments)
    _fresh_metric_state(provider)
    labels = {semconv.MONITOR_OPERATION: "op-0"}
    for _ in range(5):
        instruments.operation_duration.record(0.5, labels, key=("op-0",))
    (point,) = _histogram_points(reader).values()
    assert point.count == 5 and point.sum == 2.5
    added = InMemoryMetricReader()
    provider.add_metric_reader(added)
    for _ in range(3):
        instruments.operation_duration.record(0.5, labels, key=("op-0",))
    assert _histogram_points(added)[frozenset(labels.items())].count == 3
    provider.shutdown()


def test_values_of_different_types_stay_different_series() -> None:
    """1, 1.0 and True are three attribute values to the SDK; the guard's own key keeps them apart too."""
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], exemplar_filter=AlwaysOffExemplarFilter())
    histogram = metrics.create_instruments(provider, DEFAULT_BUCKETS, direct=DIRECT).operation_duration
    for value in (1, 1, True, True, True, 1.0):
        histogram.record(0.1, {"flag": value})
    counts = {
        (type(p.attributes["flag"]), p.attributes["flag"]): p.count
        for p in points(reader, semconv.METRIC_OPERATION_DURATION)
    }
    assert counts == {(int, 1): 2, (bool, True): 3, (float, 1.0): 1}
    provider.shutdown()


def test_a_list_attribute_value_is_counted_not_raised(reader) -> None:
    """Attribute values may be sequences: a list is one series, and never an error in the app."""
    counter = metrics.instruments_in_use().cache_requests
    counter.add(1, {semconv.MONITOR_CACHE_NAME: "catalog", "tags": ["a", "b"]})
    counter.add(1, {semconv.MONITOR_CACHE_NAME: "catalog", "tags": ["a", "b"]})
    (point,) = points(reader, semconv.METRIC_CACHE_REQUESTS)
    assert point.value == 2 and tuple(point.attributes["tags"]) == ("a", "b")


def test_operation_histogram_follows_a_meter_disabled_at_runtime() -> None:
    """A meter turned off by a configurator stops the direct path as it stops the SDK's."""
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], exemplar_filter=AlwaysOffExemplarFilter())
    histogram = metrics.create_instruments(provider, DEFAULT_BUCKETS, direct=DIRECT).operation_duration
    labels = {semconv.MONITOR_OPERATION: "checkout"}
    for _ in range(3):
        histogram.record(0.1, labels, key=("checkout",))
    histogram._instrument._is_enabled = lambda: False
    for _ in range(4):
        histogram.record(0.1, labels, key=("checkout",))
    (point,) = _histogram_points(reader).values()
    assert point.count == 3
    provider.shutdown()


def test_operation_histogram_refuses_negative_and_nan_as_the_sdk_does() -> None:
    """A negative or NaN duration is not aggregated, on either path."""
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], exemplar_filter=AlwaysOffExemplarFilter())
    instruments = metrics.create_instruments(provider, DEFAULT_BUCKETS, direct=DIRECT)
    labels = {semconv.MONITOR_OPERATION: "checkout"}
    for value in (0.1, 0.1, -1.0, float("nan"), float("inf"), 0.2):
        instruments.operation_duration.record(value, labels, key=("checkout",))
    (point,) = _histogram_points(reader).values()
    assert point.count == 3 and point.sum == pytest.approx(0.4)
    provider.shutdown()
