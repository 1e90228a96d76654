"""otel-monitor's request path gives the telemetry FastAPI's own native path gives, request for request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import StreamingResponse
from fastapi.telemetry import get_telemetry_data
from fastapi.testclient import TestClient
from opentelemetry import baggage, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.requests import ClientDisconnect

from otel_monitor.fast import fastapi_requests
from otel_monitor.fast.fastapi_requests import LeanRequestTelemetry, serve

pytestmark = pytest.mark.skipif(
    fastapi_requests.unsupported_reason() is not None,
    reason=f"not served by otel-monitor's path: {fastapi_requests.unsupported_reason()}",
)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


class Telemetry:
    """Providers of one app's own, with what they received."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.logs = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {
            "tracer_provider": self.tracer_provider,
            "meter_provider": self.meter_provider,
            "logger_provider": self.logger_provider,
            "metrics": True,
            "operation_spans": False,
            **overrides,
        }

    def seen(self) -> dict[str, Any]:
        """What was received, with ids and times left out and ids' relations kept."""
        spans = sorted(self.spans.get_finished_spans(), key=lambda s: s.start_time or 0)
        ids = {span.context.span_id: index for index, span in enumerate(spans)}
        metrics: dict[str, list[Any]] = {}
        data = self.reader.get_metrics_data()
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    points = metrics.setdefault(metric.name, [])
                    for point in metric.data.data_points:
                        points.append((dict(point.attributes), getattr(point, "count", getattr(point, "value", None))))
        for points in metrics.values():
            points.sort(key=repr)
        return {
            "spans": [
                {
                    "name": span.name,
                    "kind": span.kind,
                    "attributes": dict(span.attributes),
                    "status": span.status.status_code,
                    "events": [event.name for event in span.events],
                    "parent": (
                        ids.get(span.parent.span_id, format(span.parent.span_id, "016x")) if span.parent else None
                    ),
                    "remote_parent": bool(span.parent and span.parent.is_remote),
                    "trace": format(span.context.trace_id, "032x") if span.parent and span.parent.is_remote else None,
                    "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
                }
                for span in spans
            ],
            "metrics": metrics,
            "logs": [
                {
                    "event": record.log_record.event_name,
                    "body": record.log_record.body,
                    "severity": record.log_record.severity_number,
                    # The stack trace runs through whichever request path served: its last line is the exception.
                    "attributes": {
                        key: (value.strip().splitlines()[-1] if key == "exception.stacktrace" else value)
                        for key, value in (record.log_record.attributes or {}).items()
                    },
                    "in_span": record.log_record.span_id in ids,
                    "exception": type(record.log_record.exception).__name__ if record.log_record.exception else None,
                }
                for record in self.logs.get_finished_logs()
            ],
        }


def build(telemetry: Telemetry, **config: Any) -> FastAPI:
    app = FastAPI(telemetry=telemetry.config(**config))
    sub = FastAPI(telemetry=telemetry.config(**config))

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, Any]:
        span = trace.get_current_span()
        data = get_telemetry_data()
        return {
            "id": item_id,
            "span_recording": span.is_recording(),
            "data": data is not None,
            "request": data is not None and data.request is not None,
            "baggage": baggage.get_baggage("tenant"),
        }

    @app.get("/async/{item_id}")
    async def async_item(item_id: int) -> dict[str, Any]:
        return {
            "id": item_id,
            "span_recording": trace.get_current_span().is_recording(),
            "data": get_telemetry_data() is not None,
        }

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/teapot")
    def teapot() -> None:
        raise HTTPException(418, "short and stout")

    @app.get("/stream")
    def stream() -> StreamingResponse:
        return StreamingResponse(iter([b"a", b"b", b"c"]))

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    @app.get("/broken-stream")
    def broken_stream() -> StreamingResponse:
        def chunks() -> Any:
            yield b"a"
            raise RuntimeError("broken mid-stream")

        return StreamingResponse(chunks())

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    @app.websocket("/ws")
    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    @sub.get("/inner/{name}")
    def inner(name: str) -> dict[str, str]:
        return {"name": name}

    app.mount("/sub", sub)
    app.mount("/raw-trailers", _raw_trailers)
    app.mount("/raw-pathsend", _raw_pathsend)
    return app


async def _raw_trailers(scope: Any, receive: Any, send: Any) -> None:
    """A response whose body ends before its trailers: the request ends with the trailers."""
    await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
    await send({"type": "http.response.body", "body": b"x", "more_body": False})
    await send({"type": "http.response.trailers", "headers": [(b"x-check", b"1")], "more_trailers": False})


