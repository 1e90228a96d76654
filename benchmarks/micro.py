"""Micro-benchmarks: one part of the telemetry path at a time, by name.

    python -m benchmarks.micro --list
    python -m benchmarks.micro CASE [--help | the case's options]

Cases:

* ``span-cost``: per-item cost of whatever pipeline the launcher installed,
  run under it (``opentelemetry-instrument python -m benchmarks.micro
  span-cost``); ``make bench`` runs it under each launcher;
* ``server-span``: the SDK's server span, driven as FastAPI's telemetry drives
  it, against otel-monitor's span type and the least any span type could cost;
* ``processors``: CPU per span of otel-monitor's processors over the plain
  SDK, and in-process request throughput with each;
* ``encoding``: the export thread's cost per span, the SDK's OTLP encoder and
  gzip level against otel-monitor's;
* ``runtime-metrics``: microseconds per metric collection the runtime metrics
  add;
* ``gc-cost``: what the cyclic garbage collector costs a loaded server per
  request, with ``OTEL_MONITOR_GC_FREEZE`` on and off (needs wrk).

Only the standard library is imported at the top: ``span-cost`` runs in the
vanilla venv too, which has no otel-monitor, and ``gc-cost``'s server, the
process measured, imports nothing of the harness.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.configurations import Configuration


# --- span-cost ---------------------------------------------------------------------------------------------------


def per_item_us(count: int, action: Callable[[int], None]) -> float:
    start = time.perf_counter()
    for n in range(count):
        action(n)
    return (time.perf_counter() - start) / count * 1e6


def span_cost(argv: list[str]) -> int:
    """Per-item cost of the configured pipeline, under a launcher: one JSON line of µs per item.

    Uses only the OpenTelemetry API, so whatever providers, processors and
    sampler the launcher installed are what gets timed: a server span with a
    child, a histogram record and an INFO log record.
    """
    import logging

    from opentelemetry import metrics, trace

    parser = argparse.ArgumentParser(prog="python -m benchmarks.micro span-cost", description=_first_line(span_cost))
    parser.add_argument("--count", type=int, default=20000)
    args = parser.parse_args(argv)
    tracer = trace.get_tracer("bench.span_cost")
    histogram = metrics.get_meter("bench.span_cost").create_histogram("bench.request.duration", unit="s")
    log = logging.getLogger("bench.span_cost")
    log.setLevel(logging.INFO)

    def request_with_child(n: int) -> None:
        with tracer.start_as_current_span(
            "GET /api/products/{product_id}",
            kind=trace.SpanKind.SERVER,
            attributes={
                "http.request.method": "GET",
                "http.route": "/api/products/{product_id}",
                "url.path": f"/api/products/{n % 100}",
            },
        ) as span:
            with tracer.start_as_current_span(
                "SELECT products", kind=trace.SpanKind.CLIENT, attributes={"db.system.name": "sqlite"}
            ):
                pass
            span.set_attribute("http.response.status_code", 200)

    def record(n: int) -> None:
        histogram.record(0.001 * (n % 50), {"http.route": "/api/products/{product_id}"})

    def emit(n: int) -> None:
        log.info("product served %d", n)

    per_item_us(min(args.count, 1000), request_with_child)  # warm-up
    result = {
        "span_pair_us": per_item_us(args.count, request_with_child),
        "histogram_record_us": per_item_us(args.count, record),
        "log_record_us": per_item_us(args.count, emit),
        "tracer_provider": type(trace.get_tracer_provider()).__name__,
    }
    # Before shutdown: the exporter's flush at exit is not part of the measurement.
    print(json.dumps(result), flush=True)
    return 0


# --- server-span -------------------------------------------------------------------------------------------------

REQUEST_ATTRIBUTES: dict[str, Any] = {
    "url.scheme": "http",
    "http.request.method": "GET",
    "network.protocol.version": "1.1",
}
START_ATTRIBUTES: dict[str, Any] = {
    **REQUEST_ATTRIBUTES,
    "server.address": "127.0.0.1",
    "server.port": 8000,
    "url.path": "/ping",
}
FINAL_ATTRIBUTES: dict[str, Any] = {**REQUEST_ATTRIBUTES, "http.route": "/ping", "http.response.status_code": 200}


class BareSpan:
    """The least a span can be: a name, attributes and two timestamps."""

    __slots__ = ("attributes", "end_time", "name", "start_time")

    def __init__(self, name: str, attributes: dict[str, Any]) -> None:
        self.name = name
        self.attributes = dict(attributes)
        self.start_time = time.time_ns()
        self.end_time = 0

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        self.attributes.update(attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def update_name(self, name: str) -> None:
        self.name = name

    def end(self) -> None:
        self.end_time = time.time_ns()


def request_lifecycle(start: Callable[[], Any]) -> None:
    """One request's span, as FastAPI's telemetry drives it for a successful GET."""
    from opentelemetry import trace

    span = start()
    with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
        span.set_attribute("http.route", "/ping")  # the route is selected
        span.update_name("GET /ping")
    span.set_attributes(FINAL_ATTRIBUTES)  # the response is sent
    span.end()


def server_span_costs(number: int, repeat: int) -> dict[str, float]:
    """µs per request of the server span: the SDK's, otel-monitor's, and the bare lower bound."""
    import timeit

    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from opentelemetry.trace import SpanKind

    from otel_monitor.fast import spans
    from otel_monitor.pipeline.tail_sampling import RecordAllSampler

    tracer = TracerProvider(sampler=RecordAllSampler(ParentBased(TraceIdRatioBased(0.1)))).get_tracer("fastapi")
    lean_provider = TracerProvider(sampler=RecordAllSampler(ParentBased(TraceIdRatioBased(0.1))))
    spans.install(lean_provider)
    lean_tracer = lean_provider.get_tracer("fastapi")
    parent = Context()

    def sdk() -> Any:
        return tracer.start_span("GET", context=parent, kind=SpanKind.SERVER, attributes=START_ATTRIBUTES)

    def lean() -> Any:
        return lean_tracer.start_span("GET", context=parent, kind=SpanKind.SERVER, attributes=START_ATTRIBUTES)

    def bare() -> Any:
        return BareSpan("GET", START_ATTRIBUTES)

    result = {}
    for name, start in (("sdk_span_us", sdk), ("otel_monitor_span_us", lean), ("bare_span_us", bare)):
        best = min(timeit.repeat(lambda start=start: request_lifecycle(start), number=number, repeat=repeat))
        result[name] = best / number * 1e6
    result["most_a_span_type_could_save_us"] = result["sdk_span_us"] - result["bare_span_us"]
    return result


def server_span(argv: list[str]) -> int:
    """The SDK's server span, as FastAPI's telemetry drives it, against otel-monitor's span type and a bare bound.

    Started with the request attributes under otel-monitor's sampler
    (production profile: 10% of traces sampled, the rest recorded only), made
    current while the app runs, given its route and renamed, given the final
    attributes, ended; no span processor. The bound does the same to a slotted
    object holding a dict and two timestamps: no span type could cost less.
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.micro server-span", description=_first_line(server_span)
    )
    parser.add_argument("--number", type=int, default=20_000, help="span lifecycles per timing")
    parser.add_argument("--repeat", type=int, default=7, help="timings; the best is reported")
    args = parser.parse_args(argv)
    result = server_span_costs(args.number, args.repeat)
    print(f"SDK server span, recorded, as FastAPI's telemetry drives it: {result['sdk_span_us']:.2f} µs per request")
    print(
        f"otel-monitor's span type, the same calls:                   "
        f"{result['otel_monitor_span_us']:.2f} µs per request"
    )
    print(f"bare span (dict and two timestamps):                        {result['bare_span_us']:.2f} µs per request")
    print(json.dumps(result))
    return 0


