"""Per-span cost of otel-monitor's processors over the plain SDK, and request throughput.

    python -m benchmarks.processors [--spans 20000] [--requests 2000]

Span cost: CPU time (all threads, so the batch exporter's thread counts too)
to create, end and export N server spans through a BatchSpanProcessor whose
exporter discards, with and without our pipeline; two cases: nothing to redact,
and one attribute that must be redacted.  Throughput: in-process ASGI requests
per second to a FastAPI endpoint with no telemetry, with the plain SDK (before
this work) and with our pipeline added (after).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from otel_monitor.config.file import EMPTY
from otel_monitor.config.settings import resolve
from otel_monitor.pipeline.processors import build_pipeline


class Discard(SpanExporter):
    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def meter_provider_as_configured() -> MeterProvider:
    """Exemplars off, as the distro sets by default (OTEL_METRICS_EXEMPLAR_FILTER=always_off), on both sides."""
    return MeterProvider(metric_readers=[InMemoryMetricReader()], exemplar_filter=AlwaysOffExemplarFilter())


def providers(ours: bool) -> tuple[TracerProvider, MeterProvider, LoggerProvider]:
    tracer_provider = TracerProvider()
    meter_provider = meter_provider_as_configured()
    logger_provider = LoggerProvider()
    exporter: SpanExporter = Discard()
    if ours:
        pipeline = build_pipeline(resolve({}, environ={}), EMPTY, meter_provider, logger_provider)
        for processor in pipeline.span_processors:
            tracer_provider.add_span_processor(processor)
        exporter = pipeline.wrap_span_exporter(exporter)
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=65536, max_export_batch_size=512))
    return tracer_provider, meter_provider, logger_provider


def cpu_per_span(ours: bool, n: int, attributes: dict[str, Any]) -> float:
    gc.collect()
    tracer_provider, meter_provider, _ = providers(ours)
    tracer = tracer_provider.get_tracer("bench")
    start = time.process_time()
    for _ in range(n):
        with tracer.start_as_current_span("GET /items/{item_id}", kind=SpanKind.SERVER, attributes=attributes):
            pass
    tracer_provider.force_flush()
    elapsed = time.process_time() - start
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return elapsed / n * 1e6


def best(fn: Callable[[], float], repeats: int = 3) -> float:
    return min(fn() for _ in range(repeats))


CLEAN = {"http.request.method": "GET", "http.route": "/items/{item_id}", "url.path": "/items/42",
         "url.scheme": "http", "http.response.status_code": 200, "server.address": "127.0.0.1",
         "server.port": 8000, "network.protocol.version": "1.1", "user_agent.original": "wrk/4.2.0"}
SECRET = {**CLEAN, "url.query": "email=alice@example.com&page=2"}


def direct_cost(n: int, attributes: dict[str, Any]) -> float:
    """Our code alone, single thread: on_end plus export-time enrichment of one finished span."""
    tracer_provider, meter_provider, logger_provider = providers(False)
    with tracer_provider.get_tracer("bench").start_as_current_span(
            "GET /items/{item_id}", kind=SpanKind.SERVER, attributes=attributes) as span:
        pass
    pipeline = build_pipeline(resolve({}, environ={}), EMPTY, meter_provider, logger_provider)
    processor, enricher = pipeline.span_processors[0], pipeline.enricher
    assert enricher is not None
    gc.collect()
    start = time.process_time()
    for _ in range(n):
        processor.on_end(span)
        enricher.enrich(span)
    elapsed = time.process_time() - start
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return elapsed / n * 1e6


def histogram_record_cost(n: int) -> float:
    """The SDK's own cost of one histogram point: the floor of any per-span metric."""
    meter_provider = meter_provider_as_configured()
    histogram = meter_provider.get_meter("bench").create_histogram("h")
    labels = {"monitor.operation": "GET /items/{item_id}"}
    start = time.process_time()
    for _ in range(n):
        histogram.record(0.01, labels)
    elapsed = time.process_time() - start
    meter_provider.shutdown()
    return elapsed / n * 1e6


def our_histogram_record_cost(n: int) -> float:
    """The same point through our operation histogram (cardinality guard, then the SDK's aggregation)."""
    from otel_monitor.pipeline.instruments import create_instruments

    meter_provider = meter_provider_as_configured()
    histogram = create_instruments(meter_provider).operation_duration
    labels = {"monitor.operation": "GET /items/{item_id}"}
    key = ("GET /items/{item_id}",)
    start = time.process_time()
    for _ in range(n):
        histogram.record(0.01, labels, key=key)
    elapsed = time.process_time() - start
    meter_provider.shutdown()
    return elapsed / n * 1e6


def span_report(n: int) -> None:
    print(f"per-span CPU cost, {n} server spans, BatchSpanProcessor + discarding exporter (best of 5)")
    print(f"  for scale: one SDK histogram record costs {best(lambda: histogram_record_cost(n)):.1f} us; "
          f"the same point through our operation histogram {best(lambda: our_histogram_record_cost(n)):.1f} us")
    for label, attributes in (("nothing to redact", CLEAN), ("redaction matches", SECRET)):
        # Interleaved runs, best of each: other load on the machine hits both sides alike.
        runs = [(cpu_per_span(False, n, attributes), cpu_per_span(True, n, attributes)) for _ in range(5)]
        plain, ours = min(r[0] for r in runs), min(r[1] for r in runs)
        print(f"  {label:18s} plain SDK {plain:6.1f} us/span   with otel-monitor {ours:6.1f} us/span   "
              f"ours adds {ours - plain:5.1f} us/span")
        print(f"  {'':18s} our on_end + export enrichment alone, one thread: "
              f"{best(lambda attributes=attributes: direct_cost(n, attributes), 5):5.1f} us/span")


def requests_per_second(mode: str, n: int) -> float:
    import httpx
    from fastapi import FastAPI

    telemetry: dict[str, Any] = {"auto_configure": False}
    if mode == "none":
        telemetry = {"tracing": False, "metrics": False, "logs": False, "auto_configure": False}
    else:
        tracer_provider, meter_provider, logger_provider = providers(mode == "ours")
        telemetry.update(tracer_provider=tracer_provider, meter_provider=meter_provider,
                         logger_provider=logger_provider)
    app = FastAPI(telemetry=telemetry)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    async def run() -> float:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for i in range(50):
                await client.get(f"/items/{i}")
            start = time.perf_counter()
            for i in range(n):
                await client.get(f"/items/{i}")
            return n / (time.perf_counter() - start)

    return asyncio.run(run())


def throughput_report(n: int) -> None:
    print(f"in-process ASGI throughput, {n} requests to GET /items/{{item_id}} (best of 3)")
    rates = {mode: best(lambda mode=mode: requests_per_second(mode, n)) for mode in ("none", "sdk", "ours")}
    print(f"  uninstrumented {rates['none']:8.0f} req/s")
    print(f"  plain SDK      {rates['sdk']:8.0f} req/s  ratio {rates['sdk'] / rates['none']:.2f}  (before)")
    print(f"  otel-monitor   {rates['ours']:8.0f} req/s  ratio {rates['ours'] / rates['none']:.2f}  (after); "
          f"after/before {rates['ours'] / rates['sdk']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2_000)
    args = parser.parse_args()
    span_report(min(args.spans, 200_000))
    throughput_report(min(args.requests, 20_000))


if __name__ == "__main__":
    main()
