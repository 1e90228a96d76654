"""Programmatic setup, the guard, fork safety, shutdown and the config report."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_monitor import guard
from otel_monitor.guard import GuardedSpanProcessor
from otel_monitor.testing import OTLPSink
from tests.support.launch import BIN, ROOT, free_port


def run_python(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Exploding:
    def on_start(self, span, parent_context=None):
        raise ValueError("rule exploded")

    def on_end(self, span):
        raise ValueError("rule exploded")

    def shutdown(self):
        pass

    def force_flush(self, timeout_millis=30000):
        return True


def test_failing_processor_never_reaches_the_app(monkeypatch, caplog):
    """A processor that raises is logged once, counted, and the span still ends and exports."""
    monkeypatch.setenv("OTEL_MONITOR_RAISE_INTERNAL_ERRORS", "false")
    guard.reset_for_tests()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(GuardedSpanProcessor(Exploding()))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with caplog.at_level(logging.ERROR, logger="otel_monitor"):
        for _ in range(5):
            with tracer.start_as_current_span("work"):
                pass
    assert len(exporter.get_finished_spans()) == 5
    assert guard.COUNTS["span processor Exploding"] == 10
    assert len([r for r in caplog.records if "span processor Exploding failed" in r.getMessage()]) == 1


def test_failing_processor_reraises_under_the_test_suite():
    """With OTEL_MONITOR_RAISE_INTERNAL_ERRORS=true (our suite) the bug shows."""
    provider = TracerProvider()
    provider.add_span_processor(GuardedSpanProcessor(Exploding()))
    with pytest.raises(ValueError, match="rule exploded"):
        provider.get_tracer("t").start_span("work")


def test_configure_twice_is_harmless_and_exports():
    """configure() twice installs one logging handler and exports spans, metrics and logs once."""
    with OTLPSink() as sink:
        proc = run_python(
            """
            import logging, otel_monitor
            otel_monitor.configure()
            otel_monitor.configure(cardinality_limit=10)
            from opentelemetry import trace
            root = logging.getLogger()
            handlers = [h for h in root.handlers if type(h).__name__ == "LoggingHandler"]
            print("handlers", len(handlers))
            log = logging.getLogger("app"); log.setLevel(logging.INFO)
            with trace.get_tracer("app").start_as_current_span("job"):
                log.info("inside job")
        """,
            {**sink.env(), "OTEL_SERVICE_NAME": "prog"},
        )
        assert proc.returncode == 0, proc.stderr
        assert "handlers 1" in proc.stdout
        assert sink.wait_for(lambda s: any(sp["name"] == "job" for sp in s.spans))
        assert sink.wait_for(lambda s: any(r["body"] == "inside job" for r in s.logs))
    assert len([sp for sp in sink.spans if sp["name"] == "job"]) == 1
    assert len([r for r in sink.logs if r["body"] == "inside job"]) == 1


def test_our_processors_go_first_through_the_sdks_own_arguments():
    """The SDK gets our guarded processors by span_processors= and log_record_processors=; they run first."""
    proc = run_python(
        """
        from opentelemetry.sdk import _configuration
        given = {}
        original = _configuration._initialize_components
        def spy(**kwargs):
            given.update(kwargs)
            return original(**kwargs)
        _configuration._initialize_components = spy
        import otel_monitor
        otel_monitor.configure()
        from opentelemetry import _logs, trace
        spans = trace.get_tracer_provider()._active_span_processor._span_processors
        logs = _logs.get_logger_provider()._multi_log_record_processor._log_record_processors
        print("given", [type(p.inner).__name__ for p in given["span_processors"]],
              [type(p.inner).__name__ for p in given["log_record_processors"]])
        print("first", spans[0] is given["span_processors"][0], logs[0] is given["log_record_processors"][0])
        print("last", type(spans[-1]).__name__, type(logs[-1]).__name__)
    """,
        {"OTEL_SERVICE_NAME": "prog", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "given ['OperationSpanProcessor'] ['ExceptionCaptureProcessor']" in proc.stdout
    assert "first True True" in proc.stdout
    assert "last MonitorSpanExportProcessor CountingBatchLogRecordProcessor" in proc.stdout


FREEZE_PROBE = """
    import gc, weakref
    from opentelemetry import trace
    import fractions  # as the app would: first imported after set-up
    provider = trace.get_tracer_provider()
    frozen = not any(o is provider for o in gc.get_objects())
    app_module_scanned = any(o is fractions.Fraction for o in gc.get_objects())
    class Node:
        pass
    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle of the app's, garbage once dropped
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    print(type(provider).__name__, "frozen" if frozen else "scanned", gc.get_freeze_count() > 0,
          "app module scanned" if app_module_scanned else "app module frozen",
          "app cycle collected" if gone() is None else "app cycle kept")
