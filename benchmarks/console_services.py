"""The console with many services: API latency, the longest stall during alert evaluation, and memory.

    .venv/bin/python -m benchmarks.console_services [--services 7000] [--names 1000000]
                                                    [--tree PATH] [--stall-seconds 30]

1. Latency: a console process (``otel-monitor console``, pinned to core 0 when
   ``taskset`` is there) receives, from each of ``--services`` services, one
   metric export (the operation duration histogram of two operations, one of
   them failing often enough to alert, a health gauge and a cache counter) and
   a few operation spans; then ``/api/operations``, ``/api/summary``,
   ``/api/services`` and ``/api/alerts`` are timed (p50 of 5, ms; once when slower than 2 s;
   a call over ``--timeout`` ends the part).
2. Stall: a fresh console gets the same data; for ``--stall-seconds`` (it
   evaluates its alert rules every 10 s in the background), a client asks a
   cheap endpoint every 20 ms; the longest answer is how long the API stood
   still.
3. Memory: a console in a process of its own (no server, so nothing but
   ingest runs) receives one span from each of ``--names`` distinct service
   names (2,000 per request, decoded as the server does); its RSS is read
   before and after.

``--tree`` runs the console from another checkout of the repository (its
``otel_monitor`` package, this venv): the figures before a change, from
``git archive <commit> otel_monitor | tar -x -C /tmp/before``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

sys.path.append(os.path.join(os.path.dirname(__file__), ".."))  # after --tree's package

from otel_monitor import semconv

REPO = Path(__file__).resolve().parents[1]
SERVICES_PER_REQUEST = 250
NAMES_PER_REQUEST = 2000
API_CALLS = ("/api/operations", "/api/summary", "/api/services", "/api/alerts")
# Cheap to answer (a trace id never received): its latency is the time the API waits for the event loop.
PROBE = "/api/traces/" + "0" * 32


def _kv(key: str, value: object) -> KeyValue:
    # Not benchmarks.console_ingest's: importing it loads this checkout's otel_monitor, not --tree's.
    kv = KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    else:
        kv.value.string_value = str(value)
    return kv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Console:
    """An ``otel-monitor console`` process, from this checkout or ``tree``."""

    def __init__(self, tree: Path | None, extra: list[str]) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "otel_monitor", "console", "--port", str(self.port), "--grpc-port", "0"]
        if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
            command = ["taskset", "-c", "0", *command]
        env = dict(os.environ, PYTHONPATH=str(tree or REPO))
        # Started in the tree: ``-m`` puts the working directory first on the path.
        self.process = subprocess.Popen(
            [*command, *extra], cwd=tree or REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.get("/api/services")
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the console did not start") from None
                time.sleep(0.1)

    def request(self, method: str, path: str, body: bytes | None = None, timeout: float = 600) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"Content-Type": "application/x-protobuf"} if body is not None else {}
            conn.request(method, path, body, headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def get(self, path: str, timeout: float = 600) -> Any:
        status, body = self.request("GET", path, timeout=timeout)
        if status >= 500:
            raise RuntimeError(f"GET {path}: {status}")
        return json.loads(body)

    def post(self, path: str, body: bytes) -> None:
        status, answer = self.request("POST", path, body)
        if status != 200:
            raise RuntimeError(f"POST {path}: {status} {answer[:200]!r}")

    @property
    def rss_mib(self) -> float:
        return float(psutil.Process(self.process.pid).memory_info().rss) / 2**20

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def metrics_request(services: range, now_ns: int) -> bytes:
    """Per service: two operations' duration histograms (``pay`` fails 20%), a health gauge, cache lookups."""
    request = ExportMetricsServiceRequest()
    bounds = [0.05, 0.1, 0.25, 0.5, 1.0]
    for n in services:
        rm = request.resource_metrics.add()
        rm.resource.attributes.extend(
            [_kv(semconv.SERVICE_NAME, f"svc-{n:05}"), _kv(semconv.SERVICE_INSTANCE_ID, "i-1")]
        )
        sm = rm.scope_metrics.add()
        hist = sm.metrics.add(name=semconv.METRIC_OPERATION_DURATION, unit="s").histogram
        hist.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
        for operation, count, failed in (("browse", 50, False), ("pay", 40, False), ("pay", 10, True)):
            p = hist.data_points.add(
                start_time_unix_nano=now_ns - 60_000_000_000,
                time_unix_nano=now_ns,
                count=count,
                sum=0.08 * count,
                explicit_bounds=bounds,
                bucket_counts=[0, count, 0, 0, 0, 0],
            )
            p.attributes.extend([_kv(semconv.MONITOR_OPERATION, operation)])
            if failed:
                p.attributes.extend([_kv(semconv.MONITOR_ERROR_CATEGORY, "dependency")])
        gauge = sm.metrics.add(name=semconv.METRIC_HEALTH_STATUS, unit="1").gauge
        g = gauge.data_points.add(time_unix_nano=now_ns, as_double=1.0)
        g.attributes.extend([_kv(semconv.MONITOR_HEALTH_CHECK, "db"), _kv(semconv.MONITOR_HEALTH_CRITICAL, True)])
        cache = sm.metrics.add(name=semconv.METRIC_CACHE_REQUESTS, unit="1").sum
        cache.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
        cache.is_monotonic = True
        c = cache.data_points.add(start_time_unix_nano=now_ns - 60_000_000_000, time_unix_nano=now_ns, as_double=20)
        c.attributes.extend([_kv(semconv.MONITOR_CACHE_NAME, "prices"), _kv(semconv.MONITOR_CACHE_HIT, True)])
    return request.SerializeToString()


