"""A console restart on a large ``--db``: time to bind, time to replay, peak memory.

    python -m benchmarks.console_replay --spans 1000000          # db in /tmp, made once
    python -m benchmarks.console_replay --spans 1000000 --db PATH

Fills a SQLite request log as ``otel-monitor console --db`` writes it (trace
export requests of 100 spans: one server span with its operation and 99
query spans per request, spread over the last hour), then starts
``otel-monitor console --db`` on it and prints the seconds until its port
answers ``/api/services``, the seconds until the replay is over (the
``replaying`` flag of ``/api/services`` false; for a console without it,
the first answer), and the console's peak resident memory (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

SPANS_PER_REQUEST = 100


def request_body(index: int, now_ns: int, spans: int = SPANS_PER_REQUEST) -> bytes:
    """One trace export request: a server span with its operation and ``spans - 1`` query spans."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    def kv(key: str, value: str | int) -> KeyValue:
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        return KeyValue(key=key, value=AnyValue(string_value=value))

    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", f"svc-{index % 4}"), kv("service.instance.id", "i-1")])
    scope = rs.scope_spans.add()
    end = now_ns - (index % 3600) * 1_000_000_000
    trace_id = index.to_bytes(16, "big")
    root_id = (index * spans + 1).to_bytes(8, "big")
    root = Span(
        trace_id=trace_id,
        span_id=root_id,
        name="GET /api/products/{id}",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=end - 20_000_000,
        end_time_unix_nano=end,
        status=Status(code=Status.STATUS_CODE_ERROR if index % 50 == 0 else Status.STATUS_CODE_UNSET),
    )
    root.attributes.extend(
        [
            kv("monitor.operation", f"op-{index % 8}"),
            kv("http.route", "/api/products/{id}"),
            kv("http.response.status_code", 500 if index % 50 == 0 else 200),
        ]
    )
    out = [root]
    for child in range(1, spans):
        span = Span(
            trace_id=trace_id,
            span_id=(index * spans + 1 + child).to_bytes(8, "big"),
            parent_span_id=root_id,
            name="SELECT shop",
            kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=end - 19_000_000 + child * 1000,
            end_time_unix_nano=end - 19_000_000 + child * 1000 + 500_000,
        )
        span.attributes.extend(
            [kv("db.system.name", "sqlite"), kv("db.query.text", "SELECT * FROM products WHERE id = ?")]
        )
        out.append(span)
    scope.spans.extend(out)
    return request.SerializeToString()


def make_db(path: Path, spans: int) -> None:
    """A request log as the console writes it (same schema, through its own class)."""
    from otel_monitor.console.persist import RequestLog

    log = RequestLog(str(path), max_bytes=1 << 40)
    now = time.time_ns()
    requests = max(1, spans // SPANS_PER_REQUEST)
    with log._lock:  # one transaction: the console's own append commits per request
        db = log._db
        db.execute("BEGIN")
        for i in range(requests):
            db.execute(
                "INSERT INTO requests (received_ns, signal, body) VALUES (?, ?, ?)",
                (now - (requests - i) * 1000, "traces", request_body(i, now)),
            )
        db.execute("COMMIT")
    log.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(db: Path, timeout: float) -> dict[str, float | None]:
    port = _free_port()
    command = [str(Path(sys.executable).parent / "otel-monitor"), "console", "--port", str(port), "--db", str(db)]
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bound: float | None = None
    replayed: float | None = None
    peak = 0.0
    try:
        while time.monotonic() - start < timeout and process.poll() is None:
            peak = max(peak, _peak_rss_mib(process.pid))
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/services", timeout=5) as response:
                    body = json.loads(response.read())
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.05)
                continue
            if bound is None:
                bound = time.monotonic() - start
            if not body.get("replaying", False):
                replayed = time.monotonic() - start
                break
            time.sleep(0.2)
        peak = max(peak, _peak_rss_mib(process.pid))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return {"bind_s": bound, "replayed_s": replayed, "peak_rss_mib": round(peak, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    db = args.db or Path(f"/tmp/otel-monitor-replay-{args.spans}.db")
    if not db.exists():
        started = time.monotonic()
        make_db(db, args.spans)
        print(f"made {db} ({db.stat().st_size / 2**20:.0f} MiB) in {time.monotonic() - started:.0f} s", file=sys.stderr)
    result = measure(db, args.timeout)
    print(json.dumps({"spans": args.spans, "db_mib": round(os.path.getsize(db) / 2**20), **result}))


if __name__ == "__main__":
    main()
