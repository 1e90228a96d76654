"""The distribution under the launcher: real apps, real OTLP, real receivers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from otel_monitor.testing import OTLPSink
from tests.support.launch import BIN, ROOT, free_port, launched

pytestmark = pytest.mark.slow

SERVER = 2  # SpanKind.SERVER in OTLP
CLIENT = 3


@pytest.fixture(scope="module")
def basic_run(tmp_path_factory):
    """One launcher run of the basic app: a few requests, everything it exported."""
    db = tmp_path_factory.mktemp("db") / "items.db"
    with OTLPSink() as sink:
        env = {**sink.env(), "OTEL_SERVICE_NAME": "basic", "APP_DATABASE_URL": f"sqlite:///{db}"}
        with launched("tests.support.apps.basic_app:app", env) as app:
            results = {path: app.get(path)[0] for path in ("/ping", "/items/1", "/items/9", "/health", "/boom")}
            sink.wait_for(lambda s: sum(1 for sp in s.spans if sp["kind"] == SERVER) >= 4)
            sink.wait_for(lambda s: any(p["name"] == "monitor.operation.duration" for p in s.metrics))
            sink.wait_for(lambda s: any(r["body"] == "served item 1" for r in s.logs))
        yield sink, results, app.output


def server_spans(sink):
    return [s for s in sink.spans if s["kind"] == SERVER]


def test_one_server_span_per_request_with_route(basic_run):
    """Each request yields exactly one server span, named by its route template."""
    sink, results, _ = basic_run
    assert results == {"/ping": 200, "/items/1": 200, "/items/9": 404, "/health": 200, "/boom": 500}
    by_trace: dict[str, list] = {}
    for span in server_spans(sink):
        by_trace.setdefault(span["trace_id"], []).append(span)
    assert all(len(spans) == 1 for spans in by_trace.values())
    routes = sorted(s["attributes"]["http.route"] for s in server_spans(sink))
    assert routes == ["/boom", "/items/{item_id}", "/items/{item_id}", "/ping"]
    assert not any(
        s["name"] in ("http send", "http receive") or s["name"].endswith((" http send", " http receive"))
        for s in sink.spans
    )


def test_health_url_is_not_traced(basic_run):
    """The health endpoint answers but produces no span."""
    sink, results, _ = basic_run
    assert results["/health"] == 200
    assert not any("/health" in str(s["attributes"].get("http.route", "")) for s in sink.spans)


def test_database_spans_with_current_sqlalchemy(basic_run):
    """SQLAlchemy 2.1 queries produce database client spans inside the request's trace."""
    import sqlalchemy

    sink, _, _ = basic_run
    assert sqlalchemy.__version__.startswith("2.")
    item_traces = {s["trace_id"] for s in server_spans(sink) if s["attributes"]["http.route"] == "/items/{item_id}"}
    db_spans = [s for s in sink.spans if s["kind"] == CLIENT and s["trace_id"] in item_traces]
    assert len(db_spans) == 2
    assert all(s["name"].startswith("SELECT") for s in db_spans)
    assert not any(s["name"] == "connect" for s in sink.spans)


def test_every_instrumentation_loads_completely(basic_run):
    """No instrumentation fails to load or stops half-way (SQLAlchemy's needs greenlet, for one)."""
    _, _, output = basic_run
    assert "failed to load" not in output and "greenlet" not in output, output[-3000:]


def test_metrics_arrive_over_otlp(basic_run):
    """Operation duration metrics arrive per route and with the per-process instance id."""
    sink, _, _ = basic_run
    points = sink.metric_points("monitor.operation.duration")
    assert {p["attributes"].get("monitor.operation") for p in points} >= {"GET /ping", "GET /items/{item_id}"}
    assert all(p["resource"].get("service.instance.id") for p in points)
    assert all(p["resource"]["service.name"] == "basic" for p in points)


def test_logs_carry_trace_and_span_ids(basic_run):
    """An app log line inside a request arrives as an OTLP log with that request's ids."""
    sink, _, _ = basic_run
    record = next(r for r in sink.logs if r["body"] == "served item 1")
    span_ids = {s["span_id"] for s in sink.spans if s["trace_id"] == record["trace_id"]}
    assert record["trace_id"] and record["span_id"] in span_ids


