"""Per-item cost of the configured telemetry pipeline, run under a launcher.

    opentelemetry-instrument python benchmarks/span_cost.py --count 20000

Uses only the OpenTelemetry API and the standard library, so it runs the same
in otel-monitor's venv and in the vanilla one: whatever providers, processors
and sampler the launcher installed are what gets timed. Prints one JSON line
of microseconds per span (a server span with a child), per histogram record
and per INFO log record.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

from opentelemetry import metrics, trace


def per_item_us(count: int, action: object) -> float:
    assert callable(action)
    start = time.perf_counter()
    for n in range(count):
        action(n)
    return (time.perf_counter() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20000)
    args = parser.parse_args()
    tracer = trace.get_tracer("bench.span_cost")
    histogram = metrics.get_meter("bench.span_cost").create_histogram("bench.request.duration", unit="s")
    log = logging.getLogger("bench.span_cost")
    log.setLevel(logging.INFO)

    def request_with_child(n: int) -> None:
        with tracer.start_as_current_span("GET /api/products/{product_id}", kind=trace.SpanKind.SERVER,
                                          attributes={"http.request.method": "GET",
                                                      "http.route": "/api/products/{product_id}",
                                                      "url.path": f"/api/products/{n % 100}"}) as span:
            with tracer.start_as_current_span("SELECT products", kind=trace.SpanKind.CLIENT,
                                              attributes={"db.system.name": "sqlite"}):
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


if __name__ == "__main__":
    main()
