"""The OTLP/HTTP exporters' transport: the standard library's by default, ``requests`` where only it does what is asked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from otel_monitor.fast import otlp_exporters as lean
from otel_monitor.pipeline.exporters import ExporterArguments, light_transport_args, needs_requests
from otel_monitor.pipeline.transport import HTTPClientTransport
from otel_monitor.testing import OTLPSink
from tests.support.launch import BIN, ROOT

_PROXY_AND_AUTH = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "NETRC",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)

# Spans, a metric and a log from a launched process; then whether it imported requests.
_APP = """
    import logging, sys
    from opentelemetry import trace, metrics
    with trace.get_tracer("app").start_as_current_span("shipped"):
        logging.getLogger("app").warning("a log line")
    metrics.get_meter("app").create_counter("app.things").add(1)
    print("requests imported:", "requests" in sys.modules)
    print("urllib3 imported:", "urllib3" in sys.modules)
"""


def _launch(env: dict[str, str], code: str = _APP) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k not in _PROXY_AND_AUTH}
    return subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, "-c", textwrap.dedent(code)],
        env={**base, "OTEL_SERVICE_NAME": "transport", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _all_signals_arrived(sink: OTLPSink) -> bool:
    return (
        any(s["name"] == "shipped" for s in sink.spans)
        and any(r["body"] == "a log line" for r in sink.logs)
        and bool(sink.metric_points("app.things"))
    )


def _tls_settings(args: dict[str, object] | None) -> tuple[object, object]:
    assert args is not None
    transport = args["_transport"]
    assert isinstance(transport, HTTPClientTransport)
    return transport.verify, transport.cert


def test_launched_app_exports_every_signal_without_importing_requests():
    """Under the launcher spans, metrics and logs arrive, sent by http.client: neither `requests` nor urllib3 is imported."""
    with OTLPSink() as sink:
        proc = _launch(sink.env())
        assert proc.returncode == 0, proc.stderr
        assert "requests imported: False" in proc.stdout
        assert "urllib3 imported: False" in proc.stdout
        assert sink.wait_for(_all_signals_arrived), (sink.spans, sink.logs, proc.stderr)


def test_a_proxy_in_the_environment_keeps_the_requests_transport():
    """`requests` honours HTTPS_PROXY/NO_PROXY and http.client does not: with a proxy set the exporters keep `requests`."""
    with OTLPSink() as sink:
        proc = _launch({**sink.env(), "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1"})
        assert proc.returncode == 0, proc.stderr
        assert "requests imported: True" in proc.stdout
        assert sink.wait_for(_all_signals_arrived), (sink.spans, proc.stderr)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed (apt-get install openssl; .ci/run installs it)")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return str(cert), str(key)


def test_https_export_verifies_against_the_configured_certificate(certificate):
    """Over HTTPS, OTEL_EXPORTER_OTLP_CERTIFICATE is the trust anchor: with it all signals arrive."""
    with OTLPSink(tls=certificate) as sink:
        assert sink.endpoint.startswith("https://")
        proc = _launch({**sink.env(), "OTEL_EXPORTER_OTLP_CERTIFICATE": certificate[0]})
        assert proc.returncode == 0, proc.stderr
        assert "requests imported: False" in proc.stdout
        assert sink.wait_for(_all_signals_arrived), proc.stderr


def test_https_export_refuses_an_untrusted_certificate(certificate):
    """Without the certificate configured, a self-signed receiver is refused: nothing is sent, the app is fine."""
    with OTLPSink(tls=certificate) as sink:
        proc = _launch({**sink.env(), "OTEL_MONITOR_SHUTDOWN_TIMEOUT": "2"})
        assert proc.returncode == 0, proc.stderr
        assert not sink.spans and not sink.logs and not sink.metrics
        assert "Failed to export spans" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "exporter",
    [
        OTLPSpanExporter,
        OTLPMetricExporter,
        OTLPLogExporter,
        lean.OTLPSpanExporter,
        lean.OTLPMetricExporter,
        lean.OTLPLogExporter,
    ],
)
def test_each_otlp_http_exporter_gets_http_client_with_requests_default_ca_bundle(exporter):
    """Each OTLP/HTTP exporter (the SDK's and otel-monitor's) gets the light transport, verifying as `requests` would."""
    import certifi

    assert _tls_settings(light_transport_args(exporter, environ={})) == (certifi.where(), None)
    verify, _ = _tls_settings(light_transport_args(exporter, environ={"REQUESTS_CA_BUNDLE": "/etc/bundle.pem"}))
    assert verify == "/etc/bundle.pem"


def test_certificates_follow_the_exporters_precedence():
    """The per-signal variable beats the general one, as in the exporter's own transport."""
    env = {
        "OTEL_EXPORTER_OTLP_CERTIFICATE": "/general.pem",
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": "/traces.pem",
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": "/client.pem",
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": "/client.key",
        "REQUESTS_CA_BUNDLE": "/bundle.pem",
    }
    assert _tls_settings(light_transport_args(OTLPSpanExporter, environ=env)) == (
        "/traces.pem",
        ("/client.pem", "/client.key"),
    )
    assert _tls_settings(light_transport_args(OTLPLogExporter, environ=env))[0] == "/general.pem"


