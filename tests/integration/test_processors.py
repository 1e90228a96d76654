"""The processor chain end to end: real SDK providers, real OTLP/HTTP to an OTLPSink."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

import otel_monitor
from otel_monitor import semconv
from tests.support.stack import Stack, make_stack

CONFIG = """
operations:
  - name: checkout
    route: /checkout
    method: POST
  - name: catalog_db
    kind: client
    attributes: {db.system.name: sqlite}
"""


@pytest.fixture
def stack(otlp_sink):
    s = make_stack(otlp_sink, CONFIG, user_id_key="k3y")
    yield s
    s.close()


def shop(stack: Stack) -> FastAPI:
    app = FastAPI(
        telemetry={
            "tracer_provider": stack.tracer_provider,
            "meter_provider": stack.meter_provider,
            "logger_provider": stack.logger_provider,
            "auto_configure": False,
        }
    )

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/checkout")
    def checkout() -> dict[str, str]:
        raise TimeoutError("payment provider did not answer")

    @app.get("/secret")
    def secret() -> dict[str, str]:
        raise HTTPException(status_code=401, detail="no")

    return app


def exported(sink, name: str) -> list[dict]:
    return [s for s in sink.spans if s["name"] == name]


def duration_counts(stack: Stack) -> dict[tuple, int]:
    return {tuple(sorted(p.attributes.items())): p.count for p in stack.points(semconv.METRIC_OPERATION_DURATION)}


def request(stack: Stack, sink, method: str, path: str, status: int, span_name: str) -> dict:
    """Send one request to the shop and return the attributes of its exported server span."""
    with TestClient(shop(stack), raise_server_exceptions=False) as client:
        assert client.request(method, path).status_code == status
    stack.flush()
    assert sink.wait_for(lambda s: exported(s, span_name))
    return exported(sink, span_name)[0]["attributes"]


def test_server_span_falls_back_to_method_and_route_template(stack, otlp_sink):
    """An unmatched server span is named `METHOD route-template`, never the raw path."""
    attrs = request(stack, otlp_sink, "GET", "/items/42", 200, "GET /items/{item_id}")
    assert attrs[semconv.MONITOR_OPERATION] == "GET /items/{item_id}"
    assert duration_counts(stack) == {
        ((semconv.MONITOR_OPERATION, "GET /items/{item_id}"), (semconv.MONITOR_OPERATION_OUTCOME, "success")): 1
    }


def test_failed_request_is_classified_and_fingerprinted(stack, otlp_sink):
    """A failing rule-named request carries category, error.type and fingerprint on span and metric."""
    attrs = request(stack, otlp_sink, "POST", "/checkout", 500, "POST /checkout")
    assert attrs[semconv.MONITOR_OPERATION] == "checkout"
    assert attrs[semconv.MONITOR_ERROR_CATEGORY] == "timeout"
    assert attrs[semconv.ERROR_TYPE] == "TimeoutError"
    assert len(attrs[semconv.MONITOR_ERROR_FINGERPRINT]) == 16
    # FastAPI logs the exception itself: the span's group is the stack-based one of that record.
    assert otlp_sink.wait_for(lambda s: s.logs)
    (log,) = [r for r in otlp_sink.logs if r["attributes"].get(semconv.EXCEPTION_TYPE) == "TimeoutError"]
    assert log["attributes"][semconv.MONITOR_ERROR_FINGERPRINT] == attrs[semconv.MONITOR_ERROR_FINGERPRINT]
    assert "test_processors" in log["attributes"][semconv.EXCEPTION_STACKTRACE]
    assert attrs[semconv.MONITOR_ERROR_SEVERITY] == "error"
    assert log["attributes"][semconv.MONITOR_ERROR_SEVERITY] == "error"
    assert duration_counts(stack) == {
        (
            (semconv.ERROR_TYPE, "TimeoutError"),
            (semconv.MONITOR_ERROR_CATEGORY, "timeout"),
            (semconv.MONITOR_ERROR_SEVERITY, "error"),
            (semconv.MONITOR_OPERATION, "checkout"),
            (semconv.MONITOR_OPERATION_OUTCOME, "server_error"),
        ): 1
    }


def test_a_failed_span_still_queued_at_shutdown_keeps_its_stack_based_group(otlp_sink):
    """Shutdown runs our processors' before the export processor's final flush: the queued span keeps its enrichment."""
    stack = make_stack(otlp_sink, CONFIG, schedule_delay_millis=60_000)  # nothing leaves before shutdown
    try:
        with TestClient(shop(stack), raise_server_exceptions=False) as client:
            assert client.post("/checkout").status_code == 500
        assert not otlp_sink.spans
        stack.chain.shutdown()  # as at exit: our processors first, then the export processor flushes
        assert otlp_sink.wait_for(lambda s: exported(s, "POST /checkout"))
        assert otlp_sink.wait_for(lambda s: s.logs)
    finally:
        stack.close()
    attrs = exported(otlp_sink, "POST /checkout")[0]["attributes"]
    (log,) = [r for r in otlp_sink.logs if r["attributes"].get(semconv.EXCEPTION_TYPE) == "TimeoutError"]
    assert attrs[semconv.MONITOR_ERROR_CATEGORY] == "timeout"
    assert attrs[semconv.MONITOR_ERROR_FINGERPRINT] == log["attributes"][semconv.MONITOR_ERROR_FINGERPRINT]


def test_client_error_is_categorised_but_not_a_failure(stack, otlp_sink):
    """A 401 server span gets category auth, a severity, a group and outcome unauthenticated, and is no failure."""
    attrs = request(stack, otlp_sink, "GET", "/secret", 401, "GET /secret")
    assert attrs[semconv.MONITOR_ERROR_CATEGORY] == "auth"
    assert attrs[semconv.MONITOR_ERROR_SEVERITY] == "warning"
    assert attrs[semconv.MONITOR_OPERATION_OUTCOME] == "unauthenticated"
    assert len(attrs[semconv.MONITOR_ERROR_FINGERPRINT]) == 16
    assert semconv.ERROR_TYPE not in attrs
    assert duration_counts(stack) == {
        ((semconv.MONITOR_OPERATION, "GET /secret"), (semconv.MONITOR_OPERATION_OUTCOME, "unauthenticated")): 1
    }


@pytest.mark.parametrize(
    ("path", "status", "outcome"),
    [
        ("/forbidden", 403, "forbidden"),
        ("/csrf", 403, "rejected"),
        ("/items/x", 422, "rejected"),
        ("/missing", 404, "client_error"),
    ],
)
def test_client_errors_are_told_apart_on_the_duration_metric(stack, otlp_sink, path, status, outcome):
    """403, a CSRF 403, a 422 validation failure and a 404 each get their own outcome, no error.type."""
    app = shop(stack)

    @app.get("/forbidden")
    def forbidden() -> None:
        raise HTTPException(status_code=403, detail="not yours")

    class CsrfError(Exception):
        pass

    @app.exception_handler(CsrfError)
    def refuse(request: object, exc: CsrfError) -> JSONResponse:
        return JSONResponse({"detail": "CSRF token missing"}, status_code=403)

    @app.get("/csrf")
    def csrf() -> None:
        raise CsrfError("token missing")

    with TestClient(app, raise_server_exceptions=False) as client:
        for _ in range(3):
            assert client.get(path).status_code == status
    stack.flush()
    counts = duration_counts(stack)
    assert [(dict(k)[semconv.MONITOR_OPERATION_OUTCOME], n) for k, n in counts.items()] == [(outcome, 3)]
    assert all(semconv.ERROR_TYPE not in dict(k) for k in counts)


def test_client_errors_fail_when_configured(otlp_sink):
    """OTEL_MONITOR_CLIENT_ERRORS_FAIL: a 401 and a 404 fail on the span (error status, error.type) and on the
    duration metric (error.type), keeping their client outcome; a 200 stays a success."""
    stack = make_stack(otlp_sink, CONFIG, client_errors_fail=True)
    try:
        with TestClient(shop(stack), raise_server_exceptions=False) as client:
            assert client.get("/secret").status_code == 401
            assert client.get("/missing").status_code == 404
            assert client.get("/items/1").status_code == 200
        stack.flush()
        assert otlp_sink.wait_for(lambda s: exported(s, "GET /secret") and exported(s, "GET /items/{item_id}"))
        secret = exported(otlp_sink, "GET /secret")[0]
        assert secret["status_code"] == 2  # ERROR
        attrs = secret["attributes"]
        assert (attrs[semconv.ERROR_TYPE], attrs[semconv.MONITOR_ERROR_CATEGORY]) == ("401", "auth")
        assert attrs[semconv.MONITOR_OPERATION_OUTCOME] == "unauthenticated"
        assert exported(otlp_sink, "GET /items/{item_id}")[0]["status_code"] != 2
        counts = {
            (
                dict(k)[semconv.MONITOR_OPERATION],
                dict(k)[semconv.MONITOR_OPERATION_OUTCOME],
                dict(k).get(semconv.ERROR_TYPE),
            ): n
            for k, n in duration_counts(stack).items()
        }
        assert counts == {
            ("GET /secret", "unauthenticated", "401"): 1,
            ("GET", "client_error", "404"): 1,
            ("GET /items/{item_id}", "success", None): 1,
        }
    finally:
        stack.close()


def test_counts_stay_exact_under_head_sampling(otlp_sink):
    """With parentbased_traceidratio 0.1, N requests give a histogram count of exactly N."""
    stack = make_stack(otlp_sink, CONFIG, sampler=ParentBased(TraceIdRatioBased(0.1)))
    try:
        n = 200
        with TestClient(shop(stack)) as client:
            for i in range(n):
                assert client.get(f"/items/{i}").status_code == 200
        stack.flush()
        assert duration_counts(stack) == {
            ((semconv.MONITOR_OPERATION, "GET /items/{item_id}"), (semconv.MONITOR_OPERATION_OUTCOME, "success")): n
        }
        assert 0 < len(exported(otlp_sink, "GET /items/{item_id}")) < n / 2
    finally:
        stack.close()


def test_operation_context_manager_names_a_child_span(stack, otlp_sink):
    """`with operation(...)` inside a request exports a child span with monitor.operation."""
    tracer = stack.tracer
    with tracer.start_as_current_span("GET /outfits"):
        with otel_monitor.operation("outfit_generation", style="casual"):
            pass
    stack.flush()
    assert otlp_sink.wait_for(lambda s: exported(s, "outfit_generation"))
    child = exported(otlp_sink, "outfit_generation")[0]
    parent = exported(otlp_sink, "GET /outfits")[0]
    assert child["parent_span_id"] == parent["span_id"]
    assert child["attributes"][semconv.MONITOR_OPERATION] == "outfit_generation"
    assert child["attributes"]["style"] == "casual"


def test_rule_names_database_client_spans(stack, otlp_sink):
    """A span-kind + attribute rule names SQLite client spans `catalog_db`."""
    from opentelemetry.trace import SpanKind

    with stack.tracer.start_as_current_span(
        "SELECT shop", kind=SpanKind.CLIENT, attributes={semconv.DB_SYSTEM_NAME: "sqlite"}
    ):
        pass
    stack.flush()
    assert otlp_sink.wait_for(lambda s: exported(s, "SELECT shop"))
    assert exported(otlp_sink, "SELECT shop")[0]["attributes"][semconv.MONITOR_OPERATION] == "catalog_db"


def test_raw_user_id_never_leaves(stack, otlp_sink):
    """A span's enduser.id is exported only as its HMAC in enduser.pseudo.id."""
    with stack.tracer.start_as_current_span("profile", attributes={"enduser.id": "alice-7781"}):
        pass
    stack.flush()
    assert otlp_sink.wait_for(lambda s: exported(s, "profile"))
    attrs = exported(otlp_sink, "profile")[0]["attributes"]
    assert "enduser.id" not in attrs and "alice-7781" not in json.dumps(otlp_sink.spans)
    assert len(attrs[semconv.ENDUSER_PSEUDO_ID]) == 64