async def _raw_pathsend(scope: Any, receive: Any, send: Any) -> None:
    """A response sent by the server from a file (the pathsend extension)."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.pathsend", "path": "/dev/null"})


def native_and_lean(**config: Any) -> tuple[tuple[FastAPI, Telemetry], tuple[FastAPI, Telemetry]]:
    pairs = []
    for lean in (False, True):
        telemetry = Telemetry()
        app = build(telemetry, **config)
        for one in (app, *(route.app for route in app.routes if hasattr(route, "app"))):
            native = getattr(one, "_native_telemetry", None)
            if isinstance(native, LeanRequestTelemetry):  # FastAPI patched by an earlier test: undo for this one
                one._native_telemetry = native.native
            if lean and native is not None:
                assert serve(one)
        assert isinstance(app._native_telemetry, LeanRequestTelemetry) is lean
        pairs.append((app, telemetry))
    return pairs[0], pairs[1]


REQUESTS: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/items/1", {}),
    ("GET", "/async/2", {}),
    ("GET", "/items/not-a-number", {}),  # validation failure: a 422 and FastAPI's log event
    ("GET", "/boom", {}),  # an unhandled exception: a 500, error.type and the exception log
    ("GET", "/teapot", {}),
    ("GET", "/nowhere", {}),
    ("GET", "/items/3?token=abc&sig=secret&empty=", {}),
    ("HEAD", "/items/4", {}),
    ("FOO", "/items/5", {}),  # a method FastAPI does not know: _OTHER
    ("POST", "/items/6", {}),
    ("GET", "/stream", {}),
    ("GET", "/sub/inner/x", {}),
    ("GET", "/items/7", {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}),
    ("GET", "/items/8", {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00", "tracestate": "vendor=1"}),
    ("GET", "/items/9", {"baggage": "tenant=acme"}),
    ("GET", "/items/10", {"traceparent": "garbage"}),
    ("GET", "/items/11", {"Host": "shop.example:8443"}),
]


def _exchange(app: FastAPI, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.request(method, path, headers=headers)
        return response.status_code, response.content


@pytest.mark.parametrize(
    "config",
    [{}, {"operation_spans": True}, {"tracing": False}, {"metrics": False}, {"logs": False}],
    ids=["default", "operation-spans", "no-tracing", "no-metrics", "no-logs"],
)
@pytest.mark.parametrize(("method", "path", "headers"), REQUESTS, ids=[f"{m} {p} {h}" for m, p, h in REQUESTS])
def test_the_same_telemetry_and_response_as_fastapis_own(
    config: dict[str, Any], method: str, path: str, headers: dict[str, str]
) -> None:
    (native_app, native), (lean_app, lean) = native_and_lean(**config)
    assert _exchange(lean_app, method, path, headers) == _exchange(native_app, method, path, headers)
    expected, got = native.seen(), lean.seen()
    assert got == expected
    if not config:
        assert got["metrics"]  # there was telemetry to compare
        assert got["spans"] or headers.get("traceparent", "").endswith("-00")  # an unsampled parent: none


def test_the_request_context_holds_what_fastapis_three_attaches_leave_current() -> None:
    (native_app, _), (lean_app, _) = native_and_lean()
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "baggage": "tenant=acme"}
    native_body = TestClient(native_app).get("/items/1", headers=headers).json()
    lean_body = TestClient(lean_app).get("/items/1", headers=headers).json()
    assert (
        lean_body == native_body == {"id": 1, "span_recording": True, "data": True, "request": True, "baggage": "acme"}
    )


def test_the_context_is_restored_after_each_request() -> None:
    """Whatever the request does, the context current before it is current after it, in the same task."""
    (_, _), (lean_app, _) = native_and_lean()
    from opentelemetry import context as context_api

    async def every_way() -> None:
        outer = context_api.attach(context_api.set_value("caller", 1))
        before = context_api.get_current()
        for path in ("/items/1", "/boom", "/items/x", "/stream"):
            try:
                await lean_app(_scope("GET", path), _receive_nothing, _discard)
            except RuntimeError:
                assert path == "/boom"
            assert context_api.get_current() is before
        with pytest.raises(ClientDisconnect):  # the client left while the body was read
            await lean_app(_scope("POST", "/echo"), _disconnect, _discard)
        assert context_api.get_current() is before
        context_api.detach(outer)

    asyncio.run(every_way())


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers if headers is not None else [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }


async def _receive_nothing() -> dict[str, Any]:
    """The request's one (empty) body message; asked again, as streaming responses do, it waits (for ever)."""
    task = asyncio.current_task()
    seen = _receive_nothing.__dict__.setdefault("tasks", set())
    if task in seen:
        await asyncio.sleep(3600)
    seen.add(task)
    return {"type": "http.request", "body": b"", "more_body": False}