@pytest.mark.parametrize(
    "variable",
    [
        "HTTPS_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "NETRC",
        "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
        "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
    ],
)
def test_what_only_requests_does_keeps_requests(variable):
    """Proxies, netrc and credential providers (which hand over a `requests` session) keep the default transport."""
    env = {variable: "x"}
    assert needs_requests("TRACES", env) == variable
    assert light_transport_args(OTLPSpanExporter, environ=env) is None


def test_a_ca_directory_keeps_requests(tmp_path: Path):
    """`requests` reads a CA *directory* from REQUESTS_CA_BUNDLE; the light transport takes files only."""
    assert needs_requests("LOGS", {"REQUESTS_CA_BUNDLE": str(tmp_path)}) == "REQUESTS_CA_BUNDLE"
    assert needs_requests("LOGS", {"REQUESTS_CA_BUNDLE": str(tmp_path / "bundle.pem")}) is None


def test_callers_arguments_win_and_other_exporters_are_untouched():
    """Arguments given for an exporter class are used as given; a non-OTLP exporter gets none."""
    given = {"certificate_file": "/mine.pem"}
    arguments = ExporterArguments({OTLPSpanExporter: given})
    assert bool(ExporterArguments()) is True  # the SDK would replace a falsy map with {}
    assert arguments.get(OTLPSpanExporter, {}) is given
    assert arguments.get(ConsoleSpanExporter, {}) == {}
    assert isinstance(arguments.get(OTLPMetricExporter, {})["_transport"], HTTPClientTransport)
    # otel-monitor's exporter stands in for the SDK's: what was given for the SDK's class is for it.
    assert arguments.get(lean.OTLPSpanExporter, {}) is given
    assert isinstance(arguments.get(lean.OTLPLogExporter, {})["_transport"], HTTPClientTransport)


# --- the light transport itself -------------------------------------------------


def test_connections_are_kept_alive_between_exports():
    """Two requests to one receiver use one connection, returned to the idle list after each."""
    with OTLPSink() as sink:
        transport = HTTPClientTransport(verify=False)
        url = f"{sink.endpoint.rstrip('/')}/v1/logs"
        first = transport.request("POST", url, headers={"Content-Type": "application/x-protobuf"}, data=b"", timeout=5)
        (connection,) = next(iter(transport._idle.values()))
        second = transport.request("POST", url, headers={"Content-Type": "application/x-protobuf"}, data=b"", timeout=5)
        assert (first.status_code, second.status_code) == (200, 200)
        assert next(iter(transport._idle.values())) == [connection]
        transport.close()
        assert transport._idle == {} and connection.sock is None


class RawReceiver:
    """A loopback HTTP peer scripted per connection: ``behaviours[n]`` handles the n-th accepted socket."""

    OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    def __init__(self, *behaviours) -> None:
        import socket
        import threading

        self.behaviours = list(behaviours)
        self.connections = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/v1/logs"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        index = 0
        while index < len(self.behaviours):  # behaviours may be added while it serves
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with sock:
                sock.settimeout(5)
                try:
                    self.behaviours[index](sock)
                except OSError:
                    pass
            index += 1

    @staticmethod
    def read_request(sock) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
        while len(body) < length:
            body += sock.recv(65536)
        return body

    def close(self) -> None:
        self.server.close()