def test_planted_secrets_do_not_reach_the_receiver(stack, otlp_sink):
    """Secrets in attributes, events, exception messages and log bodies are all scrubbed."""
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    planted = ["hunter2-pass", jwt, "4111 1111 1111 1111", "bob@example.org", "sk_live_51Habcdefghijklmnop"]
    with stack.tracer.start_as_current_span(
        "login",
        attributes={
            "http.request.header.authorization": (f"Bearer {jwt}",),
            "user.password": "hunter2-pass",
            "note": "card 4111 1111 1111 1111 for bob@example.org",
        },
    ) as span:
        span.add_event("retry", {"url": "https://api.test/pay?api_key=sk_live_51Habcdefghijklmnop"})
        try:
            raise ValueError("login failed for bob@example.org with password=hunter2-pass")
        except ValueError as exc:
            span.record_exception(exc)
    handler_logger = stack.logger_provider.get_logger("app")
    handler_logger.emit(body=f"token {jwt} issued to bob@example.org", attributes={"session_id": "abc123xyz"})
    stack.flush()
    assert otlp_sink.wait_for(lambda s: exported(s, "login") and s.logs)
    blob = json.dumps([otlp_sink.spans, otlp_sink.logs])
    leaked = [secret for secret in [*planted, "abc123xyz"] if secret in blob]
    assert leaked == []
    assert "[REDACTED]" in blob