# --- processors --------------------------------------------------------------------------------------------------

CLEAN = {
    "http.request.method": "GET",
    "http.route": "/items/{item_id}",
    "url.path": "/items/42",
    "url.scheme": "http",
    "http.response.status_code": 200,
    "server.address": "127.0.0.1",
    "server.port": 8000,
    "network.protocol.version": "1.1",
    "user_agent.original": "wrk/4.2.0",
}
SECRET = {**CLEAN, "url.query": "email=alice@example.com&page=2"}


def _meter_provider_as_configured() -> Any:
    """Exemplars off, as the distro sets by default (OTEL_METRICS_EXEMPLAR_FILTER=always_off), on both sides."""
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    return MeterProvider(metric_readers=[InMemoryMetricReader()], exemplar_filter=AlwaysOffExemplarFilter())


def _providers(ours: bool) -> tuple[Any, Any, Any]:
    """Tracer, meter and logger providers with a batch processor into a discarding exporter, with our pipeline or not."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from otel_monitor.config.file import EMPTY
    from otel_monitor.config.settings import resolve
    from otel_monitor.pipeline.processors import build_pipeline

    class Discard(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    meter_provider = _meter_provider_as_configured()
    logger_provider = LoggerProvider()
    exporter: SpanExporter = Discard()
    if ours:
        pipeline = build_pipeline(resolve({}, environ={}), EMPTY, meter_provider, logger_provider)
        for processor in pipeline.span_processors:
            tracer_provider.add_span_processor(processor)
        exporter = pipeline.wrap_span_exporter(exporter)
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=65536, max_export_batch_size=512))
    return tracer_provider, meter_provider, logger_provider


def _cpu_per_span(ours: bool, n: int, attributes: dict[str, Any]) -> float:
    import gc

    from opentelemetry.trace import SpanKind

    gc.collect()
    tracer_provider, meter_provider, _ = _providers(ours)
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


def _best(fn: Callable[[], float], repeats: int = 3) -> float:
    return min(fn() for _ in range(repeats))


def _direct_cost(n: int, attributes: dict[str, Any]) -> float:
    """Our code alone, single thread: on_end plus export-time enrichment of one finished span."""
    import gc

    from opentelemetry.trace import SpanKind

    from otel_monitor.config.file import EMPTY
    from otel_monitor.config.settings import resolve
    from otel_monitor.pipeline.processors import build_pipeline

    tracer_provider, meter_provider, logger_provider = _providers(False)
    with tracer_provider.get_tracer("bench").start_as_current_span(
        "GET /items/{item_id}", kind=SpanKind.SERVER, attributes=attributes
    ) as span:
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


def _histogram_record_cost(n: int, ours: bool) -> float:
    """One point: the SDK's own histogram (the floor of any per-span metric), or our operation histogram."""
    from otel_monitor.pipeline.instruments import create_instruments

    meter_provider = _meter_provider_as_configured()
    labels = {"monitor.operation": "GET /items/{item_id}"}
    if ours:
        histogram = create_instruments(meter_provider).operation_duration
        key = ("GET /items/{item_id}",)
        start = time.process_time()
        for _ in range(n):
            histogram.record(0.01, labels, key=key)
    else:
        sdk_histogram = meter_provider.get_meter("bench").create_histogram("h")
        start = time.process_time()
        for _ in range(n):
            sdk_histogram.record(0.01, labels)
    elapsed = time.process_time() - start
    meter_provider.shutdown()
    return elapsed / n * 1e6