def test_a_connection_the_receiver_closed_is_not_reused():
    """The receiver closes a kept-alive connection between exports: the next request opens a new one, no error."""
    import select

    def answer_then_close(sock):
        RawReceiver.read_request(sock)
        sock.sendall(RawReceiver.OK)  # keep-alive by HTTP/1.1's default, then closed all the same

    receiver = RawReceiver(answer_then_close, answer_then_close)
    transport = HTTPClientTransport()
    try:
        assert transport.request("POST", receiver.url, data=b"one", timeout=5).status_code == 200
        (idle,) = transport._idle.values()
        assert select.select([idle[0].sock], [], [], 5)[0], "the receiver's close did not arrive"
        second = transport.request("POST", receiver.url, data=b"two", timeout=5)
        assert (second.status_code, second.error) == (200, None)
        assert receiver.connections == 2
    finally:
        transport.close()
        receiver.close()


def test_a_connection_lost_before_the_answer_is_retried_by_the_sdks_client():
    """The receiver takes the request and closes without answering: a connection error, which the client retries."""
    from otel_monitor.pipeline.transport import ConnectionLost
    from tests.unit.test_otlp_encode import _log

    received = []

    def vanish(sock):
        RawReceiver.read_request(sock)

    def answer(sock):
        received.append(RawReceiver.read_request(sock))
        sock.sendall(RawReceiver.OK)

    receiver = RawReceiver(vanish, vanish, answer)
    try:
        transport = HTTPClientTransport()
        lost = transport.request("POST", receiver.url, data=b"x", timeout=5)
        assert isinstance(lost.error, ConnectionLost) and transport.is_connection_error(lost.error)
        exporter = lean.OTLPLogExporter(receiver.url, _transport=transport)
        assert exporter.export([_log("kept")]).name == "SUCCESS"
        assert receiver.connections == 3 and len(received) == 1
    finally:
        receiver.close()


def test_an_answer_sent_before_the_body_was_read_is_the_result():
    """A receiver refusing a large request (413) and closing unread: the 413 is the result, not a retried error."""
    import socket

    def refuse_early(sock):
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        sock.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        sock.shutdown(socket.SHUT_RDWR)

    receiver = RawReceiver(refuse_early)
    try:
        result = HTTPClientTransport().request("POST", receiver.url, data=b"x" * (8 << 20), timeout=10)
        assert (result.status_code, result.error) == (413, None)
        assert receiver.connections == 1
    finally:
        receiver.close()


def test_failures_are_told_apart_as_the_sdks_client_needs():
    """Refused and garbled are connection errors (retried, as with `requests`); a read timeout and a bad URL are not."""
    import socket

    from otel_monitor.pipeline.transport import ConnectFailed, ConnectionLost

    transport = HTTPClientTransport(verify=False)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    refused = transport.request("POST", f"http://127.0.0.1:{port}/v1/traces", data=b"", timeout=2)
    assert isinstance(refused.error, ConnectFailed) and transport.is_connection_error(refused.error)
    with OTLPSink() as sink:
        url = f"{sink.endpoint.rstrip('/')}/v1/traces"
        sink.garbage = True
        garbled = transport.request("POST", url, data=b"", timeout=2)
        assert isinstance(garbled.error, ConnectionLost) and transport.is_connection_error(garbled.error)
        sink.garbage, sink.delay = False, 1.0
        slow = transport.request("POST", url, data=b"", timeout=0.2)
        assert isinstance(slow.error, TimeoutError) and not transport.is_connection_error(slow.error)
    bad = transport.request("POST", "ftp://127.0.0.1/v1/traces", data=b"")
    assert isinstance(bad.error, ValueError) and "not an http or https URL" in str(bad.error)
    assert not transport.is_connection_error(bad.error)


def test_answers_carry_status_reason_headers_and_body():
    """A 503 with Retry-After reaches the SDK's client with its header readable in any case."""
    with OTLPSink() as sink:
        sink.status, sink.headers = 503, {"Retry-After": "7"}
        result = HTTPClientTransport().request("POST", f"{sink.endpoint.rstrip('/')}/v1/traces", data=b"", timeout=5)
    assert (result.status_code, result.reason) == (503, "Service Unavailable")
    assert result.headers().get("retry-after") == "7"
    assert isinstance(result.content(), bytes)