def test_exporter_does_not_feed_its_own_logs_back(basic_run):
    """No OTLP log record comes from the SDK's or our own loggers."""
    sink, _, _ = basic_run
    assert not any(r["scope"].startswith(("opentelemetry", "otel_monitor")) for r in sink.logs)


def _old_fastapi_dir() -> Path:
    """FastAPI 0.115 (no native telemetry) with a matching Starlette, installed once."""
    target = Path(sys.prefix) / "old-fastapi"
    if not (target / "fastapi").exists():
        subprocess.run(
            [
                str(BIN / "pip"),
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(target),
                "fastapi==0.115.14",
                "starlette==0.46.2",
            ],
            check=True,
            timeout=300,
        )
    return target


def test_old_fastapi_gets_exactly_one_server_span_from_contrib(tmp_path):
    """On a FastAPI without native telemetry the contrib middleware serves: one server span per request."""
    old = _old_fastapi_dir()
    with OTLPSink() as sink:
        env = {
            **sink.env(),
            "PYTHONPATH": f"{old}{os.pathsep}{ROOT}",
            "OTEL_SERVICE_NAME": "old",
            "APP_DATABASE_URL": f"sqlite:///{tmp_path / 'items.db'}",
        }
        with launched("tests.support.apps.basic_app:app", env) as app:
            assert app.get("/ping")[0] == 200
            assert app.get("/items/2")[0] == 200
            sink.wait_for(lambda s: sum(1 for sp in s.spans if sp["kind"] == SERVER) >= 2)
            time.sleep(0.5)
    spans = server_spans(sink)
    assert {s["scope"] for s in spans} == {"opentelemetry.instrumentation.fastapi"}
    assert sorted(s["attributes"]["http.route"] for s in spans) == ["/items/{item_id}", "/ping"]
    assert len({s["trace_id"] for s in spans}) == len(spans)
    assert not any(s["name"].endswith(("http send", "http receive")) for s in sink.spans)