def _requests_per_second(mode: str, n: int) -> float:
    import asyncio

    import httpx
    from fastapi import FastAPI

    telemetry: dict[str, Any] = {"auto_configure": False}
    if mode == "none":
        telemetry = {"tracing": False, "metrics": False, "logs": False, "auto_configure": False}
    else:
        tracer_provider, meter_provider, logger_provider = _providers(mode == "ours")
        telemetry.update(
            tracer_provider=tracer_provider, meter_provider=meter_provider, logger_provider=logger_provider
        )
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


def processors(argv: list[str]) -> int:
    """CPU per span of otel-monitor's processors over the plain SDK, and in-process request throughput.

    Span cost: CPU time (all threads, so the batch exporter's thread counts
    too) to create, end and export N server spans through a batch processor
    whose exporter discards, with and without our pipeline, with nothing to
    redact and with one attribute to redact. Throughput: in-process ASGI
    requests per second to a FastAPI endpoint with no telemetry, with the
    plain SDK and with our pipeline added.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.micro processors", description=_first_line(processors))
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2_000)
    args = parser.parse_args(argv)
    n = min(args.spans, 200_000)
    print(f"per-span CPU cost, {n} server spans, BatchSpanProcessor + discarding exporter (best of 5)")
    print(
        f"  for scale: one SDK histogram record costs {_best(lambda: _histogram_record_cost(n, False)):.1f} us; "
        f"the same point through our operation histogram {_best(lambda: _histogram_record_cost(n, True)):.1f} us"
    )
    for label, attributes in (("nothing to redact", CLEAN), ("redaction matches", SECRET)):
        # Interleaved runs, best of each: other load on the machine hits both sides alike.
        runs = [(_cpu_per_span(False, n, attributes), _cpu_per_span(True, n, attributes)) for _ in range(5)]
        plain, ours = min(r[0] for r in runs), min(r[1] for r in runs)
        print(
            f"  {label:18s} plain SDK {plain:6.1f} us/span   with otel-monitor {ours:6.1f} us/span   "
            f"ours adds {ours - plain:5.1f} us/span"
        )
        print(
            f"  {'':18s} our on_end + export enrichment alone, one thread: "
            f"{_best(lambda attributes=attributes: _direct_cost(n, attributes), 5):5.1f} us/span"
        )
    requests = min(args.requests, 20_000)
    print(f"in-process ASGI throughput, {requests} requests to GET /items/{{item_id}} (best of 3)")
    rates = {mode: _best(lambda mode=mode: _requests_per_second(mode, requests)) for mode in ("none", "sdk", "ours")}
    print(f"  uninstrumented {rates['none']:8.0f} req/s")
    print(f"  plain SDK      {rates['sdk']:8.0f} req/s  ratio {rates['sdk'] / rates['none']:.2f}")
    print(
        f"  otel-monitor   {rates['ours']:8.0f} req/s  ratio {rates['ours'] / rates['none']:.2f}; "
        f"against the plain SDK {rates['ours'] / rates['sdk']:.2f}"
    )
    return 0


# --- encoding ----------------------------------------------------------------------------------------------------


def _finished_server_spans(count: int) -> list[Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("fastapi", "0.165")
    for i in range(count):
        with tracer.start_as_current_span(
            "GET /api/products/{product_id}",
            kind=SpanKind.SERVER,
            attributes={
                "url.scheme": "http",
                "http.request.method": "GET",
                "network.protocol.version": "1.1",
                "server.address": "127.0.0.1",
                "server.port": 8000,
                "url.path": f"/api/products/{i}",
                "http.route": "/api/products/{product_id}",
                "http.response.status_code": 200,
                "monitor.operation": "product_view",
            },
        ):
            pass
    return list(exporter.get_finished_spans())


def _gzip9(data: bytes) -> bytes:
    import gzip
    import io

    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="w") as stream:
        stream.write(data)
    return buffer.getvalue()


def encoding(argv: list[str]) -> int:
    """Export-thread cost per span: the SDK's OTLP encoder against ours, gzip level 9 against 1."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode

    from otel_monitor.otlp.encode import encode_spans, gzip_fast

    parser = argparse.ArgumentParser(prog="python -m benchmarks.micro encoding", description=_first_line(encoding))
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    spans = _finished_server_spans(args.spans)
    data = encode_spans(spans)

    def per_span(function: Callable[[], object]) -> float:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(args.rounds):
                function()
            best = min(best, (time.perf_counter() - started) / args.rounds / len(spans) * 1e6)
        return best

    print(f"{len(spans)} server spans, best of 3 x {args.rounds} rounds, µs per span")
    print(f"  encode  SDK (message objects)  {per_span(lambda: sdk_encode(spans).SerializePartialToString()):6.1f}")
    print(f"  encode  otel-monitor           {per_span(lambda: encode_spans(spans)):6.1f}")
    print(f"  gzip    level 9 (SDK)          {per_span(lambda: _gzip9(data)):6.1f}   {len(_gzip9(data)):,} B")
    print(
        f"  gzip    level 1 (otel-monitor) {per_span(lambda: gzip_fast(data)):6.1f}   {len(gzip_fast(data)):,} B"
        f"   (raw {len(data):,} B)"
    )
    return 0