def spans_request(names: Iterator[str], now_ns: int, first_id: int, per_service: int = 1) -> bytes:
    """``per_service`` server spans (``GET /items/{id}``) from each service named; ids from ``first_id`` on."""
    request = ExportTraceServiceRequest()
    for i, name in enumerate(names, first_id):
        rs = request.resource_spans.add()
        rs.resource.attributes.extend([_kv(semconv.SERVICE_NAME, name)])
        ss = rs.scope_spans.add()
        for j in range(per_service):
            span = ss.spans.add(
                trace_id=(i * 16 + j + 1).to_bytes(16, "big"),
                span_id=(i * 16 + j + 1).to_bytes(8, "big"),
                name="GET /items/{id}",
                kind=2,
                start_time_unix_nano=now_ns - 20_000_000,
                end_time_unix_nano=now_ns,
            )
            span.attributes.extend([_kv(semconv.HTTP_REQUEST_METHOD, "GET"), _kv(semconv.HTTP_ROUTE, "/items/{id}")])
    return request.SerializeToString()


def timed(call: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    call()
    return (time.perf_counter() - t0) * 1000


def fill(console: Console, services: int) -> None:
    now = time.time_ns()
    for first in range(0, services, SERVICES_PER_REQUEST):
        block = range(first, min(services, first + SERVICES_PER_REQUEST))
        console.post("/v1/metrics", metrics_request(block, now))
        console.post("/v1/traces", spans_request((f"svc-{n:05}" for n in block), now, first, per_service=3))


def latency(console: Console, services: int, timeout: float) -> None:
    fill(console, services)
    kept = len(console.get("/api/services")["services"])
    print(f"latency: {kept:,} services kept", flush=True)
    for path in API_CALLS:
        try:
            times = [timed(lambda p=path: console.get(p, timeout))]
        except TimeoutError:
            # The console is still busy with it: the calls after it would wait too.
            print(f"  {path:18} over {timeout:.0f} s (timed out; later calls not timed)", flush=True)
            return
        if times[0] < 2000:  # a slower call is timed once
            times += [timed(lambda p=path: console.get(p)) for _ in range(4)]
        print(f"  {path:18} p50 {statistics.median(times):9.1f} ms   max {max(times):9.1f} ms", flush=True)


def stall(console: Console, seconds: float) -> None:
    """The longest answer of a cheap endpoint asked every 20 ms while the console evaluates in the background."""
    longest, answers = 0.0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t = timed(lambda: console.request("GET", PROBE))
        longest, answers = max(longest, t), answers + 1
        time.sleep(0.02)
    print(f"stall: longest answer of {PROBE[:18]}... over {seconds:.0f} s: {longest:.1f} ms ({answers} asked)")


def memory(tree: Path | None, names: int) -> None:
    """The store's memory after ``names`` distinct services, in a process of its own (no server)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree or REPO), str(REPO)]))
    child = [sys.executable, "-m", "benchmarks.console_services", "--memory-child", str(names)]
    proc = subprocess.run(child, cwd=tree or REPO, env=env, capture_output=True, text=True, check=True)
    print(proc.stdout.strip(), flush=True)


def memory_child(names: int) -> None:
    from otel_monitor.console.app import Console as Receiver

    receiver = Receiver()
    before = psutil.Process().memory_info().rss / 2**20
    now = time.time_ns()
    t0 = time.perf_counter()
    for first in range(0, names, NAMES_PER_REQUEST):
        block = (f"name-{n:07}" for n in range(first, min(names, first + NAMES_PER_REQUEST)))
        receiver.receive("traces", spans_request(block, now, first), "application/x-protobuf", None)
    store = receiver.store
    print(
        f"memory: {names:,} service names received in {time.perf_counter() - t0:.0f} s: RSS {before:.0f} -> "
        f"{psutil.Process().memory_info().rss / 2**20:.0f} MiB; {len(store.services):,} services kept, "
        f"{store.evicted.get('services', 0):,} evicted"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=7000, help="services for the latency and stall runs")
    parser.add_argument("--names", type=int, default=1_000_000, help="distinct service names for the memory run")
    parser.add_argument("--stall-seconds", type=float, default=30.0, help="how long the API is watched")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds an API call may take")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, help="run the console from this checkout (figures before a change)")
    parser.add_argument(
        "--skip", choices=("latency", "stall", "memory"), action="append", default=[], help="skip a part"
    )
    args = parser.parse_args()
    if args.memory_child is not None:
        memory_child(args.memory_child)
        return
    if "latency" not in args.skip:
        console = Console(args.tree, [])
        try:
            latency(console, args.services, args.timeout)
        finally:
            console.stop()
    if "stall" not in args.skip:
        console = Console(args.tree, [])  # a fresh one: nothing left running from the timed calls
        try:
            fill(console, args.services)
            stall(console, args.stall_seconds)
        finally:
            console.stop()
    if "memory" not in args.skip:
        memory(args.tree, args.names)


if __name__ == "__main__":
    main()