async def _disconnect() -> dict[str, Any]:
    return {"type": "http.disconnect"}


async def _discard(message: Any) -> None:
    pass


async def _gone(message: Any) -> None:
    if message["type"] == "http.response.body":
        raise OSError("client gone")


SCENARIOS = {
    "disconnect-while-reading": ("POST", "/echo", _disconnect, _discard),
    "failure-after-the-response-started": ("GET", "/broken-stream", _receive_nothing, _discard),
    "client-gone-while-sending": ("GET", "/items/1", _receive_nothing, _gone),
    "disconnect-while-streaming": ("GET", "/stream", _disconnect, _discard),  # ends with no exception
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_requests_that_end_badly_give_fastapis_telemetry(scenario: str) -> None:
    method, path, receive, send = SCENARIOS[scenario]
    (native_app, native), (lean_app, lean) = native_and_lean()
    outcomes = []
    for app in (native_app, lean_app):
        try:
            asyncio.run(app(_scope(method, path), receive, send))
            outcomes.append(None)
        except Exception as exc:  # noqa: BLE001 - what reaches the server is part of the comparison
            outcomes.append(type(exc).__name__)
    assert outcomes[0] == outcomes[1]
    expected, got = native.seen(), lean.seen()
    assert got == expected
    assert got["spans"] and got["spans"][-1]["status"].name == "ERROR"
    assert "error.type" in got["spans"][-1]["attributes"]


@pytest.mark.parametrize("path", ["/raw-trailers/", "/raw-pathsend/"])
def test_a_response_ending_with_trailers_or_pathsend_ends_the_request_there(path: str) -> None:
    (native_app, native), (lean_app, lean) = native_and_lean()
    for app in (native_app, lean_app):
        asyncio.run(app(_scope("GET", path), _receive_nothing, _discard))
    expected, got = native.seen(), lean.seen()
    assert got == expected
    (span,) = got["spans"]
    # Ended by the last message, not by the fallback for an incomplete response.
    assert span["status"].name == "UNSET" and span["attributes"]["http.response.status_code"] == 200


def test_websockets_and_excluded_requests_take_fastapis_own_path() -> None:
    (native_app, native), (lean_app, lean) = native_and_lean(exclude=lambda scope: scope.get("path") == "/health")
    for app in (native_app, lean_app):
        with TestClient(app) as client:
            with client.websocket_connect("/ws") as websocket:
                assert websocket.receive_text() == "hello"
            assert client.get("/health").json() == {"ok": True}
    assert lean.seen() == native.seen()
    assert [span["name"] for span in lean.seen()["spans"]] == ["WS /ws"]


def test_any_other_propagator_is_always_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A propagator other than the default pair reads headers we cannot list: it runs on every request."""
    calls = []

    class Counting(TraceContextTextMapPropagator):
        def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:  # type: ignore[override]
            calls.append(1)
            return super().extract(carrier, context, getter=getter)

    monkeypatch.setattr(propagate, "_HTTP_TEXT_FORMAT", CompositePropagator([Counting(), W3CBaggagePropagator()]))
    (_, _), (lean_app, lean) = native_and_lean()
    TestClient(lean_app).get("/items/1")
    assert calls == [1]
    monkeypatch.setattr(
        propagate, "_HTTP_TEXT_FORMAT", CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    )
    TestClient(lean_app).get("/items/1", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert lean.seen()["spans"][-1]["trace"] == TRACE_ID


def test_a_propagator_installed_by_replacing_get_global_textmap_runs_on_every_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replaced ``propagate.get_global_textmap`` is asked, as FastAPI asks it, even with no trace headers."""
    calls = []

    class Counting(TraceContextTextMapPropagator):
        def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:  # type: ignore[override]
            calls.append(1)
            return super().extract(carrier, context, getter=getter)

    monkeypatch.setattr(propagate, "get_global_textmap", lambda: Counting())
    (_, _), (lean_app, _) = native_and_lean()
    TestClient(lean_app).get("/items/1")
    assert calls == [1]


def test_providers_set_after_the_app_was_built_are_picked_up() -> None:
    """The kept provider checks are redone when a provider changes (here: telemetry switched on late)."""
    telemetry = Telemetry()
    config = telemetry.config()
    app = FastAPI(telemetry={**config, "tracer_provider": None})

    @app.get("/x")
    def x() -> dict[str, bool]:
        return {"ok": True}

    if isinstance(app._native_telemetry, LeanRequestTelemetry):
        app._native_telemetry = app._native_telemetry.native
    assert serve(app) and not serve(app)  # once only
    lean = app._native_telemetry
    asyncio.run(_drive(app, "/x"))
    first = lean._state
    assert lean.enabled() is lean.native.enabled() is True  # metrics and logs are on
    lean.config["tracer_provider"] = telemetry.tracer_provider
    asyncio.run(_drive(app, "/x"))
    assert lean._state is not first and lean._state[2] is True  # tracing
    assert [span.name for span in telemetry.spans.get_finished_spans()] == ["GET /x"]


async def _drive(app: FastAPI, path: str) -> None:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 200


@pytest.mark.parametrize("switched_on", [(), ("tracing",), ("metrics",), ("logs",), ("tracing", "metrics", "logs")])
def test_enabled_answers_as_fastapis_own(switched_on: tuple[str, ...]) -> None:
    """With no provider of the app's own, FastAPI asks the global ones (here: the API's unset proxies)."""
    config = {
        "tracing": "tracing" in switched_on,
        "metrics": "metrics" in switched_on,
        "logs": "logs" in switched_on,
        "tracer_provider": None,
        "meter_provider": None,
        "logger_provider": None,
    }
    app = FastAPI(telemetry=config)
    native = (
        app._native_telemetry.native
        if isinstance(app._native_telemetry, LeanRequestTelemetry)
        else app._native_telemetry
    )
    lean = LeanRequestTelemetry(native)
    assert lean.enabled() == native.enabled()
    lean.config["tracer_provider"] = TracerProvider()  # the app's own provider: tracing, if switched on, is enabled
    assert lean.enabled() == native.enabled()
    if "tracing" in switched_on:
        assert lean.enabled() is True


def _native_app(**config: Any) -> FastAPI:
    """An app with FastAPI's own request path, whatever an earlier test patched into FastAPI()."""
    app = FastAPI(telemetry=config or Telemetry().config())
    if isinstance(app._native_telemetry, LeanRequestTelemetry):
        app._native_telemetry = app._native_telemetry.native
    return app


def _check_again(monkeypatch: pytest.MonkeyPatch) -> str | None:
    """unsupported_reason() worked out anew; the module's answer is restored after the test."""
    monkeypatch.setattr(fastapi_requests, "_unsupported", None)
    monkeypatch.setattr(fastapi_requests, "_checked", False)
    monkeypatch.setattr(fastapi_requests, "_NATIVE_CALL", fastapi_requests._NATIVE_CALL)
    return fastapi_requests.unsupported_reason()


def test_an_unrecognised_fastapi_keeps_its_own_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastapi_requests, "KNOWN_SOURCES", frozenset({"0" * 64}))
    reason = _check_again(monkeypatch)
    assert reason is not None and "not the one otel-monitor mirrors" in reason
    assert not serve(_native_app())