# --- runtime-metrics ---------------------------------------------------------------------------------------------


def runtime_metrics(argv: list[str]) -> int:
    """Cost of the runtime metrics: microseconds per metric collection, with them against without."""
    import statistics

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otel_monitor.config.settings import resolve
    from otel_monitor.pipeline.runtime_metrics import start_runtime_metrics, stop_runtime_metrics

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.micro runtime-metrics", description=_first_line(runtime_metrics)
    )
    parser.add_argument("--collections", type=int, default=200)
    args = parser.parse_args(argv)

    def per_collection(reader: InMemoryMetricReader) -> float:
        """Median over 5 batches of the microseconds one collection takes."""
        reader.get_metrics_data()  # warm up: first-call imports and caches
        batches = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(args.collections):
                reader.get_metrics_data()
            batches.append((time.perf_counter() - started) / args.collections * 1e6)
        return statistics.median(batches)

    baseline_reader = InMemoryMetricReader()
    MeterProvider(metric_readers=[baseline_reader])
    baseline = per_collection(baseline_reader)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    start_runtime_metrics(provider, resolve(environ={}))
    with_runtime = per_collection(reader)
    stop_runtime_metrics()
    data = reader.get_metrics_data()
    points = sum(
        len(m.data.data_points)
        for rm in (data.resource_metrics if data else ())
        for sm in rm.scope_metrics
        for m in sm.metrics
    )
    print(f"empty provider:        {baseline:8.1f} us per collection")
    print(f"with runtime metrics:  {with_runtime:8.1f} us per collection ({points} points)")
    print(
        f"runtime metrics cost:  {with_runtime - baseline:8.1f} us per collection"
        f" = {(with_runtime - baseline) / 60e6:.2e} of one core at a 60 s export interval"
    )
    return 0


