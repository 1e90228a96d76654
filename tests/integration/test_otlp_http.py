"""otel-monitor's OTLP/HTTP exporters: the SDK's exporters' behaviour, without the protobuf runtime."""

from __future__ import annotations

import inspect
import time

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as SDKLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as SDKMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as SDKSpanExporter
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.metrics import Counter, Histogram
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExportResult
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_monitor.fast.otlp_exporters import OTLPLogExporter, OTLPMetricExporter, OTLPSpanExporter
from otel_monitor.testing import OTLPSink
from tests.integration.test_transport import _launch
from tests.unit.test_otlp_encode import _log, recorded_metrics, recorded_spans

PAIRS = [
    (OTLPSpanExporter, SDKSpanExporter),
    (OTLPMetricExporter, SDKMetricExporter),
    (OTLPLogExporter, SDKLogExporter),
]


@pytest.mark.parametrize(("ours", "sdk"), PAIRS)
def test_constructors_take_the_sdks_arguments(ours, sdk):
    """Same parameters, kinds and defaults as the SDK's exporters: an exporter_args_map written for them fits."""

    def shape(cls):
        return [(p.name, p.kind, p.default) for p in inspect.signature(cls.__init__).parameters.values()]

    assert shape(ours) == shape(sdk)


_APP = """
    import logging, sys
    from opentelemetry import trace, metrics, _logs
    with trace.get_tracer("app").start_as_current_span("shipped"):
        logging.getLogger("app").warning("a log line")
    metrics.get_meter("app").create_counter("app.things").add(1)
    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider()):
        provider.force_flush()
    exporter = trace.get_tracer_provider()._active_span_processor._span_processors[-1]
    print("protobuf loaded:", "google.protobuf" in sys.modules)
"""


def _arrived(sink: OTLPSink) -> bool:
    return (
        any(s["name"] == "shipped" for s in sink.spans)
        and any(r["body"] == "a log line" for r in sink.logs)
        and bool(sink.metric_points("app.things"))
    )


def test_a_launched_app_exports_every_signal_without_loading_protobuf():
    """Spans, metrics and logs arrive at a real receiver; the app's process never imported google.protobuf."""
    with OTLPSink() as sink:
        proc = _launch(sink.env(), _APP)
        assert proc.returncode == 0, proc.stderr
        assert "protobuf loaded: False" in proc.stdout, proc.stdout
        assert sink.wait_for(_arrived), (sink.spans, sink.logs, proc.stderr)


def test_the_setting_off_gives_the_sdks_own_exporters():
    """OTEL_MONITOR_LEAN_OTLP=false: the SDK's exporters (which load protobuf) send the same signals."""
    with OTLPSink() as sink:
        proc = _launch({**sink.env(), "OTEL_MONITOR_LEAN_OTLP": "false"}, _APP)
        assert proc.returncode == 0, proc.stderr
        assert "protobuf loaded: True" in proc.stdout, proc.stdout
        assert sink.wait_for(_arrived), (sink.spans, sink.logs, proc.stderr)


_CHAIN = """
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SpanExporter

    def walk(obj, path, depth=0):  # through processors and exporter wrappers down to the exporters
        if isinstance(obj, SpanExporter):
            path = path + [type(obj).__module__ + "." + type(obj).__name__]
            if not any(hasattr(obj, a) for a in ("inner", "exporter")):
                print(" > ".join(path))
                return
        if depth < 8:
            for attribute in ("_span_processors", "_batch_processor", "_exporter", "exporter", "inner",
                              "processor", "_processor", "_delegate"):
                child = getattr(obj, attribute, None)
                for item in child if isinstance(child, tuple) else [child]:
                    if item is not None:
                        walk(item, path, depth + 1)

    walk(trace.get_tracer_provider()._active_span_processor, [])
"""


def _exporter_chains(env: dict[str, str]) -> list[str]:
    with OTLPSink() as sink:
        proc = _launch({**sink.env(), **env}, _CHAIN)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_only_otlp_http_is_replaced_and_the_configured_order_kept():
    """With "otlp,console" the OTLP exporter is otel-monitor's and comes first; the console exporter is the SDK's."""
    chains = _exporter_chains({"OTEL_TRACES_EXPORTER": "otlp,console"})
    assert len(chains) == 2, chains
    assert chains[0].endswith("otel_monitor.fast.otlp_exporters.OTLPSpanExporter"), chains
    assert chains[1].endswith("opentelemetry.sdk.trace.export.ConsoleSpanExporter"), chains


def test_with_the_setting_off_spans_take_the_sdks_exporter_and_encoder():
    """OTEL_MONITOR_LEAN_OTLP=false: the SDK's own span exporter, not wrapped by otel-monitor's encoder."""
    (chain,) = _exporter_chains({"OTEL_MONITOR_LEAN_OTLP": "false"})
    assert chain.endswith("opentelemetry.exporter.otlp.proto.http.trace_exporter.OTLPSpanExporter"), chain
    assert "FastSpanExporter" not in chain, chain


