"""A throwaway OTLP/HTTP receiver for benchmarks: answers 200 to /v1/* fast.

Runs in its own process (``python -m benchmarks.sink --port N``) so its work
does not land on the measured server. It counts requests and bytes per signal
so a run can prove telemetry actually flowed; ``GET /stats`` returns the
counts as JSON. With ``--count-series`` it also decodes metric exports and
counts distinct series (metric name + attribute set), which is how the
cardinality check sees whether raw URL paths leak into metric attributes.
With ``--count-records`` it decodes log exports and counts the records per
event name (or severity text when they have none), and keeps the latest
value of each ``monitor.sdk.dropped`` series: what the error storm checks
delivered against produced with.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SIGNALS = ("traces", "metrics", "logs")


class SinkStats:
    """Thread-safe counters of what the sink received."""

    def __init__(self, count_series: bool = False, count_records: bool = False) -> None:
        self._lock = threading.Lock()
        self.count_records = count_records
        self.records: dict[str, int] = {}
        self.dropped: dict[str, float] = {}
        self.requests = {name: 0 for name in SIGNALS}
        self.bytes = {name: 0 for name in SIGNALS}
        self.count_series = count_series
        self.series: dict[str, set[tuple[tuple[str, str], ...]]] = {}
        self.decode_errors = 0

    def record(self, signal_name: str, body: bytes, headers: Any) -> None:
        with self._lock:
            self.requests[signal_name] += 1
            self.bytes[signal_name] += len(body)
        if self.count_series and signal_name == "metrics":
            self._record_series(body, headers)
        if self.count_records and signal_name in ("logs", "metrics"):
            self._count_records(signal_name, body, headers)

    def _count_records(self, signal_name: str, body: bytes, headers: Any) -> None:
        from otel_monitor.otlp.decode import (
            OTLPDecodeError,
            decompress,
            flatten_logs,
            flatten_metrics,
            parse_request,
        )

        try:
            raw = decompress(body, headers.get("Content-Encoding"), 256 * 1024 * 1024)
            request = parse_request(signal_name, raw, headers.get("Content-Type"))
        except OTLPDecodeError:
            with self._lock:
                self.decode_errors += 1
            return
        if signal_name == "logs":
            with self._lock:
                for record in flatten_logs(request):
                    key = record["event_name"] or record["severity_text"] or "(none)"
                    self.records[key] = self.records.get(key, 0) + 1
            return
        for point in flatten_metrics(request):
            if point["name"] == "monitor.sdk.dropped":
                key = ",".join(f"{k}={v}" for k, v in sorted(point["attributes"].items()))
                with self._lock:  # cumulative: the latest is the total
                    self.dropped[key] = max(self.dropped.get(key, 0), point["value"])

    def _record_series(self, body: bytes, headers: Any) -> None:
        # Imported lazily: the plain byte-counting sink needs nothing beyond stdlib.
        from otel_monitor.otlp.decode import OTLPDecodeError, decompress, flatten_metrics, parse_request

        try:
            raw = decompress(body, headers.get("Content-Encoding"), 256 * 1024 * 1024)
            points = flatten_metrics(parse_request("metrics", raw, headers.get("Content-Type")))
        except OTLPDecodeError:
            with self._lock:
                self.decode_errors += 1
            return
        with self._lock:
            for point in points:
                key = tuple(sorted((k, repr(v)) for k, v in point["attributes"].items()))
                self.series.setdefault(point["name"], set()).add(key)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "bytes": dict(self.bytes),
                "series": {name: len(keys) for name, keys in sorted(self.series.items())},
                "decode_errors": self.decode_errors,
                "records": dict(self.records),
                "dropped": dict(self.dropped),
            }


def make_server(host: str, port: int, stats: SinkStats) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as the OTLP exporters reuse their connection.
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, code: int, body: bytes = b"", content_type: str = "application/x-protobuf") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            signal_name = self.path.rstrip("/").rsplit("/", 1)[-1]
            if not self.path.startswith("/v1/") or signal_name not in SIGNALS:
                self._reply(404)
                return
            stats.record(signal_name, body, self.headers)
            self._reply(200)

        def do_GET(self) -> None:
            if self.path == "/stats":
                self._reply(200, json.dumps(stats.snapshot()).encode(), "application/json")
            else:
                self._reply(404)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--count-series", action="store_true", help="decode metrics and count distinct series")
    parser.add_argument(
        "--count-records",
        action="store_true",
        help="decode logs and count records per event name; keep monitor.sdk.dropped",
    )
    args = parser.parse_args(argv)
    stats = SinkStats(count_series=args.count_series, count_records=args.count_records)
    server = make_server(args.host, args.port, stats)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    # The first line tells the parent which port was picked.
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    print(json.dumps(stats.snapshot()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
