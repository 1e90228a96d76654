"""OTLP/gRPC into the console: the SDK's gRPC exporters and rotel's, token, gzip, limits, wrong port."""

from __future__ import annotations

import gzip
import logging
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_monitor import semconv
from otel_monitor.console.cli import serve
from tests.support.console_telemetry import get, post, resource

TOKEN = "grpc-token-0123456789"
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

pytestmark = pytest.mark.slow


def _wait(check, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def _trace_body(
    name: str = "GET /grpc", trace_id: bytes = b"\x01" * 16, span_id: bytes = b"\x02" * 8, service: str = "raw-grpc"
) -> bytes:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    kv = rs.resource.attributes.add(key=semconv.SERVICE_NAME)
    kv.value.string_value = service
    span = rs.scope_spans.add().spans.add(
        trace_id=trace_id,
        span_id=span_id,
        name=name,
        kind=2,
        start_time_unix_nano=time.time_ns() - 5_000_000,
        end_time_unix_nano=time.time_ns(),
    )
    span.attributes.add(key=semconv.MONITOR_OPERATION).value.string_value = "grpc_op"
    return request.SerializeToString()


def _export(port: int, body: bytes, metadata=None, compression=None, timeout: float = 10.0) -> bytes:
    with grpc.insecure_channel(f"127.0.0.1:{port}", compression=compression) as channel:
        call = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        return call(body, metadata=metadata, timeout=timeout)


@pytest.fixture(scope="module")
def console():
    with serve(port=0, grpc_port=0, max_body=256 * 1024, evaluate_every=3600) as handle:
        yield handle


def test_sdk_grpc_exporters_spans_metrics_and_logs_reach_the_api(console):
    """The SDK's OTLP/gRPC span, metric and log exporters report to the gRPC port; the API shows each figure."""
    endpoint = f"http://127.0.0.1:{console.grpc_port}"
    spans = TracerProvider(resource=resource("grpc-shop"))
    spans.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    tracer = spans.get_tracer("grpc-tests")
    for _ in range(3):
        with tracer.start_as_current_span("checkout", attributes={semconv.MONITOR_OPERATION: "checkout"}):
            pass
    with tracer.start_as_current_span("checkout", attributes={semconv.MONITOR_OPERATION: "checkout"}) as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    spans.shutdown()
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint, insecure=True), export_interval_millis=3_600_000
    )
    meters = MeterProvider(resource=resource("grpc-shop"), metric_readers=[reader])
    meters.get_meter("grpc-tests").create_counter("orders.placed").add(7)
    meters.force_flush()
    meters.shutdown()
    logs = LoggerProvider(resource=resource("grpc-shop"))
    logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True)))
    logs.get_logger("grpc-tests").emit(body="paid over gRPC", severity_number=SeverityNumber.WARN, severity_text="WARN")
    logs.shutdown()

    services = get(f"{console.url}/api/services")
    assert "grpc-shop" in services["services"]
    operations = get(f"{console.url}/api/operations?service=grpc-shop")["operations"]
    assert [(o["operation"], o["calls"]) for o in operations] == [("checkout", 4)]
    assert get(f"{console.url}/api/traces/{trace_id}")["spans"][0]["name"] == "checkout"
    assert any(m["name"] == "orders.placed" for m in get(f"{console.url}/api/metrics?service=grpc-shop")["metrics"])
    assert console.console.store.metric_catalog[("grpc-shop", "orders.placed")]["value"] == 7
    assert [r["body"] for r in console.console.store.logs if r["service"] == "grpc-shop"] == ["paid over gRPC"]


def test_grpc_answers_invalid_argument_for_undecodable_data(console):
    """A body that is not an ExportTraceServiceRequest gets INVALID_ARGUMENT naming the message type."""
    with pytest.raises(grpc.RpcError) as failure:
        _export(console.grpc_port, b"\x0a\xff\xff\xff")
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ExportTraceServiceRequest" in failure.value.details()


def test_grpc_partial_success_counts_refused_items(console):
    """A point the console cannot store (NaN) is refused and counted in partial_success, the rest stored."""
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.add(key=semconv.SERVICE_NAME).value.string_value = "partial"
    gauge = rm.scope_metrics.add().metrics.add(name="queue.depth").gauge
    gauge.data_points.add(as_double=float("nan"), time_unix_nano=time.time_ns())
    gauge.data_points.add(as_double=3.0, time_unix_nano=time.time_ns())
    with grpc.insecure_channel(f"127.0.0.1:{console.grpc_port}") as channel:
        call = channel.unary_unary(
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            request_serializer=None,
            response_deserializer=None,
        )
        reply = ExportMetricsServiceResponse.FromString(call(request.SerializeToString(), timeout=10))
    assert reply.partial_success.rejected_data_points == 1
    assert reply.partial_success.error_message == "refused: 1 non-finite value"
    assert console.console.store.metric_catalog[("partial", "queue.depth")]["value"] == 3.0


