"""Runtime metrics: the process's CPU, memory, GC, threads and file descriptors over OTLP."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader

from otel_monitor.config.settings import resolve
from otel_monitor.pipeline.runtime_metrics import PROCESS_METRICS, start_runtime_metrics, stop_runtime_metrics


@pytest.fixture(autouse=True)
def fresh_instrumentor():
    stop_runtime_metrics()
    yield
    stop_runtime_metrics()


def test_process_metrics_arrive_over_otlp(otlp_sink):
    """CPU, RSS, GC, thread and fd metrics reach an OTLP receiver under their semantic-convention names."""
    import os

    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    provider = MeterProvider(
        metric_readers=[
            PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=f"{otlp_sink.endpoint}/v1/metrics"), export_interval_millis=200
            )
        ]
    )
    start_runtime_metrics(provider, resolve(environ={}))
    try:
        assert otlp_sink.wait_for(lambda s: set(PROCESS_METRICS) <= {p["name"] for p in s.metrics})
    finally:
        provider.shutdown()
    import psutil

    rss = [p["value"] for p in otlp_sink.metric_points("process.memory.usage")]
    assert rss and abs(rss[-1] - psutil.Process(os.getpid()).memory_info().rss) < 256 * 2**20
    # The instrumentation labels CPU mode as "type" (the older convention), not "cpu.mode".
    assert {p["attributes"].get("type") for p in otlp_sink.metric_points("process.cpu.time")} == {"user", "system"}
    assert otlp_sink.metric_points("process.thread.count")[-1]["value"] >= 2
    assert {
        p["attributes"].get("cpython.gc.generation") for p in otlp_sink.metric_points("cpython.gc.collections")
    } == {0, 1, 2}
    assert not [p for p in otlp_sink.metrics if p["name"].startswith("system.")]


def test_disabled_by_setting():
    """OTEL_MONITOR_RUNTIME_METRICS=false reports nothing."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    start_runtime_metrics(provider, resolve(environ={"OTEL_MONITOR_RUNTIME_METRICS": "false"}))
    assert reader.get_metrics_data() is None or not reader.get_metrics_data().resource_metrics


def test_second_start_is_ignored():
    """Starting twice in one process keeps one set of instruments."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    start_runtime_metrics(provider, resolve(environ={}))
    start_runtime_metrics(provider, resolve(environ={}))
    names = [m.name for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    assert sorted(names) == sorted(PROCESS_METRICS)