# --- gc-cost -----------------------------------------------------------------------------------------------------

GC_STATS_ENV = "GC_COST_STATS"


def _serve_with_timed_collections(app: str, port: int) -> None:
    """uvicorn, with each collection timed; SIGUSR1 writes the totals so far to the file named by GC_COST_STATS."""
    import gc
    import os
    import signal
    import threading

    import uvicorn

    counts, seconds = [0, 0, 0], [0.0, 0.0, 0.0]
    started: dict[int, float] = {}

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[threading.get_ident()] = time.perf_counter()
            return
        begun = started.pop(threading.get_ident(), None)
        if begun is not None:
            counts[info["generation"]] += 1
            seconds[info["generation"]] += time.perf_counter() - begun

    def report(*_: Any) -> None:
        target = Path(os.environ[GC_STATS_ENV])
        written = target.with_suffix(".tmp")
        written.write_text(json.dumps({"counts": counts, "seconds": seconds, "frozen": gc.get_freeze_count()}))
        os.replace(written, target)

    gc.callbacks.append(timed)
    signal.signal(signal.SIGUSR1, report)
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, access_log=False, log_level="warning")


def _gc_snapshot(pid: int, path: Path) -> dict[str, Any]:
    import os
    import signal

    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            time.sleep(0.05)
    raise RuntimeError(f"server {pid} wrote no GC figures to {path}")


def _gc_measure(
    configuration: Configuration,
    args: argparse.Namespace,
    sink_endpoint: str,
    server_cpu: int | None,
    load_cpu: int | None,
    work: Path,
) -> dict[str, Any]:
    from benchmarks.loadgen import run_wrk
    from benchmarks.processes import AppServer, clean_environment, free_port

    variant, bin_dir = configuration.key, configuration.bin_dir
    port = free_port()
    command = [str(bin_dir / "python"), "-m", "benchmarks.micro", "gc-cost", "--serve", args.app, str(port)]
    if configuration.instrumented:
        command = [str(bin_dir / "opentelemetry-instrument"), *command]
    stats_path = work / f"{variant}.json"
    server_env = clean_environment(configuration.environment(sink_endpoint, service="bench-gc-cost"))
    server_env[GC_STATS_ENV] = str(stats_path)
    server = AppServer(command, server_env, port, server_cpu, work / f"{variant}.log").start(args.path)
    try:
        run_wrk(server.base_url + args.path, args.warmup, cpu=load_cpu)
        before = _gc_snapshot(server.pid, stats_path)
        load = run_wrk(server.base_url + args.path, args.seconds, cpu=load_cpu)
        after = _gc_snapshot(server.pid, stats_path)
    finally:
        server.stop()
    counts = [b - a for a, b in zip(before["counts"], after["counts"], strict=True)]
    spent = [b - a for a, b in zip(before["seconds"], after["seconds"], strict=True)]
    per_thousand = [1000 * count / load.requests if load.requests else None for count in counts]
    return {
        "variant": variant,
        "rps": load.rps,
        "requests": load.requests,
        "collections": counts,
        **{f"gen{generation}_per_1000": value for generation, value in enumerate(per_thousand)},
        "frozen_objects": after["frozen"],
        "full_ms": 1000 * spent[2] / counts[2] if counts[2] else None,
        "gc_us_per_request": 1e6 * sum(spent) / load.requests if load.requests else None,
    }


