"""Export-thread cost per span: the SDK's OTLP encoder against ours, gzip level 9 against 1.

``python -m benchmarks.encoding``: 512 realistic server spans, encoded and
compressed repeatedly; prints µs per span and the compressed sizes.
"""

from __future__ import annotations

import gzip
import io
import time

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_monitor.otlp.encode import encode_spans, gzip_fast


def server_spans(count: int = 512) -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("fastapi", "0.165")
    for i in range(count):
        with tracer.start_as_current_span("GET /api/products/{product_id}", kind=SpanKind.SERVER, attributes={
                "url.scheme": "http", "http.request.method": "GET", "network.protocol.version": "1.1",
                "server.address": "127.0.0.1", "server.port": 8000, "url.path": f"/api/products/{i}",
                "http.route": "/api/products/{product_id}", "http.response.status_code": 200,
                "monitor.operation": "product_view"}):
            pass
    return list(exporter.get_finished_spans())


def per_span(function, spans: list, rounds: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(rounds):
            function()
        best = min(best, (time.perf_counter() - started) / rounds / len(spans) * 1e6)
    return best


def gzip9(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="w") as stream:
        stream.write(data)
    return buffer.getvalue()


def main() -> None:
    spans = server_spans()
    data = encode_spans(spans)
    rounds = 20
    print(f"{len(spans)} server spans, best of 3 x {rounds} rounds, µs per span")
    print(
        f"  encode  SDK (message objects)  {per_span(lambda: sdk_encode(spans).SerializePartialToString(), spans, rounds):6.1f}"
    )
    print(f"  encode  otel-monitor           {per_span(lambda: encode_spans(spans), spans, rounds):6.1f}")
    print(
        f"  gzip    level 9 (SDK)          {per_span(lambda: gzip9(data), spans, rounds):6.1f}   {len(gzip9(data)):,} B"
    )
    print(
        f"  gzip    level 1 (otel-monitor) {per_span(lambda: gzip_fast(data), spans, rounds):6.1f}   {len(gzip_fast(data)):,} B"
        f"   (raw {len(data):,} B)"
    )


if __name__ == "__main__":
    main()