def test_the_installed_fastapi_is_one_this_path_mirrors() -> None:
    """A FastAPI upgrade that changes its request path shows here first (the launcher would quietly keep FastAPI's)."""
    from fastapi.telemetry import _asgi

    assert fastapi_requests.mirrored_digest() in fastapi_requests.KNOWN_SOURCES
    assert _asgi.NativeTelemetry.__call__ in fastapi_requests.mirrored_functions()


def test_a_request_started_inside_a_current_span_is_a_root_as_in_fastapi() -> None:
    """Without trace headers FastAPI's extraction yields an empty context: an in-process caller's span is no parent."""
    (native_app, native), (lean_app, lean) = native_and_lean()
    outer = TracerProvider().get_tracer("caller")
    for app in (native_app, lean_app):
        with outer.start_as_current_span("caller"):
            asyncio.run(_drive(app, "/items/1"))
    assert lean.seen() == native.seen()
    assert [(span["name"], span["parent"]) for span in lean.seen()["spans"]] == [("GET /items/{item_id}", None)]


def test_global_providers_and_otel_monitors_span_type_give_fastapis_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    """As under the launcher: no provider of the app's own, the global ones set, otel-monitor's span type."""
    from opentelemetry._logs import _internal as logs_internal
    from opentelemetry.metrics import _internal as metrics_internal

    from otel_monitor.fast import spans

    seen = []
    for lean in (False, True):
        telemetry = Telemetry()
        assert spans.install(telemetry.tracer_provider)
        monkeypatch.setattr(trace, "_TRACER_PROVIDER", telemetry.tracer_provider)
        monkeypatch.setattr(metrics_internal, "_METER_PROVIDER", telemetry.meter_provider)
        monkeypatch.setattr(logs_internal, "_LOGGER_PROVIDER", telemetry.logger_provider)
        app = FastAPI(telemetry={"metrics": True})

        @app.get("/items/{item_id}")
        def item(item_id: int) -> dict[str, int]:
            if item_id == 0:
                raise RuntimeError("zero")
            return {"id": item_id}

        native = app._native_telemetry
        if isinstance(native, LeanRequestTelemetry):
            app._native_telemetry = native = native.native
        if lean:
            assert serve(app)
        with TestClient(app, raise_server_exceptions=False) as client:
            for path in ("/items/1", "/items/0", "/items/x"):
                client.get(path, headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"} if path == "/items/1" else {})
        seen.append(telemetry.seen())
    assert seen[1] == seen[0]
    # FastAPI's defaults: its operation spans too, around the server spans of the three requests.
    assert len([s for s in seen[1]["spans"] if s["kind"].name == "SERVER"]) == 3 < len(seen[1]["spans"])
    assert seen[1]["metrics"] and seen[1]["logs"]


def test_the_exclude_function_is_asked_once_per_request() -> None:
    asked: list[str] = []

    def exclude(scope: Any) -> bool:
        asked.append(scope["path"])
        return scope["path"] == "/health"

    (_, _), (lean_app, lean) = native_and_lean(exclude=exclude)
    with TestClient(lean_app) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/items/1").status_code == 200
    assert asked == ["/health", "/items/1"]
    assert [span["name"] for span in lean.seen()["spans"]] == ["GET /items/{item_id}"]


def test_a_wrapped_fastapi_request_path_is_left_running(monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent or a test wrapping FastAPI's NativeTelemetry.__call__ keeps seeing every request."""
    import functools

    from fastapi.telemetry import _asgi

    original = _asgi.NativeTelemetry.__call__

    @functools.wraps(original)
    async def wrapped(self: Any, **kwargs: Any) -> None:
        await original(self, **kwargs)

    monkeypatch.setattr(_asgi.NativeTelemetry, "__call__", wrapped)
    reason = _check_again(monkeypatch)
    assert reason is not None and "wrapped" in reason
    assert not serve(_native_app())


def test_a_request_path_patched_after_the_check_is_left_running(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.telemetry import _asgi

    assert fastapi_requests.unsupported_reason() is None
    monkeypatch.setattr(_asgi.NativeTelemetry, "__call__", lambda self, **kwargs: None)
    assert not serve(_native_app())


def test_a_copy_does_not_recurse() -> None:
    import copy

    (_, _), (lean_app, _) = native_and_lean()
    duplicate = copy.copy(lean_app._native_telemetry)
    assert duplicate.native is lean_app._native_telemetry.native


def _objects_in_flight(app: FastAPI) -> int:
    """How many more objects the garbage collector tracks inside the endpoint than before the request."""
    import gc

    counted: dict[str, int] = {}

    @app.get("/in-flight")
    async def in_flight() -> dict[str, bool]:
        counted["inside"] = len(gc.get_objects())
        return {"ok": True}

    async def request() -> None:
        gc.collect()
        counted["before"] = len(gc.get_objects())
        await _drive(app, "/in-flight")

    enabled = gc.isenabled()
    gc.disable()
    try:
        asyncio.run(_drive(app, "/in-flight"))  # a first request: whatever is made once is made
        asyncio.run(request())
    finally:
        if enabled:
            gc.enable()
    return counted["inside"] - counted["before"]


def test_a_request_in_flight_keeps_fewer_objects_for_the_garbage_collector_than_fastapis_path() -> None:
    # One object with slots where FastAPI keeps three closures with their cells and tuples, and one
    # empty parent context for all requests without trace headers: fewer objects for the collector
    # to count and scan while requests wait.
    (native_app, _), (lean_app, _) = native_and_lean()
    native, lean = _objects_in_flight(native_app), _objects_in_flight(lean_app)
    assert lean <= native - 15, (lean, native)
