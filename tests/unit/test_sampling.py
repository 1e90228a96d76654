"""Unsampled requests: metrics still see every span; failed and slow ones are exported anyway."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from otel_monitor import guard
from otel_monitor.fast import spans
from otel_monitor.pipeline.tail_sampling import MonitorSpanExportProcessor, RecordAllSampler


def pipeline(**options) -> tuple[TracerProvider, InMemorySpanExporter, MonitorSpanExportProcessor]:
    exporter = InMemorySpanExporter()
    processor = MonitorSpanExportProcessor(exporter, **options)
    provider = TracerProvider(sampler=RecordAllSampler(ALWAYS_OFF))
    provider.add_span_processor(processor)
    spans.install(provider)  # the span type the configurator installs
    return provider, exporter, processor


def test_unsampled_failed_request_is_exported_with_its_children_and_a_healthy_one_is_not() -> None:
    """Nothing is sampled; the request whose child failed is exported whole, the healthy one not at all."""
    provider, exporter, _ = pipeline(keep_errors=True)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("GET /ok"), tracer.start_as_current_span("SELECT"):
        pass
    with tracer.start_as_current_span("POST /checkout"), tracer.start_as_current_span("charge") as child:
        child.set_status(StatusCode.ERROR)
    provider.force_flush()
    assert sorted(span.name for span in exporter.get_finished_spans()) == ["POST /checkout", "charge"]
    provider.shutdown()


@pytest.mark.parametrize(("client_errors_fail", "kept"), [(False, []), (True, ["GET /items/{id}"])])
def test_an_unsampled_4xx_request_is_kept_only_when_client_errors_fail(client_errors_fail: bool, kept: list) -> None:
    """OTEL_MONITOR_CLIENT_ERRORS_FAIL makes a 404 a failed request, kept like any other; by default it is not."""
    provider, exporter, _ = pipeline(keep_errors=True, client_errors_fail=client_errors_fail)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("GET /items/{id}", kind=SpanKind.SERVER) as span:
        span.set_attribute("http.response.status_code", 404)
    with tracer.start_as_current_span("GET /ok", kind=SpanKind.SERVER) as span:
        span.set_attribute("http.response.status_code", 200)
    provider.force_flush()
    assert [span.name for span in exporter.get_finished_spans()] == kept
    provider.shutdown()


def test_a_failure_while_holding_unsampled_spans_is_contained_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """If keeping unsampled spans fails, the span still ends in the app and the failure is counted."""
    monkeypatch.setenv("OTEL_MONITOR_RAISE_INTERNAL_ERRORS", "false")
    guard.reset_for_tests()
    provider, _, processor = pipeline(keep_errors=True)

    def broken(span: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(processor, "_hold_or_decide", broken)
    with provider.get_tracer("t").start_as_current_span("GET /"):
        pass
    assert guard.COUNTS["unsampled error/slow span keeping"] == 1
    provider.shutdown()