def test_journey_milestone_is_an_event_with_a_pseudonymous_id(stack, otlp_sink):
    """journey_milestone emits a log event with enduser.pseudo.id and counts the milestone."""
    assert otel_monitor.journey_milestone("first_purchase", user_id=42, journey="purchase", plan="pro") is None
    stack.flush()
    assert otlp_sink.wait_for(lambda s: s.logs)
    log = otlp_sink.logs[0]
    assert log["attributes"][semconv.MONITOR_JOURNEY_STEP] == "first_purchase"
    assert log["attributes"]["plan"] == "pro"
    assert len(log["attributes"][semconv.ENDUSER_PSEUDO_ID]) == 64
    points = stack.points(semconv.METRIC_JOURNEY_MILESTONES)
    assert [(dict(p.attributes), p.value) for p in points] == [
        ({semconv.MONITOR_JOURNEY_NAME: "purchase", semconv.MONITOR_JOURNEY_STEP: "first_purchase"}, 1)
    ]


def test_error_log_record_is_classified(stack, otlp_sink):
    """A log record carrying an exception gets its category and fingerprint."""
    try:
        raise ConnectionResetError("peer reset")
    except ConnectionResetError as caught:
        exc = caught
        stack.logger_provider.get_logger("app").emit(body="upstream failed", exception=exc)
    stack.flush()
    assert otlp_sink.wait_for(lambda s: s.logs)
    attrs = otlp_sink.logs[0]["attributes"]
    assert attrs[semconv.MONITOR_ERROR_CATEGORY] == "network"
    assert attrs[semconv.MONITOR_ERROR_FINGERPRINT] == otel_monitor.error_fingerprint(exc)


