"""A pytest plugin that puts otel-monitor's replacements where production puts them.

Loaded into an upstream project's own test run (``-p swap``) by
``.ci/upstream/run.py``. ``UPSTREAM_SWAP`` names what to swap (comma
separated; ``all`` by default):

- ``spans``: every SDK ``TracerProvider`` hands out otel-monitor's tracer and
  span type, as ``otel_monitor.fast.spans.install`` does for the provider the
  configurator builds;
- ``encoders``: the SDK's OTLP protobuf encoders answer with the messages
  otel-monitor's encoder writes (its bytes parsed back into the SDK's message
  types, which is what the receiver sees);
- ``exporters``: the SDK's OTLP/HTTP exporter classes are otel-monitor's, as
  the configurator builds them under ``OTEL_MONITOR_LEAN_OTLP``;
- ``fastapi``: every FastAPI app's native telemetry is served through
  otel-monitor's request path, as the launcher does under
  ``OTEL_MONITOR_LEAN_REQUESTS``.
"""

from __future__ import annotations

import os
from typing import Any

SWAPS = {s.strip() for s in os.environ.get("UPSTREAM_SWAP", "all").split(",") if s.strip()}


def _wanted(name: str) -> bool:
    return "all" in SWAPS or name in SWAPS


def _swap_spans() -> None:
    from opentelemetry.sdk import trace as sdk_trace

    from otel_monitor.fast import spans

    if not spans.trial_run():  # the check install() makes, done once here
        raise RuntimeError("otel-monitor's span type failed its trial run: nothing to swap")
    # Once is enough: the trial makes a provider of its own, which would be installed in turn.
    spans.trial_run = lambda: True
    original = sdk_trace.TracerProvider.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if type(self) is sdk_trace.TracerProvider:
            spans.install(self)

    sdk_trace.TracerProvider.__init__ = __init__  # type: ignore[method-assign]


def _swap_encoders() -> None:
    from opentelemetry.exporter.otlp.proto.common import _log_encoder, metrics_encoder, trace_encoder
    from opentelemetry.exporter.otlp.proto.common._internal import _log_encoder as internal_logs
    from opentelemetry.exporter.otlp.proto.common._internal import metrics_encoder as internal_metrics
    from opentelemetry.exporter.otlp.proto.common._internal import trace_encoder as internal_traces
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from otel_monitor.otlp import encode

    def encode_spans(spans: Any) -> Any:
        return ExportTraceServiceRequest.FromString(encode.encode_spans(spans))

    def encode_logs(batch: Any) -> Any:
        return ExportLogsServiceRequest.FromString(encode.encode_logs(batch))

    def encode_metrics(data: Any) -> Any:
        return ExportMetricsServiceRequest.FromString(encode.encode_metrics(data))

    for module in (trace_encoder, internal_traces):
        module.encode_spans = encode_spans
    for module in (_log_encoder, internal_logs):
        module.encode_logs = encode_logs
    for module in (metrics_encoder, internal_metrics):
        module.encode_metrics = encode_metrics


def _swap_exporters() -> None:
    from opentelemetry.exporter.otlp.proto import http as package
    from opentelemetry.exporter.otlp.proto.http import _log_exporter, metric_exporter, trace_exporter

    from otel_monitor.fast import otlp_exporters as ours

    trace_exporter.OTLPSpanExporter = ours.OTLPSpanExporter
    _log_exporter.OTLPLogExporter = ours.OTLPLogExporter
    metric_exporter.OTLPMetricExporter = ours.OTLPMetricExporter
    for name in ("OTLPSpanExporter", "OTLPLogExporter", "OTLPMetricExporter"):
        if hasattr(package, name):
            setattr(package, name, getattr(ours, name))


def _swap_fastapi() -> None:
    import fastapi

    from otel_monitor.fast import fastapi_requests

    reason = fastapi_requests.unsupported_reason()
    if reason is not None:
        raise RuntimeError(f"otel-monitor's FastAPI request path does not serve this FastAPI: {reason}")
    original = fastapi.FastAPI.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        fastapi_requests.serve(self)

    fastapi.FastAPI.__init__ = __init__  # type: ignore[method-assign]


def pytest_configure(config: Any) -> None:
    for name, swap in (("spans", _swap_spans), ("encoders", _swap_encoders), ("exporters", _swap_exporters),
                       ("fastapi", _swap_fastapi)):
        if _wanted(name):
            try:
                swap()
            except ImportError:
                pass  # the package this swap is for is not part of this run