"""


@pytest.mark.parametrize(
    "setting, expected",
    [
        (None, "TracerProvider frozen True app module scanned app cycle collected"),
        ("false", "TracerProvider scanned False app module scanned app cycle collected"),
    ],
)
def test_launcher_takes_the_sdk_out_of_garbage_collection_but_not_the_app(setting, expected):
    """Under the launcher, what exists once otel-monitor has set up is frozen (OTEL_MONITOR_GC_FREEZE), the app is not."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OTEL_PYTHON_DISTRO": "otel_monitor",
        "OTEL_PYTHON_CONFIGURATOR": "otel_monitor",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    for name in ("OTEL_MONITOR_GC_FREEZE", "OTEL_CONFIG_FILE"):
        env.pop(name, None)
    if setting is not None:
        env["OTEL_MONITOR_GC_FREEZE"] = setting
    proc = subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, "-c", textwrap.dedent(FREEZE_PROBE)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


def test_programmatic_configure_freezes_nothing():
    """otel_monitor.configure() runs inside an app (or a test suite) and leaves its garbage collection alone."""
    proc = run_python(
        "import otel_monitor; otel_monitor.configure()\n" + textwrap.dedent(FREEZE_PROBE),
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "TracerProvider scanned False app module scanned app cycle collected"


@pytest.mark.parametrize("setting, expected", [(None, "MonitorTracer MonitorSpan"), ("false", "Tracer _Span")])
def test_the_lean_span_type_is_installed_unless_turned_off(setting, expected):
    """OTEL_MONITOR_LEAN_SPANS (default true) makes the configured provider's tracers record otel_monitor.fast.spans spans."""
    env = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    if setting is not None:
        env["OTEL_MONITOR_LEAN_SPANS"] = setting
    proc = run_python(
        """
        import otel_monitor
        otel_monitor.configure()
        from opentelemetry import trace
        tracer = trace.get_tracer("app")
        span = tracer.start_span("s")
        print(type(tracer).__name__, type(span).__name__)
    """,
        env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


def test_forked_worker_gets_its_own_instance_id():
    """A process forked after configuration reports a different service.instance.id."""
    with OTLPSink() as sink:
        proc = run_python(
            """
            import os, otel_monitor
            otel_monitor.configure()
            from opentelemetry import trace
            tracer = trace.get_tracer("app")
            pid = os.fork()
            with tracer.start_as_current_span("child" if pid == 0 else "parent"):
                pass
            if pid == 0:
                trace.get_tracer_provider().force_flush()
                os._exit(0)
            os.waitpid(pid, 0)
        """,
            {**sink.env(), "OTEL_SERVICE_NAME": "forky", "OTEL_METRICS_EXPORTER": "none"},
        )
        assert proc.returncode == 0, proc.stderr
        assert sink.wait_for(lambda s: {"child", "parent"} <= {sp["name"] for sp in s.spans})
    ids = {sp["name"]: sp["resource"]["service.instance.id"] for sp in sink.spans}
    assert ids["child"] != ids["parent"]


def test_shutdown_with_receiver_down_is_bounded():
    """At exit with an unreachable receiver the process ends within the shutdown timeout (plus start-up)."""
    port = free_port()
    code = """
        import otel_monitor, logging
        otel_monitor.configure(shutdown_timeout=1)
        from opentelemetry import trace
        for i in range(50):
            with trace.get_tracer("app").start_as_current_span(f"s{i}"):
                logging.getLogger("app").warning("w %d", i)
    """
    # A listener that accepts but never answers: the worst case for a flush.
    import socket

    hang = socket.socket()
    hang.bind(("127.0.0.1", port))
    hang.listen(50)
    try:
        started = time.monotonic()
        proc = run_python(
            code,
            {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_EXPORTER_OTLP_TIMEOUT": "30"},
            timeout=60,
        )
        elapsed = time.monotonic() - started
    finally:
        hang.close()
    assert proc.returncode == 0, proc.stderr
    # Generous bound for interpreter start-up on a busy machine; without the bound it takes 30 s or more.
    assert elapsed < 12, f"took {elapsed:.1f}s"


def test_config_report_warns_about_another_distro(tmp_path):
    """`otel-monitor config` warns when another distro is installed and names the variable to set."""
    dist = tmp_path / "other_distro-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: other-distro\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[opentelemetry_distro]\nother = other_distro:Distro\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    env.pop("OTEL_PYTHON_DISTRO", None)
    proc = subprocess.run(
        [str(BIN / "otel-monitor"), "config", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    report = json.loads(proc.stdout)
    assert any("OTEL_PYTHON_DISTRO=otel_monitor" in w and "other" in w for w in report["warnings"])


def test_config_report_names_sources_and_instrumentations():
    """`otel-monitor config` shows each value's source and why SQLAlchemy 2.1 still loads."""
    env = {**os.environ, "OTEL_MONITOR_SLOW_THRESHOLD_MS": "750", "OTEL_SERVICE_NAME": "shop"}
    proc = subprocess.run(
        [str(BIN / "otel-monitor"), "config", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    report = json.loads(proc.stdout)
    ours = {r["name"]: r for r in report["settings"]}
    assert ours["OTEL_MONITOR_SLOW_THRESHOLD_MS"] == {
        "name": "OTEL_MONITOR_SLOW_THRESHOLD_MS",
        "value": "750",
        "source": "environment",
    }
    standard = {r["name"]: r for r in report["standard"]}
    assert standard["OTEL_EXPORTER_OTLP_COMPRESSION"]["source"] == "otel-monitor default"
    assert standard["OTEL_SERVICE_NAME"] == {"name": "OTEL_SERVICE_NAME", "value": "shop", "source": "environment"}
    decisions = {r["name"]: r for r in report["instrumentations"]}
    from otel_monitor.launcher.instrumentations import fastapi_has_native_telemetry

    assert decisions["fastapi"]["state"] == ("native" if fastapi_has_native_telemetry() else "waiting for import")
    import sqlalchemy

    assert decisions["sqlalchemy"]["state"] == "waiting for import"
    if tuple(int(p) for p in sqlalchemy.__version__.split(".")[:2]) >= (2, 1):
        # Outside contrib's declared range, loaded deliberately: the report says why.
        assert "verified" in decisions["sqlalchemy"]["reason"]


def test_fork_while_a_metric_lock_is_held_does_not_deadlock_the_child():
    """A worker forked while the parent's collection holds a metrics lock still records and exports."""
    with OTLPSink() as sink:
        proc = run_python(
            """
            import os, threading, time, otel_monitor
            otel_monitor.configure()
            from opentelemetry import metrics
            provider = metrics.get_meter_provider()
            counter = metrics.get_meter("app").create_counter("app.jobs")
            counter.add(1)
            held, release = threading.Event(), threading.Event()

            def collecting():  # stands in for the parent's export thread caught mid-collection
                with provider._measurement_consumer._lock:
                    held.set()
                    release.wait(10)

            threading.Thread(target=collecting, daemon=True).start()
            held.wait(5)
            pid = os.fork()
            if pid == 0:
                counter.add(5, {"worker": "child"})
                provider.force_flush(timeout_millis=5000)
                os._exit(0)
            release.set()
            _, status = os.waitpid(pid, 0)
            print("child exit", status)
        """,
            {**sink.env(), "OTEL_SERVICE_NAME": "forky", "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert "child exit 0" in proc.stdout
        assert sink.wait_for(
            lambda s: any(
                p["attributes"].get("worker") == "child" and p["value"] == 5 for p in s.metric_points("app.jobs")
            )
        )
    # The child starts from zero: the parent's count is not carried into the worker.
    child = [p for p in sink.metric_points("app.jobs") if p["attributes"].get("worker") == "child"]
    assert child and not [
        p
        for p in sink.metric_points("app.jobs")
        if p["resource"]["service.instance.id"] == child[0]["resource"]["service.instance.id"] and not p["attributes"]
    ]


@pytest.mark.parametrize("transport", ["http.client", "requests"])
def test_fork_while_the_export_connection_pool_is_locked_does_not_deadlock_the_child(transport, tmp_path):
    """A worker forked while the parent's export thread holds the locks an export takes still exports, and exits.

    The child drops every reference to the inherited pools and exits normally,
    so the pools' finalisers and the exit flush run too; the inherited
    sockets are closed in the child, and its spans travel on new connections.
    """
    # A NETRC file is something only `requests` honours: the exporters keep it then. HOME keeps
    # the machine's own ~/.netrc out, empty proxy variables its proxies.
    chosen = {"NETRC": str(tmp_path / "netrc")} if transport == "requests" else {}
    neutral = {
        "HOME": str(tmp_path),
        **{name: "" for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
    }
    with OTLPSink() as sink:
        proc = run_python(
            """
            import gc, logging, os, sys, threading, time, otel_monitor
            otel_monitor.configure()
            from opentelemetry import trace
            from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport
            from otel_monitor import guard
            from otel_monitor.fast import otlp_http
            from otel_monitor.pipeline import exporters as export
            from otel_monitor.pipeline.transport import HTTPClientTransport
            tracer = trace.get_tracer("app")
            with tracer.start_as_current_span("before fork"):
                pass
            trace.get_tracer_provider().force_flush()  # the pool now holds a connection
            transports = [t for t in gc.get_objects() if isinstance(t, (RequestsHTTPTransport, HTTPClientTransport))]
            print("transport", {type(t).__name__ for t in transports})
            pools = [t._pool for t in transports if hasattr(t, "_pool")] + [
                a.poolmanager for t in transports if hasattr(t, "_session") for a in t._session.adapters.values()]
            queues = [p.pool for manager in pools for p in manager.pools._container.values()]
            inherited = [c.sock for q in queues for c in q.queue if c is not None and c.sock is not None]
            inherited += [c.sock for t in transports for idle in getattr(t, "_idle", {}).values() for c in idle]
            assert inherited, "no pooled connection before fork"
            locks = [manager.pools.lock for manager in pools] + [q.mutex for q in queues]
            locks += [t._lock for t in transports if hasattr(t, "_idle")]
            locks += [t._session.cookies._cookies_lock for t in transports if hasattr(t, "_session")]
            locks += [c._shutdown_event._cond for c in otlp_http._HTTP_CLIENTS]
            locks += [export.DROPPED._lock, guard._lock]
            locks += [f._lock for f in logging.getLogger(export.EXPORT_LOGGERS[0]).filters]
            span_processors = trace.get_tracer_provider()._active_span_processor._span_processors
            locks += [p._pending_lock for p in span_processors if hasattr(p, "_pending_lock")]
            assert len(locks) >= len(pools) + len(queues) + 6, locks
            held, release = threading.Event(), threading.Event()

            def exporting():  # stands in for the parent's export thread caught inside an export
                for lock in locks:
                    lock.acquire()
                held.set()
                release.wait(30)
                for lock in reversed(locks):
                    lock.release()

            threading.Thread(target=exporting, daemon=True).start()
            assert held.wait(5), "the locks were not taken"
            pid = os.fork()
            if pid == 0:
                closed = all(sock.fileno() == -1 for sock in inherited)
                del transports, pools, queues, inherited, locks
                gc.collect()  # urllib3's pool finalisers drain the inherited queues now
                export.DROPPED.add("traces", 1)
                guard.internal_error("fork test", RuntimeError("counted in the child"))
                with tracer.start_as_current_span("in child", attributes={"inherited.closed": closed}):
                    pass
                trace.get_tracer_provider().force_flush(5000)
                sys.exit(0)  # a normal exit: finalisers and the exit flush run
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    print("child exit", status)
                    break
                time.sleep(0.05)
            else:
                os.kill(pid, 9)
                print("child hung")
            release.set()
        """,
            {
                **sink.env(),
                **neutral,
                **chosen,
                "OTEL_SERVICE_NAME": "forky",
                "OTEL_METRICS_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none",
                "OTEL_MONITOR_RAISE_INTERNAL_ERRORS": "false",
                # A lock left held at exit would then hang the child past its 20 s, not be cut at 5 s.
                "OTEL_MONITOR_SHUTDOWN_TIMEOUT": "30",
            },
            timeout=90,
        )
        assert proc.returncode == 0, proc.stderr
        expected = "RequestsHTTPTransport" if transport == "requests" else "HTTPClientTransport"
        assert f"transport {{'{expected}'}}" in proc.stdout, proc.stdout
        assert "child exit 0" in proc.stdout, proc.stdout + proc.stderr
        assert sink.wait_for(lambda s: any(sp["name"] == "in child" for sp in s.spans)), proc.stderr
    spans = {sp["name"]: sp for sp in sink.spans}
    assert spans["in child"]["attributes"]["inherited.closed"] is True
    assert (
        spans["in child"]["resource"]["service.instance.id"] != spans["before fork"]["resource"]["service.instance.id"]
    )


@pytest.mark.parametrize("exporters", ["otlp", "none"])
def test_every_otlp_http_exporter_client_is_known_to_the_fork_reset(exporters):
    """Configured exporters, a subclass built before configuration, one the app builds later: all known after fork.

    With no OTLP/HTTP exporter configured the SDK's HTTP client module is not
    imported at start-up; exporters the app builds later are still found.
    """
    with OTLPSink() as sink:
        proc = run_python(
            """
            import os, sys
            vendor_module = None
            if os.environ["OTEL_TRACES_EXPORTER"] == "otlp":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                class VendorExporter(OTLPSpanExporter):
                    pass
                vendor = VendorExporter()  # built before configuration
            import otel_monitor
            otel_monitor.configure()
            from otel_monitor.fast import otlp_http
            print("loaded", "opentelemetry.exporter.otlp.common.http" in sys.modules)
            configured = len(otlp_http._HTTP_CLIENTS)
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            if os.environ["OTEL_TRACES_EXPORTER"] == "otlp":
                otlp_http.FastSpanExporter.wrap(vendor)
            else:
                vendor = OTLPSpanExporter()  # built after configuration, before the module was patched
            own = OTLPSpanExporter()
            pid = os.fork()
            if pid == 0:
                known = set(otlp_http._HTTP_CLIENTS)
                print("child", configured, vendor._client in known, own._client in known, flush=True)
                os._exit(0)
            os.waitpid(pid, 0)

            class Odd:  # has a transport, cannot be weakly referenced
                __slots__ = ("_transport",)
            odd = Odd()
            odd._transport = None
            otlp_http._remember_client(odd)  # skipped, raises nothing
            print("odd", odd not in list(otlp_http._HTTP_CLIENTS))
        """,
            {
                **sink.env(),
                "OTEL_SERVICE_NAME": "forky",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                **{f"OTEL_{signal}_EXPORTER": exporters for signal in ("TRACES", "METRICS", "LOGS")},
            },
        )
    assert proc.returncode == 0, proc.stderr
    configured = "3" if exporters == "otlp" else "0"
    assert proc.stdout.split() == [
        "loaded",
        str(exporters == "otlp"),
        "child",
        configured,
        "True",
        "True",
        "odd",
        "True",
    ], proc.stdout


def test_exit_tries_each_final_export_once_when_the_receiver_refuses():
    """At exit a receiver answering 503 gets one attempt per signal, not the whole retry schedule."""
    with OTLPSink() as sink:
        sink.status, sink.headers = 503, {"Retry-After": "1"}
        proc = run_python(
            """
            import logging, otel_monitor
            otel_monitor.configure()
            from opentelemetry import metrics, trace
            with trace.get_tracer("app").start_as_current_span("job"):
                logging.getLogger("app").warning("one line")
            metrics.get_meter("app").create_counter("app.jobs").add(1)
        """,
            {
                **sink.env(),
                "OTEL_BSP_SCHEDULE_DELAY": "60000",
                "OTEL_BLRP_SCHEDULE_DELAY": "60000",
                "OTEL_METRIC_EXPORT_INTERVAL": "60000",
                "OTEL_EXPORTER_OTLP_TIMEOUT": "10",
            },
        )
        assert proc.returncode == 0, proc.stderr
    assert sink.attempts == {"traces": 1, "metrics": 1, "logs": 1}