def test_the_sdk_resolves_names_the_same_way_with_ours_in_place():
    """Names other than otlp_proto_http reach the SDK's resolver, in order; an unknown name still fails as in the SDK."""
    from opentelemetry.sdk import _configuration

    from otel_monitor.launcher.configurator import _lean_otlp_exporters

    with _lean_otlp_exporters(True):
        traces, metrics, logs = _configuration._import_exporters(
            ["console", "otlp_proto_http"], ["otlp_proto_http"], []
        )
        assert list(traces) == ["console", "otlp_proto_http"] and traces["otlp_proto_http"] is OTLPSpanExporter
        assert metrics == {"otlp_proto_http": OTLPMetricExporter} and logs == {}
        with pytest.raises(RuntimeError, match="nope"):
            _configuration._import_exporters(["nope", "otlp_proto_http"], [], [])
    assert _configuration._import_exporters(["otlp_proto_http"], [], [])[0]["otlp_proto_http"] is SDKSpanExporter


def test_environment_settings_are_the_sdks(monkeypatch):
    """Per-signal endpoint, headers, timeout and compression variables are read as the SDK's exporters read them."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:9999/custom")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc,x-tenant=shop")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "3")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
    for ours, sdk in PAIRS:
        mine, theirs = ours(), sdk()
        assert mine._endpoint == theirs._endpoint
        assert mine._client._headers == theirs._client._headers
        assert mine._client._timeout == theirs._client._timeout
        assert mine._compression is theirs._compression
    assert OTLPLogExporter()._endpoint == "http://logs:9999/custom"
    assert OTLPSpanExporter()._endpoint == "http://collector:4318/v1/traces"
    assert OTLPSpanExporter()._client._headers["authorization"] == "Bearer abc"
    metric_exporter = OTLPMetricExporter()
    assert metric_exporter._preferred_temporality[Counter] is AggregationTemporality.DELTA
    assert type(metric_exporter._preferred_aggregation[Histogram]).__name__ == "ExplicitBucketHistogramAggregation"


def test_each_exporter_delivers_to_a_real_receiver_gzipped():
    """Spans, metric points and log records each arrive, gzip-compressed, at their signal's path."""
    with OTLPSink() as sink:
        base = sink.endpoint.rstrip("/")
        spans = recorded_spans()
        assert (
            OTLPSpanExporter(f"{base}/v1/traces", compression=Compression.Gzip).export(spans)
            is SpanExportResult.SUCCESS
        )
        metrics = OTLPMetricExporter(f"{base}/v1/metrics")
        assert metrics.export(recorded_metrics()) is MetricExportResult.SUCCESS
        logs = OTLPLogExporter(f"{base}/v1/logs")
        assert logs.export([_log("hello", {"k": "v"})]) is LogRecordExportResult.SUCCESS
        assert sink.wait_for(lambda s: len(s.spans) == len(spans) and s.logs and s.metric_points("latency"))
    assert {r["body"] for r in sink.logs} == {"hello"}
    assert sorted(p["attributes"]["route"] for p in sink.metric_points("latency")) == ["/a", "/b"]
    assert ("/v1/traces", "application/x-protobuf") in sink.requests


def test_metric_batches_are_split_by_data_points():
    """max_export_batch_size=2 sends requests of at most two points each, and every point arrives."""
    data = recorded_metrics()
    total = sum(len(m.data.data_points) for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics)
    with OTLPSink() as sink:
        exporter = OTLPMetricExporter(f"{sink.endpoint.rstrip('/')}/v1/metrics", max_export_batch_size=2)
        assert exporter.export(data) is MetricExportResult.SUCCESS
        assert sink.wait_for(lambda s: s.attempts.get("metrics", 0) == (total + 1) // 2)
        assert len(sink.metrics) == total


def test_an_oversized_request_is_dropped_and_a_refusal_is_a_failure():
    """Over max_request_size nothing is sent; a 400 answer fails the export; after shutdown exports are refused."""
    with OTLPSink() as sink:
        base = sink.endpoint.rstrip("/")
        small = OTLPSpanExporter(f"{base}/v1/traces", max_request_size=50)
        assert small.export(recorded_spans()) is SpanExportResult.FAILURE
        time.sleep(0.2)
        assert sink.attempts.get("traces", 0) == 0
        sink.status = 400
        logs = OTLPLogExporter(f"{base}/v1/logs")
        assert logs.export([_log("refused")]) is LogRecordExportResult.FAILURE
        assert sink.attempts.get("logs") == 1  # not retried: 400 is not transient
        logs.shutdown()
        sink.status = 200
        assert logs.export([_log("late")]) is LogRecordExportResult.FAILURE
        assert sink.attempts.get("logs") == 1


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_certificate_arguments_reach_the_transport_as_in_the_sdks_exporter(signal: str) -> None:
    """The CA and client certificate arguments configure the HTTP session as the SDK's exporter's do."""
    from otel_monitor.fast.otlp_exporters import EXPORTERS

    exporter = EXPORTERS[signal](
        endpoint="http://127.0.0.1:1/v1/x",
        certificate_file="ca.pem",
        client_key_file="client-key.pem",
        client_certificate_file="client-cert.pem",
    )
    session = exporter._client._transport._session
    assert session.verify == "ca.pem"
    assert session.cert == ("client-cert.pem", "client-key.pem")
