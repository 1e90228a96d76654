"""The console at scale: ingest per core over OTLP/HTTP and OTLP/gRPC, and API latency with 1M spans stored.

    .venv/bin/python -m benchmarks.console_scale [--spans 1000000] [--logs 200000] [--batches 150]
                                                 [--repeat 20] [--no-jaeger]

1. Ingest: ``otel-monitor console`` runs pinned to core 0 (``taskset``); this
   process, the sender, pins itself to core 1 and sends ``--batches`` requests of
   512 spans (what a BatchSpanProcessor sends: server and database spans, a
   tenth failing with an exception event) over each protocol, four requests in
   flight.  Two figures per protocol: spans per second of wall time (the
   console has one core) and spans per CPU-second of the console process
   (steadier on a shared machine: other work on core 0 does not count).
2. Scale: the same console is filled to ``--spans`` spans and ``--logs`` log
   records (all inside the default 15-minute window), plus operation duration
   histograms and a custom gauge, then every API call the UI makes is timed
   ``--repeat`` times, one at a time: p50 and p95 in ms.
3. Jaeger v2 (if ``make backends`` built it into ~/.cache/otel-monitor), same
   core, same senders, its shipped config (memory storage): spans per CPU-second,
   and the console's ratio to it.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import psutil
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks.console_ingest import SPANS_PER_BATCH, _kv, log_batch, trace_batch
from otel_monitor import semconv
from otel_monitor.semantics.slo import SLOs

CONSOLE_CORE, SENDER_CORE = 0, 1
IN_FLIGHT = 4
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
METRICS_EXPORT = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
JAEGER = Path.home() / ".cache" / "otel-monitor" / "backends" / "jaeger-v1.75.0" / "jaeger"
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout} s")


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def batches(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    now = time.time_ns()
    return [trace_batch(rng, now) for _ in range(count)]


# --- senders (on the sender's core) -------------------------------------------------------


def send_http(port: int, path: str, bodies: list[bytes]) -> None:
    """``bodies`` POSTed over IN_FLIGHT keep-alive connections; raises on any answer but 200."""
    chunks = [bodies[i::IN_FLIGHT] for i in range(IN_FLIGHT)]

    def run(chunk: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for body in chunk:
            conn.request("POST", path, body, {"Content-Type": "application/x-protobuf"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"POST {path}: {response.status}")
        conn.close()

    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        list(pool.map(run, chunks))


def send_grpc(port: int, method: str, bodies: list[bytes]) -> None:
    """``bodies`` sent as unary calls, IN_FLIGHT at a time, on one channel; raises on any error."""
    options = [("grpc.max_send_message_length", 64 * 2**20)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        pending: list[Any] = []
        for body in bodies:
            pending.append(call.future(body, timeout=120))
            if len(pending) >= IN_FLIGHT:
                pending.pop(0).result()
        for future in pending:
            future.result()


def measure_ingest(
    pid: int, send: Callable[[list[bytes]], None], bodies: list[bytes], settled: Callable[[], bool]
) -> tuple[float, float]:
    """(spans per wall second, spans per CPU-second of ``pid``) for sending ``bodies``."""
    spans = len(bodies) * SPANS_PER_BATCH
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    send(bodies)
    _wait_until(settled, 120, "ingest")
    wall = time.perf_counter() - t0
    _wait_idle(pid)
    return spans / wall, spans / (cpu_seconds(pid) - cpu0)


def _wait_idle(pid: int, timeout: float = 30.0) -> None:
    """Until ``pid`` uses under 5% of a core for half a second (asynchronous work done)."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        if now - last < 0.025:
            return
        last = now


# --- the console ------------------------------------------------------------------------


