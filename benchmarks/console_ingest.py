"""Console ingest: spans per second on one core, and memory at the default limits.

    .venv/bin/python benchmarks/console_ingest.py [--batches 100] [--http]

Batches look like what an instrumented app's BatchSpanProcessor sends: 512
spans per request, each a server span or a database span with the attributes
otel-monitor sets (a tenth of them failures with an exception event).
``decode+aggregate`` is the console's own work on one core (what the target,
10,000 spans/s, is about); ``--http`` adds a loopback round trip per batch
through uvicorn, with the client on the same machine.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
import tracemalloc
import urllib.request

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from otel_monitor import semconv
from otel_monitor.console.app import Console

SPANS_PER_BATCH = 512
ROUTES = [
    ("GET", "/products", "browse"),
    ("POST", "/cart", "add_to_cart"),
    ("POST", "/checkout", "checkout"),
    ("GET", "/search", "search"),
]


def _kv(key: str, value: object) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    else:
        kv.value.string_value = str(value)
    return kv


def trace_batch(rng: random.Random, now_ns: int) -> bytes:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend([_kv(semconv.SERVICE_NAME, "shop"), _kv(semconv.SERVICE_INSTANCE_ID, "bench-1")])
    spans = rs.scope_spans.add().spans
    for i in range(SPANS_PER_BATCH // 2):
        method, route, operation = ROUTES[i % len(ROUTES)]
        trace_id, root_id = rng.randbytes(16), rng.randbytes(8)
        start = now_ns - rng.randint(1_000_000, 50_000_000)
        failed = i % 10 == 0
        root = spans.add(
            trace_id=trace_id,
            span_id=root_id,
            name=f"{method} {route}",
            kind=2,
            start_time_unix_nano=start,
            end_time_unix_nano=start + rng.randint(1_000_000, 400_000_000),
        )
        root.attributes.extend(
            [
                _kv(semconv.HTTP_ROUTE, route),
                _kv(semconv.HTTP_REQUEST_METHOD, method),
                _kv(semconv.HTTP_RESPONSE_STATUS_CODE, 500 if failed else 200),
                _kv(semconv.MONITOR_OPERATION, operation),
                _kv(semconv.MONITOR_SERVICE_LAYER, "primary"),
            ]
        )
        if failed:
            root.status.code = 2
            root.attributes.extend(
                [
                    _kv(semconv.ERROR_TYPE, "OperationalError"),
                    _kv(semconv.MONITOR_ERROR_CATEGORY, "database"),
                    _kv(semconv.MONITOR_ERROR_FINGERPRINT, f"{i % 7:016x}"),
                ]
            )
            event = root.events.add(name="exception", time_unix_nano=start)
            event.attributes.extend(
                [
                    _kv(semconv.EXCEPTION_TYPE, "OperationalError"),
                    _kv(semconv.EXCEPTION_MESSAGE, "database is locked"),
                    _kv(semconv.EXCEPTION_STACKTRACE, "Traceback (most recent call last):\n  ..." * 5),
                ]
            )
        child = spans.add(
            trace_id=trace_id,
            span_id=rng.randbytes(8),
            parent_span_id=root_id,
            name="SELECT shop",
            kind=3,
            start_time_unix_nano=start + 100_000,
            end_time_unix_nano=start + 900_000,
        )
        child.attributes.extend(
            [_kv(semconv.DB_SYSTEM_NAME, "sqlite"), _kv("db.query.text", "SELECT * FROM products WHERE id = ?")]
        )
    return request.SerializeToString()


def log_batch(rng: random.Random, now_ns: int, size: int = 512) -> bytes:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.extend([_kv(semconv.SERVICE_NAME, "shop")])
    records = rl.scope_logs.add().log_records
    for i in range(size):
        record = records.add(
            time_unix_nano=now_ns, severity_text="INFO", trace_id=rng.randbytes(16), span_id=rng.randbytes(8)
        )
        record.body.string_value = f"handled request {i} for a product page with some context"
    return request.SerializeToString()


def ingest_rate(batches: list[bytes]) -> float:
    console = Console()
    gc.collect()
    start = time.process_time()  # CPU time of this process: one core's work
    for body in batches:
        console.receive("traces", body, "application/x-protobuf", None)
    return len(batches) * SPANS_PER_BATCH / (time.process_time() - start)


def http_rate(batches: list[bytes]) -> float:
    from otel_monitor.console.cli import serve

    with serve(port=0, evaluate_every=3600) as handle:
        start = time.perf_counter()
        for body in batches:
            request = urllib.request.Request(
                f"{handle.url}/v1/traces", data=body, method="POST", headers={"Content-Type": "application/x-protobuf"}
            )
            urllib.request.urlopen(request, timeout=30).read()
        return len(batches) * SPANS_PER_BATCH / (time.perf_counter() - start)


def memory_at_limits(rng: random.Random, now_ns: int) -> tuple[float, int, int]:
    """MiB held by a console filled past its default span and log limits."""
    tracemalloc.start()
    console = Console()
    limits = console.store.limits
    for _ in range(limits.max_spans // SPANS_PER_BATCH + 10):
        console.receive("traces", trace_batch(rng, now_ns), "application/x-protobuf", None)
    for _ in range(limits.max_logs // 512 + 10):
        console.receive("logs", log_batch(rng, now_ns), "application/x-protobuf", None)
    gc.collect()
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return current / 2**20, console.store.span_count, len(console.store.logs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=100, help="batches of 512 spans (bounded: at most 1000)")
    parser.add_argument("--http", action="store_true", help="also measure through HTTP on loopback")
    args = parser.parse_args()
    rng = random.Random(42)
    now_ns = time.time_ns()
    batches = [trace_batch(rng, now_ns) for _ in range(min(args.batches, 1000))]
    print(
        f"batches: {len(batches)} x {SPANS_PER_BATCH} spans, {sum(map(len, batches)) / len(batches) / 1024:.0f} KiB each"
    )
    print(f"decode+aggregate: {ingest_rate(batches):,.0f} spans/s (CPU time, one core; target >= 10,000)")
    if args.http:
        print(f"over HTTP (loopback, client on the same machine): {http_rate(batches):,.0f} spans/s")
    mib, spans, logs = memory_at_limits(rng, now_ns)
    print(f"memory at default limits: {mib:.1f} MiB for {spans:,} spans + {logs:,} logs (tracemalloc)")


if __name__ == "__main__":
    main()
