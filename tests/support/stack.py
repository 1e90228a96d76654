"""A real telemetry stack for tests: SDK providers, our pipeline, OTLP to an OTLPSink."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Sampler

from otel_monitor.config.file import EMPTY, ConfigFile, parse_config_text
from otel_monitor.config.settings import resolve
from otel_monitor.fast import spans
from otel_monitor.pipeline.processors import Pipeline, build_pipeline
from otel_monitor.pipeline.tail_sampling import RecordAllSampler


class _Switch(SpanProcessor):
    """The global provider's one processor: forwards to the current test's stack."""

    target: SpanProcessor | None = None

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.target is not None:
            self.target.on_start(span, parent_context)

    def on_end(self, span: Any) -> None:
        if self.target is not None:
            self.target.on_end(span)


_SWITCH = _Switch()
_GLOBAL = TracerProvider(sampler=RecordAllSampler(ALWAYS_ON))
_GLOBAL.add_span_processor(_SWITCH)
spans.install(_GLOBAL)  # the span type the configurator installs (OTEL_MONITOR_LEAN_SPANS)
trace.set_tracer_provider(_GLOBAL)


class _Composite(SpanProcessor):
    def __init__(self, processors: list[SpanProcessor]) -> None:
        self.processors = processors

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        for p in self.processors:
            p.on_start(span, parent_context)

    def on_end(self, span: Any) -> None:
        for p in self.processors:
            p.on_end(span)

    def shutdown(self) -> None:
        for p in self.processors:
            p.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(p.force_flush(timeout_millis) for p in self.processors)


@dataclass
class Stack:
    pipeline: Pipeline
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider
    reader: InMemoryMetricReader
    chain: SpanProcessor

    @property
    def tracer(self) -> Any:
        return self.tracer_provider.get_tracer("tests")

    def flush(self) -> None:
        self.tracer_provider.force_flush()
        self.chain.force_flush()
        self.logger_provider.force_flush()

    def points(self, name: str) -> list[Any]:
        """Data points of metric ``name`` from the in-memory reader."""
        data = self.reader.get_metrics_data()
        out = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        out.extend(m.data.data_points)
        return out

    def close(self) -> None:
        _SWITCH.target = None
        self.flush()
        self.chain.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()


def make_stack(
    sink: Any,
    config_text: str | None = None,
    sampler: Sampler | None = None,
    schedule_delay_millis: int = 100,
    **settings: Any,
) -> Stack:
    """Our pipeline between SDK providers and real OTLP/HTTP exporters pointed at ``sink``."""
    config: ConfigFile = parse_config_text(config_text, "otel-monitor.yaml") if config_text else EMPTY
    resolved = resolve(settings, environ={})
    resource = Resource.create({"service.name": "test-shop"})
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], resource=resource)
    logger_provider = LoggerProvider(resource=resource)
    pipeline = build_pipeline(resolved, config, meter_provider, logger_provider)
    for lp in pipeline.log_record_processors:
        logger_provider.add_log_record_processor(lp)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(
            pipeline.wrap_log_exporter(OTLPLogExporter(endpoint=f"{sink.endpoint}/v1/logs")), schedule_delay_millis=100
        )
    )
    export = BatchSpanProcessor(
        pipeline.wrap_span_exporter(OTLPSpanExporter(endpoint=f"{sink.endpoint}/v1/traces")),
        schedule_delay_millis=schedule_delay_millis,
    )
    chain = _Composite([*pipeline.span_processors, export])
    if sampler is None:
        tracer_provider = _GLOBAL
        _SWITCH.target = chain
    else:
        tracer_provider = TracerProvider(sampler=RecordAllSampler(sampler), resource=resource)
        tracer_provider.add_span_processor(chain)
        spans.install(tracer_provider)
    return Stack(pipeline, tracer_provider, meter_provider, logger_provider, reader, chain)
