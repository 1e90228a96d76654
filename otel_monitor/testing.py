"""Test helpers for users of otel-monitor (and for our own suite).

:class:`OTLPSink` is a real OTLP/HTTP receiver on a loopback port that keeps
what it receives as plain dicts, so a test can start an app under
``opentelemetry-instrument`` pointed at it and assert on the exported data::

    with OTLPSink() as sink:
        env = {**os.environ, **sink.env()}
        ...  # run the app with env
        sink.wait_for(lambda s: any(span["name"] == "GET /items" for span in s.spans))
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from otel_monitor.otlp.decode import FLATTEN, OTLPDecodeError, decompress, parse_request

_LIMIT = 64 * 1024 * 1024


class _TrackingServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args: Any) -> None:
        self.connections: set[Any] = set()
        super().__init__(*args)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        import socket

        for connection in list(self.connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class OTLPSink:
    """An OTLP/HTTP receiver (protobuf and JSON) that records spans, metric points and logs.

    ``status`` can be set to make it answer with an error code (e.g. 503,
    with ``headers`` such as ``Retry-After``) to test exporter behaviour;
    ``delay`` makes each answer slow; ``garbage`` makes it answer with bytes
    that are not HTTP at all. With ``tls=(certificate_file, key_file)`` it
    serves HTTPS.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: tuple[str, str] | None = None) -> None:
        self.spans: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []  # (path, content-type)
        self.errors: list[str] = []
        self.attempts: dict[str, int] = {}  # every POST per signal, answered or not
        self.status = 200
        self.delay = 0.0
        self.headers: dict[str, str] = {}
        self.garbage = False
        # Re-entrant: wait_for predicates may call the query methods below.
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if sink.delay:
                    time.sleep(sink.delay)
                if sink.garbage:
                    self.wfile.write(b"\x00\xffnot http at all\r\n\r\n")
                    self.close_connection = True
                    return
                signal = self.path.rstrip("/").rsplit("/", 1)[-1]
                with sink._lock:
                    sink.attempts[signal] = sink.attempts.get(signal, 0) + 1
                if sink.status != 200 or signal not in FLATTEN:
                    code = sink.status if signal in FLATTEN else 404
                    self.send_response(code)
                    for key, value in sink.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                try:
                    raw = decompress(body, self.headers.get("Content-Encoding"), _LIMIT)
                    message = parse_request(signal, raw, self.headers.get("Content-Type"))
                    items = FLATTEN[signal](message)
                except OTLPDecodeError as exc:
                    with sink._lock:
                        sink.errors.append(str(exc))
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with sink._changed:
                    sink.requests.append((self.path, self.headers.get("Content-Type", "")))
                    getattr(sink, {"traces": "spans"}.get(signal, signal)).extend(items)
                    sink._changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = _TrackingServer((host, port), Handler)
        self._scheme = "http"
        if tls is not None:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-sink", daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    def env(self) -> dict[str, str]:
        """Environment variables that point an OTLP/HTTP exporter here, exporting quickly."""
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_BLRP_SCHEDULE_DELAY": "100",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
        }

    def start(self) -> OTLPSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open keep-alive connections, as a dying receiver would."""
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()

    def __enter__(self) -> OTLPSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, predicate: Callable[[OTLPSink], bool], timeout: float = 20.0) -> bool:
        """Wait until ``predicate(self)`` is true; return whether it became true."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.2))
        return True

    def signals_received(self) -> int:
        with self._lock:
            return len(self.requests)

    def metric_points(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [p for p in self.metrics if p["name"] == name]

    def latest_points(self, name: str) -> list[dict[str, Any]]:
        """The most recent point of each attribute set of a cumulative metric."""
        latest: dict[tuple[Any, ...], dict[str, Any]] = {}
        for p in self.metric_points(name):
            key = (tuple(sorted(p["resource"].items(), key=str)), tuple(sorted(p["attributes"].items(), key=str)))
            if key not in latest or p["time_unix_nano"] >= latest[key]["time_unix_nano"]:
                latest[key] = p
        return list(latest.values())


class SilentListener:
    """Accepts TCP connections on a loopback port and never answers: the hung-receiver case."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        import socket

        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self._socket.listen(1024)
        self._held: list[Any] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def _accept(self) -> None:
        self._socket.settimeout(0.2)
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                continue
            self._held.append(connection)

    def __enter__(self) -> SilentListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        for connection in self._held:
            connection.close()
        self._socket.close()


RECEIVER_FAULTS = ("absent", "hang", "slow", "503", "429", "garbage")


@contextlib.contextmanager
def faulty_receiver(kind: str, port: int) -> Iterator[None]:
    """An OTLP receiver on ``port`` that fails in one of :data:`RECEIVER_FAULTS` ways.

    ``absent``: nothing listens; ``hang``: connections are accepted, never
    answered; ``slow``: answers after 3 s; ``503`` / ``429``: refuses with
    ``Retry-After`` 1 s / 2 s; ``garbage``: answers bytes that are not HTTP.
    """
    if kind not in RECEIVER_FAULTS:
        raise ValueError(f"unknown receiver fault {kind!r}; expected one of {', '.join(RECEIVER_FAULTS)}")
    if kind == "absent":
        yield
    elif kind == "hang":
        with SilentListener(port=port):
            yield
    else:
        with OTLPSink(port=port) as sink:
            if kind == "slow":
                sink.delay = 3.0
            elif kind == "503":
                sink.status, sink.headers = 503, {"Retry-After": "1"}
            elif kind == "429":
                sink.status, sink.headers = 429, {"Retry-After": "2"}
            elif kind == "garbage":
                sink.garbage = True
            yield


def reset() -> None:
    """Forget otel-monitor's state in this process, between tests that configure or record.

    The runtime (instruments, classifier, pipeline, journey recorder, health
    registry, what the status page and health endpoints add) starts afresh and
    the guard's failure counts are cleared. The SDK's global providers are the
    SDK's: a test that needs its own passes them in.
    """
    from otel_monitor import guard, runtime

    registry = runtime.current().health_registry
    if registry is not None:
        registry.stop()
    runtime.reset()
    guard.reset_for_tests()