class ConsoleProcess:
    def __init__(self, max_spans: int, max_logs: int) -> None:
        self.port, self.grpc_port = free_port(), free_port()
        command = [
            str(Path(sys.executable).parent / "otel-monitor"),
            "console",
            "--port",
            str(self.port),
            "--grpc-port",
            str(self.grpc_port),
            "--max-spans",
            str(max_spans),
            "--max-logs",
            str(max_logs),
        ]
        self.process = subprocess.Popen(
            ["taskset", "-c", str(CONSOLE_CORE), *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.url = f"http://127.0.0.1:{self.port}"
        _wait_until(lambda: self.get("/api/services") is not None, 30, "console")

    def get(self, path: str) -> Any:
        import json

        with urllib.request.urlopen(self.url + path, timeout=120) as response:
            return json.load(response)

    def received(self, kind: str = "spans") -> int:
        return int(self.get("/api/services")["received"].get(kind, 0))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def metric_request(now_ns: int) -> bytes:
    """Cumulative operation duration histograms per route, and a custom gauge with an attribute."""
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.extend([_kv(semconv.SERVICE_NAME, "shop"), _kv(semconv.SERVICE_INSTANCE_ID, "bench-1")])
    sm = rm.scope_metrics.add()
    hist = sm.metrics.add(name=semconv.METRIC_OPERATION_DURATION, unit="s").histogram
    hist.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    bounds = list(SLOs().buckets)
    for operation in ("browse", "add_to_cart", "checkout", "search"):
        counts = [0] * (len(bounds) + 1)
        counts[3] = 100
        hist_point = hist.data_points.add(
            start_time_unix_nano=now_ns - 60_000_000_000,
            time_unix_nano=now_ns,
            count=100,
            sum=100 * bounds[2],
            explicit_bounds=bounds,
            bucket_counts=counts,
        )
        hist_point.attributes.extend([_kv(semconv.MONITOR_OPERATION, operation)])
    gauge = sm.metrics.add(name="queue.depth", unit="{item}").gauge
    for queue in ("orders", "mail"):
        point = gauge.data_points.add(time_unix_nano=now_ns, as_double=len(queue))
        point.attributes.extend([_kv("queue", queue)])
    return request.SerializeToString()


def fill(console: ConsoleProcess, spans: int, logs: int) -> tuple[str, float]:
    """Send spans and logs until the console holds ``spans`` and ``logs``; (a trace id, seconds taken)."""
    start = time.perf_counter()
    rng = random.Random(99)
    now = time.time_ns()
    have = console.get("/api/services")["kept"]
    trace_id = ""

    def span_bodies() -> Iterator[list[bytes]]:
        nonlocal trace_id
        missing = spans - have["spans"]
        while missing > 0:
            group = [trace_batch(rng, now) for _ in range(min(8, -(-missing // SPANS_PER_BATCH)))]
            missing -= len(group) * SPANS_PER_BATCH
            yield group

    for group in span_bodies():
        send_grpc(console.grpc_port, TRACE_EXPORT, group)
    for _ in range(-(-(logs - have["logs"]) // 512)):
        send_grpc(console.grpc_port, LOGS_EXPORT, [log_batch(rng, now)])
    send_grpc(console.grpc_port, METRICS_EXPORT, [metric_request(now)])
    kept = console.get("/api/services")["kept"]
    recent = console.get("/api/traces?limit=1")["traces"]
    trace_id = recent[0]["trace_id"] if recent else "0" * 32
    print(
        f"  stored: {kept['spans']:,} spans, {kept['logs']:,} logs (filled in {time.perf_counter() - start:.0f} s)",
        flush=True,
    )
    return trace_id, time.perf_counter() - start


def ui_calls(trace_id: str, log_trace: str) -> list[str]:
    """Every API call the UI's pages make, with the parameters they send."""
    return [
        "/api/services",
        "/api/summary",
        "/api/summary?window=24h",
        "/api/operations",
        "/api/operations/checkout",
        "/api/errors",
        "/api/health",
        "/api/funnels",
        "/api/alerts",
        "/api/resources",
        "/api/metrics",
        "/api/metrics/series?name=monitor.operation.duration",
        "/api/metrics/series?name=queue.depth&group_by=queue",
        "/api/traces",
        "/api/traces?kind=slow",
        "/api/traces?kind=failed",
        "/api/traces?operation=checkout",
        "/api/traces?status=error&min_ms=100",
        "/api/traces?" + urllib.parse.urlencode({"attr": "http.route=/cart"}),
        f"/api/traces/{trace_id}",
        "/api/logs",
        "/api/logs?level=warn",
        "/api/logs?q=product",
        f"/api/logs?trace_id={log_trace}",
        "/api/logs?after=1",
    ]


def latencies(console: ConsoleProcess, paths: list[str], repeat: int) -> list[tuple[str, float, float, float]]:
    """(path, p50 ms, p95 ms, console CPU ms per call) of each call, printed as measured.

    Wall times include waiting for a core on a shared machine; the console's CPU time per call does
    not.  A call slower than a second is timed 5 times.
    """
    print(f"  {'API call':58} {'p50 ms':>8} {'p95 ms':>8} {'CPU ms':>8}", flush=True)
    rows = []
    pid = console.process.pid
    for path in paths:
        t0 = time.perf_counter()
        console.get(path)  # warm
        times = []
        cpu0 = cpu_seconds(pid)
        for _ in range(repeat if time.perf_counter() - t0 < 1 else min(repeat, 5)):
            t0 = time.perf_counter()
            console.get(path)
            times.append((time.perf_counter() - t0) * 1000)
        cpu = (cpu_seconds(pid) - cpu0) * 1000 / len(times)
        times.sort()
        row = (path, statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))], cpu)
        print(
            f"  {path[:58]:58} {row[1]:8.1f} {row[2]:8.1f} {cpu:8.1f}{'' if row[2] < 300 else '  p95 over 300 ms'}",
            flush=True,
        )
        rows.append(row)
    return rows


# --- Jaeger v2 -------------------------------------------------------------------------


def jaeger_ingest(http_bodies: list[bytes], grpc_bodies: list[bytes]) -> dict[str, tuple[float, float]] | None:
    if not JAEGER.is_file():
        return None
    import yaml

    from tests.support.otelcol import local_config

    work = Path(tempfile.mkdtemp(prefix="jaeger-bench-"))
    try:
        config, ports = local_config(REPO / "collector" / "jaeger" / "jaeger.yaml", work)
        config["extensions"]["jaeger_storage"]["backends"]["memstore"]["memory"]["max_traces"] = 2_000_000
        config["service"]["telemetry"]["logs"]["level"] = "warn"
        path = work / "jaeger.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        process = subprocess.Popen(
            ["taskset", "-c", str(CONSOLE_CORE), str(JAEGER), f"--config={path}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            health = f"http://127.0.0.1:{ports[13133]}/status"
            _wait_until(lambda: urllib.request.urlopen(health, timeout=2).status == 200, 60, "jaeger")
            _wait_idle(process.pid)
            out = {}
            out["http"] = measure_ingest(
                process.pid, lambda b: send_http(ports[4318], "/v1/traces", b), http_bodies, lambda: True
            )
            out["grpc"] = measure_ingest(
                process.pid, lambda b: send_grpc(ports[4317], TRACE_EXPORT, b), grpc_bodies, lambda: True
            )
            return out
        finally:
            process.terminate()
            process.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000, help="spans stored for the latency run")
    parser.add_argument("--logs", type=int, default=200_000, help="log records stored for the latency run")
    parser.add_argument("--batches", type=int, default=150, help="requests of 512 spans per protocol (at most 1000)")
    parser.add_argument("--repeat", type=int, default=20, help="timings per API call")
    parser.add_argument("--no-jaeger", action="store_true", help="skip the Jaeger v2 comparison")
    args = parser.parse_args()
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        sys.exit("needs taskset and two cores")
    os.sched_setaffinity(0, {SENDER_CORE})
    count = min(args.batches, 1000)
    http_bodies, grpc_bodies = batches(count, 1), batches(count, 2)
    print(
        f"ingest: {count} requests x {SPANS_PER_BATCH} spans per protocol, "
        f"{sum(map(len, http_bodies)) / count / 1024:.0f} KiB each, {IN_FLIGHT} in flight; "
        f"server on core {CONSOLE_CORE}, sender on core {SENDER_CORE}",
        flush=True,
    )
    console = ConsoleProcess(max_spans=max(args.spans, 2 * count * SPANS_PER_BATCH), max_logs=args.logs)
    try:
        _wait_idle(console.process.pid)
        ours: dict[str, tuple[float, float]] = {}
        target = count * SPANS_PER_BATCH
        ours["http"] = measure_ingest(
            console.process.pid,
            lambda b: send_http(console.port, "/v1/traces", b),
            http_bodies,
            lambda: console.received() >= target,
        )
        ours["grpc"] = measure_ingest(
            console.process.pid,
            lambda b: send_grpc(console.grpc_port, TRACE_EXPORT, b),
            grpc_bodies,
            lambda: console.received() >= 2 * target,
        )
        for protocol, (wall, cpu) in ours.items():
            print(
                f"  console {protocol:4}: {wall:9,.0f} spans/s (one core, wall)  "
                f"{cpu:9,.0f} spans per CPU-second   (target >= 20,000)",
                flush=True,
            )
        print(f"scale: filling to {args.spans:,} spans and {args.logs:,} logs", flush=True)
        trace_id, _ = fill(console, args.spans, args.logs)
        logged = console.get("/api/logs?limit=1")["logs"]
        log_trace = (logged[0].get("trace_id") if logged else None) or "0" * 32
        rows = latencies(console, ui_calls(trace_id, log_trace), args.repeat)
        print(
            f"  slowest p95: {max(r[2] for r in rows):.1f} ms (target < 300 ms); "
            f"most CPU per call: {max(r[3] for r in rows):.1f} ms; "
            f"console RSS {psutil.Process(console.process.pid).memory_info().rss / 2**20:,.0f} MiB",
            flush=True,
        )
    finally:
        console.stop()
    if args.no_jaeger:
        return
    theirs = jaeger_ingest(http_bodies, grpc_bodies)
    if theirs is None:
        print(f"jaeger: not built ({JAEGER}); run `make backends`")
        return
    for protocol, (wall, cpu) in theirs.items():
        print(
            f"  jaeger  {protocol:4}: {wall:9,.0f} spans/s (one core, wall)  {cpu:9,.0f} spans per CPU-second   "
            f"console/jaeger per CPU-second: {ours[protocol][1] / cpu:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