def gc_cost(argv: list[str]) -> int:
    """What the cyclic garbage collector costs the server per request, with and without the freeze.

    Serves the app with one uvicorn worker pinned to one core, uninstrumented
    and in the production profile with ``OTEL_MONITOR_GC_FREEZE`` on and off,
    interleaved; loads each with wrk from the other core and reports, over the
    loaded seconds only: req/s, collections of each generation (also per 1,000
    requests), how long a full collection took, and the collector's time per
    request.
    """
    import dataclasses
    import statistics
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m benchmarks.micro gc-cost", description=_first_line(gc_cost))
    parser.add_argument("--serve", nargs=2, metavar=("APP", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--app", default="examples.shop.app:app")
    parser.add_argument("--path", default="/ping")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.serve:
        _serve_with_timed_collections(args.serve[0], int(args.serve[1]))
        return 0

    from benchmarks.configurations import build_configurations
    from benchmarks.processes import SinkProcess
    from benchmarks.run import cpu_plan

    by_key = {c.key: c for c in build_configurations(Path(sys.executable).parent, None)}
    production = by_key["monitor-production"]
    variants = [by_key["uninstrumented"]] + [
        dataclasses.replace(
            production, key=f"production, {name}", env={**production.env, "OTEL_MONITOR_GC_FREEZE": value}
        )
        for name, value in (("frozen", "true"), ("not frozen", "false"))
    ]
    server_cpu, load_cpu = cpu_plan()
    results: dict[str, list[dict[str, Any]]] = {c.key: [] for c in variants}
    with SinkProcess(sys.executable, cpu=load_cpu) as sink, tempfile.TemporaryDirectory() as work:
        for round_number in range(args.rounds):
            for configuration in variants:
                name = configuration.key
                result = _gc_measure(configuration, args, sink.endpoint, server_cpu, load_cpu, Path(work))
                results[name].append(result)
                full = f"{result['full_ms']:.1f} ms" if result["full_ms"] is not None else "none ran"
                print(
                    f"round {round_number + 1} {name}: {result['rps']:,.0f} req/s, "
                    f"{result['requests']:,} requests, collections "
                    f"{result['collections']}, full collection {full}, "
                    f"GC {result['gc_us_per_request'] or 0:.1f} µs/request, "
                    f"{result['frozen_objects']:,} objects frozen",
                    flush=True,
                )

    def median(name: str, key: str) -> float:
        values = [r[key] for r in results[name] if r[key] is not None]
        return statistics.median(values) if values else float("nan")

    base = median("uninstrumented", "rps")
    print(f"\n{args.path}, medians of {args.rounds} interleaved rounds of {args.seconds:g} s:")
    print(
        "| server | req/s | vs uninstrumented | collections per 1,000 requests (generation 0, 1, 2) "
        "| full collection ms | GC µs/request |\n|---|---|---|---|---|---|"
    )
    for name in results:
        per_thousand = ", ".join(
            f"{median(name, f'gen{generation}_per_1000'):.{2 if generation else 0}f}" for generation in range(3)
        )
        print(
            f"| {name} | {median(name, 'rps'):,.0f} | {median(name, 'rps') / base:.2f}x | {per_thousand} | "
            f"{median(name, 'full_ms'):.1f} | {median(name, 'gc_us_per_request'):.1f} |"
        )
    return 0


# --- the command -------------------------------------------------------------------------------------------------

CASES: dict[str, Callable[[list[str]], int]] = {
    "span-cost": span_cost,
    "server-span": server_span,
    "processors": processors,
    "encoding": encoding,
    "runtime-metrics": runtime_metrics,
    "gc-cost": gc_cost,
}


def _first_line(case: Callable[..., object]) -> str:
    return (case.__doc__ or "").strip().splitlines()[0]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "--list"):
        if not argv or argv[0] != "--list":
            print("usage: python -m benchmarks.micro --list | CASE [--help | options]\n")
        for name, case in CASES.items():
            print(f"{name:16} {_first_line(case)}")
        return 0 if argv else 2
    chosen = CASES.get(argv[0])
    if chosen is None:
        print(f"python -m benchmarks.micro: unknown case {argv[0]!r} (known: {', '.join(CASES)})", file=sys.stderr)
        return 2
    return chosen(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