def test_processor_failure_does_not_reach_the_app(otlp_sink, monkeypatch, caplog):
    """A bug in our on_end is logged and counted, and the request goes on."""
    monkeypatch.setenv("OTEL_MONITOR_RAISE_INTERNAL_ERRORS", "false")
    stack = make_stack(otlp_sink)
    try:

        def broken(span):
            raise RuntimeError("rule bug")

        stack.pipeline.span_processors[0].rules.name_for = broken
        with caplog.at_level(logging.ERROR, logger="otel_monitor"):
            with stack.tracer.start_as_current_span("work"):
                pass
        assert "operation span processor failed" in caplog.text
    finally:
        stack.close()


def test_stdlib_error_log_through_the_logging_bridge_is_classified(stack, otlp_sink):
    """logger.exception() through the logging bridge gets category and fingerprint, and is scrubbed."""
    import requests
    from opentelemetry.instrumentation.logging.handler import LoggingHandler

    app_log = logging.getLogger("shop.payments")
    handler = LoggingHandler(logger_provider=stack.logger_provider)
    app_log.addHandler(handler)
    try:
        try:
            raise requests.ConnectTimeout("pay.example.com timed out for carol@example.com")
        except requests.ConnectTimeout as exc:
            app_log.exception("payment failed for %s", "carol@example.com")
            expected = otel_monitor.error_fingerprint(exc)
    finally:
        app_log.removeHandler(handler)
    stack.flush()
    assert otlp_sink.wait_for(lambda s: s.logs)
    (log,) = otlp_sink.logs
    assert log["attributes"][semconv.MONITOR_ERROR_CATEGORY] == "timeout"
    assert log["attributes"][semconv.MONITOR_ERROR_FINGERPRINT] == expected
    assert "carol@example.com" not in json.dumps(log)