def test_third_party_receiver_rotel_accepts_our_otlp(tmp_path):
    """rotel, a third-party OTLP implementation, accepts what the app sends and relays it on."""
    rotel = pytest.importorskip("rotel", reason="rotel comes with the dev extra")

    agent = Path(rotel.__file__).parent / "rotel-agent"
    if not agent.exists():
        pytest.skip("rotel agent binary missing: pip install rotel")
    rotel_port = free_port()
    with OTLPSink() as sink:
        relay = subprocess.Popen(
            [
                str(agent),
                "start",
                "--otlp-http-endpoint",
                f"127.0.0.1:{rotel_port}",
                "--otlp-grpc-endpoint",
                f"127.0.0.1:{free_port()}",
                "--exporter",
                "otlp",
                "--otlp-exporter-endpoint",
                sink.endpoint,
                "--otlp-exporter-protocol",
                "http",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:  # until the relay listens
                try:
                    socket.create_connection(("127.0.0.1", rotel_port), timeout=0.5).close()
                    break
                except OSError:
                    assert relay.poll() is None and time.monotonic() < deadline, "rotel did not start"
                    time.sleep(0.05)
            env = {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{rotel_port}",
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                "OTEL_METRIC_EXPORT_INTERVAL": "500",
                "OTEL_SERVICE_NAME": "via-rotel",
                "APP_DATABASE_URL": f"sqlite:///{tmp_path / 'items.db'}",
            }
            with launched("tests.support.apps.basic_app:app", env) as app:
                assert app.get("/ping")[0] == 200
                assert sink.wait_for(
                    lambda s: any(sp["attributes"].get("http.route") == "/ping" for sp in s.spans), timeout=30
                )
                assert sink.wait_for(
                    lambda s: any(p["name"] == "monitor.operation.duration" for p in s.metrics), timeout=30
                )
        finally:
            relay.terminate()
            relay.wait(timeout=10)
    assert {s["resource"]["service.name"] for s in sink.spans} == {"via-rotel"}


def test_no_receiver_app_serves_and_warns_at_most_once(tmp_path):
    """With nothing on the OTLP port every request succeeds and export failure is logged at most once."""
    env = {
        "APP_DATABASE_URL": f"sqlite:///{tmp_path / 'items.db'}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_BLRP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
    }
    with launched("tests.support.apps.basic_app:app", env) as app:
        statuses = []
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            statuses.append(app.get("/ping")[0])
            time.sleep(0.02)
    assert statuses and set(statuses) == {200}
    export_errors = [line for line in app.output.splitlines() if "Failed to export" in line]
    per_logger: dict[str, int] = {}
    for line in export_errors:
        kind = "spans" if "spans" in line else "metrics" if "metrics" in line else "logs"
        per_logger[kind] = per_logger.get(kind, 0) + 1
    assert all(n <= 1 for n in per_logger.values()), export_errors


def test_strict_mode_stops_the_app_on_a_bad_setting():
    """With OTEL_MONITOR_STRICT=true a bad value exits non-zero naming the variable."""
    proc = subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, "-c", "print('app ran')"],
        env={
            **os.environ,
            "OTEL_MONITOR_STRICT": "true",
            "OTEL_MONITOR_CARDINALITY_LIMIT": "many",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "app ran" not in proc.stdout
    assert "OTEL_MONITOR_CARDINALITY_LIMIT" in proc.stderr


def test_bad_setting_without_strict_runs_on_default():
    """Without strict mode a bad value is one warning and the app runs."""
    proc = subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, "-c", "print('app ran')"],
        env={
            **os.environ,
            "OTEL_MONITOR_CARDINALITY_LIMIT": "many",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "app ran" in proc.stdout
    assert proc.stderr.count("OTEL_MONITOR_CARDINALITY_LIMIT='many' is invalid: expected an integer") == 1


def test_sigterm_flushes_what_is_pending(tmp_path):
    """On SIGTERM (uvicorn re-raises it after its graceful stop) pending spans and metrics are still sent."""
    import signal

    with OTLPSink() as sink:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
            "OTEL_SERVICE_NAME": "flush",
            "OTEL_BSP_SCHEDULE_DELAY": "60000",
            "OTEL_METRIC_EXPORT_INTERVAL": "60000",
            "APP_DATABASE_URL": f"sqlite:///{tmp_path / 'items.db'}",
        }
        with launched("tests.support.apps.basic_app:app", env) as app:
            assert app.get("/items/1")[0] == 200
            assert not sink.spans  # nothing exported yet: the batch waits a minute
            app.process.send_signal(signal.SIGTERM)
            app.process.wait(timeout=30)
        assert sink.wait_for(
            lambda s: any(sp["attributes"].get("http.route") == "/items/{item_id}" for sp in s.spans), timeout=5
        )
        assert sink.wait_for(lambda s: bool(s.metric_points("monitor.operation.duration")), timeout=5)


def test_an_unsampled_failed_requests_query_spans_are_exported_with_it(tmp_path):
    """No trace sampled: a failed request is exported with its query span (held as a record), a healthy one is not."""
    with OTLPSink() as sink:
        env = {
            **sink.env(),
            "OTEL_TRACES_SAMPLER": "parentbased_always_off",
            "APP_DATABASE_URL": f"sqlite:///{tmp_path / 'items.db'}",
        }
        with launched("tests.support.apps.basic_app:app", env) as app:
            assert app.get("/items/1")[0] == 200
            assert app.get("/items/2/broken")[0] == 500
            sink.wait_for(lambda s: any(sp["kind"] == CLIENT for sp in s.spans))
            sink.wait_for(lambda s: bool(s.metric_points("monitor.operation.duration")))
    (server,) = server_spans(sink)
    assert server["attributes"]["http.route"] == "/items/{item_id}/broken"
    (query,) = [sp for sp in sink.spans if sp["kind"] == CLIENT]
    assert query["trace_id"] == server["trace_id"] and query["parent_span_id"] == server["span_id"]
    assert query["span_id"] not in ("", "0" * 16, server["span_id"])
    assert query["name"].startswith("SELECT") and query["attributes"]["db.query.text"].startswith("SELECT id, name")
    assert (
        server["start_time_unix_nano"]
        <= query["start_time_unix_nano"]
        <= query["end_time_unix_nano"]
        <= server["end_time_unix_nano"]
    )
    # Metrics still count both requests.
    counts = {
        p["attributes"]["monitor.operation"]: p["count"] for p in sink.metric_points("monitor.operation.duration")
    }
    assert counts["GET /items/{item_id}"] >= 1 and counts["GET /items/{item_id}/broken"] >= 1


def test_standard_http_metrics_on_request(tmp_path):
    """OTEL_MONITOR_HTTP_METRICS=true adds FastAPI's http.server.request.duration (off by default)."""
    with OTLPSink() as sink:
        env = {**sink.env(), "OTEL_MONITOR_HTTP_METRICS": "true", "APP_DATABASE_URL": f"sqlite:///{tmp_path / 'i.db'}"}
        with launched("tests.support.apps.basic_app:app", env) as app:
            assert app.get("/ping")[0] == 200
            assert sink.wait_for(lambda s: bool(s.metric_points("http.server.request.duration")))


@pytest.mark.parametrize("lean", ["true", "false"])
def test_requests_are_served_by_the_request_path_the_setting_names(tmp_path, lean):
    """OTEL_MONITOR_LEAN_REQUESTS (default true) puts otel-monitor's request path in front of FastAPI's own."""
    from otel_monitor.fast.fastapi_requests import unsupported_reason

    if unsupported_reason() is not None:
        pytest.skip(f"FastAPI's own path serves: {unsupported_reason()}")
    with OTLPSink() as sink:
        env = {**sink.env(), "OTEL_MONITOR_LEAN_REQUESTS": lean, "APP_DATABASE_URL": f"sqlite:///{tmp_path / 'i.db'}"}
        with launched("tests.support.apps.basic_app:app", env) as app:
            status, body = app.get("/request-path")
            assert status == 200
            assert body == (
                b'{"served_by":"LeanRequestTelemetry"}' if lean == "true" else b'{"served_by":"NativeTelemetry"}'
            )
            assert app.get("/items/1")[0] == 200
            sink.wait_for(
                lambda s: any(sp["attributes"].get("http.route") == "/items/{item_id}" for sp in server_spans(s))
            )
    (span,) = [sp for sp in server_spans(sink) if sp["attributes"].get("http.route") == "/items/{item_id}"]
    assert span["name"] == "GET /items/{item_id}" and span["attributes"]["http.response.status_code"] == 200


def test_standard_http_metrics_off_by_default(basic_run):
    """By default only monitor.operation.duration times requests: no duplicate http.server.* recordings."""
    from otel_monitor.launcher.instrumentations import fastapi_has_native_telemetry

    if not fastapi_has_native_telemetry():
        pytest.skip("FastAPI without native telemetry: the contrib middleware always records http.server.*")
    sink, _, _ = basic_run
    assert sink.metric_points("monitor.operation.duration")
    assert not sink.metric_points("http.server.request.duration")
    assert not sink.metric_points("http.server.active_requests")


def test_pool_usage_is_observed_not_recorded_per_request(basic_run):
    """Connection pool usage arrives as db.client.connections.usage (used/idle) read at collection time."""
    sink, _, _ = basic_run
    points = sink.metric_points("db.client.connections.usage")
    assert points and {p["scope"] for p in points} == {"otel_monitor.sqlalchemy"}
    assert {p["attributes"]["state"] for p in points} == {"used", "idle"}
    latest = {p["attributes"]["state"]: p["value"] for p in sink.latest_points("db.client.connections.usage")}
    assert latest["used"] == 0 and latest["idle"] >= 1


def test_fastapi_exception_records_arrive_as_logs(basic_run):
    """FastAPI's own telemetry logs each unhandled exception (/boom) as an OTLP log record."""
    from otel_monitor.launcher.instrumentations import fastapi_has_native_telemetry

    if not fastapi_has_native_telemetry():
        pytest.skip("FastAPI without native telemetry emits no exception records of its own")
    sink, _, _ = basic_run
    records = [r for r in sink.logs if r.get("event_name") == "http.server.request.exception"]
    assert len(records) == 1
    assert records[0]["body"] == "Unhandled exception in FastAPI request"
    assert records[0]["attributes"]["http.route"] == "/boom"