def test_grpc_gzip_is_accepted_and_size_limit_is_resource_exhausted(console):
    """gzip-compressed calls are stored; a message inflating past the body limit gets RESOURCE_EXHAUSTED."""
    _export(
        console.grpc_port,
        _trace_body(name="GET /gzip", service="gzip-grpc", span_id=b"\x06" * 8),
        compression=grpc.Compression.Gzip,
    )
    assert "gzip-grpc" in get(f"{console.url}/api/services")["services"]
    huge = _trace_body(name="x" * (300 * 1024), span_id=b"\x07" * 8)
    assert len(gzip.compress(huge)) < 256 * 1024  # small on the wire, over the limit inflated
    with pytest.raises(grpc.RpcError) as failure:
        _export(console.grpc_port, huge, compression=grpc.Compression.Gzip)
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_grpc_requires_the_token():
    """With a token, a gRPC call without it (or with a wrong one) is UNAUTHENTICATED; with it, stored."""
    with serve(port=0, grpc_port=0, token=TOKEN, evaluate_every=3600) as handle:
        for metadata in (None, (("authorization", "Bearer wrong-token-0123456789"),)):
            with pytest.raises(grpc.RpcError) as failure:
                _export(handle.grpc_port, _trace_body(), metadata=metadata)
            assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert handle.console.store.received["spans"] == 0
        _export(handle.grpc_port, _trace_body(), metadata=(("authorization", f"Bearer {TOKEN}"),))
        assert handle.console.store.received["spans"] == 1


def test_grpc_client_on_the_http_port_is_told_where_grpc_is(console, caplog):
    """A gRPC call to the OTLP/HTTP port fails fast with UNIMPLEMENTED naming the gRPC port, logged once."""
    with caplog.at_level(logging.WARNING, logger="otel_monitor.console"):
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as failure:
                _export(console.port, _trace_body(), timeout=5)
            assert failure.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert f"port {console.grpc_port}" in failure.value.details()
    hints = [r for r in caplog.records if "gRPC client reached the OTLP/HTTP port" in r.getMessage()]
    assert len(hints) <= 1  # once per run (an earlier test of the session may have logged it)
    # The HTTP port still serves HTTP/1.1 afterwards.
    assert get(f"{console.url}/api/services")["services"] is not None


def test_http_errors_follow_the_otlp_specification(console):
    """415 for an unsupported type; errors as a google.rpc.Status, protobuf for protobuf and JSON for JSON."""
    status, body = post(f"{console.url}/v1/traces", b"hello", content_type="text/plain")
    assert status == 415 and b"application/x-protobuf" in body
    status, body = post(f"{console.url}/v1/traces", b"", content_type="application/grpc")
    assert status == 415 and f"port {console.grpc_port}".encode() in body
    status, body = post(f"{console.url}/v1/traces", b"\x0a\xff\xff\xff")
    assert status == 400
    assert "ExportTraceServiceRequest" in Status.FromString(body).message
    status, body = post(f"{console.url}/v1/traces", b"[1]", content_type="application/json")
    assert status == 400
    import json

    assert json.loads(body)["code"] == 3 and "OTLP/JSON" in json.loads(body)["message"]


def test_rotel_default_grpc_exporter_forwards_to_the_console(console):
    """rotel's default OTLP exporter (gRPC) relays an app's spans to the console's gRPC port."""
    rotel = pytest.importorskip("rotel", reason="rotel comes with the dev extra")
    agent = Path(rotel.__file__).parent / "rotel-agent"
    if not agent.exists():
        pytest.skip("rotel agent binary missing: pip install rotel")
    from tests.support.launch import free_port

    http_port = free_port()
    relay = subprocess.Popen(
        [
            str(agent),
            "start",
            "--otlp-http-endpoint",
            f"127.0.0.1:{http_port}",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{free_port()}",
            "--exporter",
            "otlp",
            "--otlp-exporter-endpoint",
            f"http://127.0.0.1:{console.grpc_port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        body = _trace_body(name="GET /via-rotel", service="via-rotel", trace_id=b"\x09" * 16, span_id=b"\x09" * 8)

        def sent() -> bool:
            try:
                return post(f"http://127.0.0.1:{http_port}/v1/traces", body)[0] == 200
            except OSError:  # not listening yet
                return False

        assert _wait(sent), "rotel did not start"
        assert _wait(lambda: "via-rotel" in get(f"{console.url}/api/services")["services"], timeout=30)
    finally:
        relay.terminate()
        relay.wait(timeout=10)
    trace = get(f"{console.url}/api/traces/{'09' * 16}")
    assert [s["name"] for s in trace["spans"]] == ["GET /via-rotel"]


def test_grpc_port_defaults_to_4317_or_a_free_one_and_zero_turns_it_off():
    """--grpc-port: 4317 by default, a free port beside --port 0, and 0 turns gRPC off."""
    from otel_monitor.console.cli import grpc_port

    assert (grpc_port(None, 4318), grpc_port(None, 0), grpc_port(0, 4318), grpc_port(5317, 0)) == (4317, 0, None, 5317)


def test_default_grpc_port_in_use_leaves_http_serving_and_a_named_port_refuses(console, caplog):
    """A busy default gRPC port is logged and skipped; a busy port asked for stops the start, naming it."""
    from otel_monitor.console.cli import ConsoleStartError

    with (
        caplog.at_level(logging.WARNING, logger="otel_monitor.console"),
        serve(port=0, grpc_port=console.grpc_port, grpc_optional=True, evaluate_every=3600) as other,
    ):
        assert other.grpc_port is None and get(f"{other.url}/api/services")["services"] == []
    assert any(f"{console.grpc_port}" in r.getMessage() and "OTLP/HTTP only" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConsoleStartError, match="--grpc-port"):
        serve(port=0, grpc_port=console.grpc_port, evaluate_every=3600)


def test_stopping_the_console_frees_the_grpc_port_and_its_threads():
    """stop() ends the gRPC server with the console: its port can be bound again, its worker threads gone."""
    import socket
    import threading

    def workers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("otel-monitor-console-grpc")}

    before = workers()  # another console's, when the module's fixture runs
    handle = serve(port=0, grpc_port=0, evaluate_every=3600)
    port = handle.grpc_port
    _export(port, _trace_body(span_id=b"\x0b" * 8))
    handle.stop()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
    assert _wait(lambda: workers() <= before, timeout=10)