def test_excluded_urls_produce_no_operation_metric(stack, otlp_sink):
    """Requests to excluded health routes are not counted; a route that only starts like one is."""
    app = shop(stack)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/healthy-recipes")
    def recipes() -> dict[str, str]:
        return {"status": "ok"}

    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/healthy-recipes").status_code == 200
        assert client.get("/items/1").status_code == 200
    stack.flush()
    # The patterns match the whole path, as they do for tracing (excluded_url_matcher).
    ok = (semconv.MONITOR_OPERATION_OUTCOME, "success")
    assert duration_counts(stack) == {
        ((semconv.MONITOR_OPERATION, "GET /items/{item_id}"), ok): 1,
        ((semconv.MONITOR_OPERATION, "GET /healthy-recipes"), ok): 1,
    }


def test_late_bound_exporter_enriches_with_the_pipeline_built_afterwards(otlp_sink):
    """An exporter wrapped before build_pipeline runs still exports enriched, scrubbed spans."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind

    from otel_monitor.pipeline.processors import LateBoundSpanExporter

    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(LateBoundSpanExporter(OTLPSpanExporter(endpoint=f"{otlp_sink.endpoint}/v1/traces")))
    )
    stack = make_stack(otlp_sink, CONFIG)
    try:
        with provider.get_tracer("t").start_as_current_span(
            "POST /checkout",
            kind=SpanKind.SERVER,
            attributes={
                semconv.HTTP_ROUTE: "/checkout",
                semconv.HTTP_REQUEST_METHOD: "POST",
                "url.query": "contact=dee%40example.com",
            },
        ):
            pass
        assert otlp_sink.wait_for(lambda s: exported(s, "POST /checkout"))
        attrs = exported(otlp_sink, "POST /checkout")[0]["attributes"]
        assert attrs[semconv.MONITOR_OPERATION] == "checkout"
        assert attrs["url.query"] == "contact=[REDACTED]"
    finally:
        stack.close()
        provider.shutdown()


def test_pipeline_lists_config_problems_with_file_and_line(otlp_sink):
    """Bad entries of our sections are collected on the pipeline as file:line messages."""
    bad = "operations:\n  - name: x\nerrors:\n  - category: y\n    status_code: 7\nfunnels:\n  f: {steps: []}\n"
    stack = make_stack(otlp_sink, bad)
    try:
        assert sorted(stack.pipeline.problems) == [
            "otel-monitor.yaml:2: operation 'x' has no condition, it would match every span",
            "otel-monitor.yaml:4: status_code 7 is not an HTTP status",
            "otel-monitor.yaml:7: funnel 'f' needs a non-empty 'steps' list",
        ]
    finally:
        stack.close()
