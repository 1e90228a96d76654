"""FastAPI's native request telemetry, per HTTP request, with less work on the way.

FastAPI 0.16x serves its own request telemetry (``fastapi.telemetry``): a
server span, optional request metrics, logs of unhandled exceptions and
validation failures, and a per-request record (``_RequestTelemetry``) that
its routing fills in (the route) and its operation spans and
``get_telemetry_data()`` read.  Its ``NativeTelemetry.__call__`` redoes on
every request work whose answer rarely changes, and makes a request's
context current in three steps:

* it checks the three global providers and looks its logger up;
* it always runs the propagators over a ``Headers`` view of the request
  (a scan of every header per field), also when the request carries no
  trace context;
* it attaches the extracted parent context, then the request record on top,
  then the span (``trace.use_span``, a generator-based context manager):
  three contexts built and attached, three detached;
* it builds the metric attribute sets even when request metrics are off.

:class:`LeanRequestTelemetry` takes its place on each ``FastAPI()`` app for
HTTP requests and does the same things with less: provider checks and the
logger kept per set of providers, the propagators run only when a header
they read is present (for the default ``tracecontext,baggage`` pair; any
other propagator always runs), and one context made current holding what
the three steps leave current.  The span (name, kind, attributes, status,
parent), the metrics, the log records and the request record are
FastAPI's, and FastAPI's own functions still do everything outside this
path (``_server_attributes``, ``_exception``, ``_instruments``,
``_get_tracer``); ``tests/unit/test_fastapi_requests.py`` compares the telemetry
of both for the same requests.

WebSocket connections and apps that also carry the contrib's ASGI
middleware take FastAPI's own path; excluded requests take FastAPI's own
branch for them, here.  Only the FastAPI releases this was written against
are served (the source of the FastAPI functions it mirrors or relies on is
recognised by its digest), and only when nothing wraps FastAPI's
``NativeTelemetry.__call__``: with any other, FastAPI's own path stays and
``otel-monitor config`` says why.  One difference remains: while the server
span starts, the sampler and span processors get the extracted parent as
their argument, as in FastAPI, but the context current at that moment is
still the caller's (FastAPI has already made the parent current).
``OTEL_MONITOR_LEAN_REQUESTS=false`` turns this off.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from time import perf_counter
from typing import Any
from urllib.parse import parse_qsl, urlencode

from otel_monitor import patching

# mirrored_digest() of the FastAPI releases this module mirrors: 0.165.0.
KNOWN_SOURCES = frozenset(
    {
        "16196d16599cdb85ed9119ce90cf43ac78504cd9fd8949babda2bb6b050f4f32",
    }
)
# Header names the default propagators (W3C trace context, then W3C baggage) read.
_DEFAULT_PROPAGATION_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})

_unsupported: str | None = None  # why FastAPI's own path stays; None once checked and supported
_checked = False


def source_digest(function: Callable[..., Any]) -> str | None:
    import inspect

    try:
        return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()
    except (OSError, TypeError):
        return None


def unsupported_reason() -> str | None:
    """Why this FastAPI keeps its own request path, or None when ours serves it (checked once)."""
    global _checked, _unsupported
    if not _checked:
        _unsupported = _check()
        _checked = True
    return _unsupported


def mirrored_functions() -> list[Callable[..., Any]]:
    """FastAPI's functions whose behaviour this module reproduces or relies on."""
    from fastapi import applications
    from fastapi.telemetry import _asgi

    native = _asgi.NativeTelemetry
    return [
        native.__call__,
        native.enabled,
        native._instruments,  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
        native._get_tracer,  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
        _asgi._HeadersGetter.get,  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
        applications.FastAPI.__call__,
    ]


def mirrored_digest() -> str | None:
    """One sha256 over the source of every function of :func:`mirrored_functions`, None when one is unreadable."""
    digests = []
    for function in mirrored_functions():
        digest = source_digest(function)
        if digest is None:
            return None
        digests.append(digest)
    return hashlib.sha256("".join(digests).encode()).hexdigest()


_NATIVE_CALL: Any = None  # NativeTelemetry.__call__ as FastAPI defines it, recorded by the check


def _check() -> str | None:
    global _NATIVE_CALL
    try:
        from fastapi.telemetry import _api, _asgi
    except ImportError:
        return "this FastAPI has no native telemetry"
    native = getattr(_asgi, "NativeTelemetry", None)
    try:
        known = mirrored_digest() in KNOWN_SOURCES
    except AttributeError:
        known = False
    if native is None or not known:
        return "FastAPI's native telemetry is not the one otel-monitor mirrors (a newer FastAPI?)"
    if hasattr(native.__call__, "__wrapped__"):
        # Someone wraps FastAPI's request path (an APM agent, a test): it must keep running.
        return "FastAPI's NativeTelemetry.__call__ is wrapped by other code"
    needed = (
        (
            _asgi,
            (
                "_server_attributes",
                "_exception",
                "_HEADERS_GETTER",
                "_SENSITIVE_QUERY_PARAMETERS",
                "_SCHEMA_URL",
                "Headers",
            ),
        ),
        (_api, ("_RequestTelemetry", "_REQUEST_TELEMETRY_KEY", "_exception_type", "_unconfigured")),
    )
    missing = [name for module, names in needed for name in names if not hasattr(module, name)]
    if missing:
        return f"FastAPI's telemetry lacks {', '.join(missing)}"
    _NATIVE_CALL = native.__call__
    return None


def serve(app: Any) -> bool:
    """Put :class:`LeanRequestTelemetry` in front of ``app``'s native telemetry; False when it cannot be."""
    native = getattr(app, "_native_telemetry", None)
    if native is None or isinstance(native, LeanRequestTelemetry) or unsupported_reason() is not None:
        return False
    # Only FastAPI's own class with its own __call__: a subclass or a request path patched since is left alone.
    if type(native).__name__ != "NativeTelemetry" or type(native).__call__ is not _NATIVE_CALL:
        return False
    patching.replace(app, "_native_telemetry", LeanRequestTelemetry(native))  # compat: lean_requests
    return True


class LeanRequestTelemetry:
    """FastAPI's ``NativeTelemetry`` for HTTP requests, with less work per request (see the module)."""

    def __init__(self, native: Any) -> None:
        from fastapi import __version__
        from fastapi.telemetry import _api, _asgi
        from opentelemetry import _logs, metrics, propagate, trace
        from opentelemetry import context as context_api
        from opentelemetry._logs import _internal as logs_internal
        from opentelemetry.context import Context
        from opentelemetry.metrics import _internal as metrics_internal
        from opentelemetry.trace import SpanKind, StatusCode
        from opentelemetry.trace.propagation import _SPAN_KEY

        self.native = native
        self.config = native.config
        self._asgi = _asgi
        self._version = __version__
        self._request_telemetry = _api._RequestTelemetry  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
        self._key = _api._REQUEST_TELEMETRY_KEY  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
        self._exception_type = _api._exception_type  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
        self._unconfigured = _api._unconfigured  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
        self._trace, self._metrics, self._logs, self._propagate = trace, metrics, _logs, propagate
        self._metrics_internal, self._logs_internal = metrics_internal, logs_internal
        self._context_api, self._context = context_api, Context
        # What both default propagators give a request without their headers; one for all such requests
        # (a Context refuses changes), so none is made per request.
        self._no_parent = Context()
        self._span_key = _SPAN_KEY
        self._server, self._error = SpanKind.SERVER, StatusCode.ERROR
        # See _providers_state; replaced as one tuple.
        self._state: tuple[Any, ...] | None = None
        # (global propagator, whether it is the default pair) for the last propagator seen.
        self._propagator: tuple[Any, bool] = (None, False)

    def __getattr__(self, name: str) -> Any:
        # _instruments(), _get_tracer() and anything else FastAPI asks for: the native object's.
        native = self.__dict__.get("native")
        if native is None:  # a copy or unpickling, before __init__: no recursion
            raise AttributeError(name)
        return getattr(native, name)

    def enabled(self) -> bool:
        """FastAPI's ``NativeTelemetry.enabled()``, answered from the kept provider checks."""
        return self._providers_state()[1]

    def _providers(self) -> tuple[Any, Any, Any]:
        # What get_tracer_provider() & co. return: the set provider, read off the API module when there is one.
        config = self.config
        return (
            config["tracer_provider"]
            or getattr(self._trace, "_TRACER_PROVIDER", None)
            or self._trace.get_tracer_provider(),
            config["meter_provider"]
            or getattr(self._metrics_internal, "_METER_PROVIDER", None)
            or self._metrics.get_meter_provider(),
            config["logger_provider"]
            or getattr(self._logs_internal, "_LOGGER_PROVIDER", None)
            or self._logs.get_logger_provider(),
        )

    def _providers_state(self) -> tuple[Any, ...]:
        """(key, enabled, tracing, metering, logging, tracer, logger).

        Worked out again when a provider or switch changes.
        """
        config = self.config
        tracer_provider, meter_provider, logger_provider = self._providers()
        state = self._state
        if state is not None:
            kept = state[0]
            if (
                kept[0] is tracer_provider
                and kept[1] is meter_provider
                and kept[2] is logger_provider
                and kept[3] is config["tracing"]
                and kept[4] is config["metrics"]
                and kept[5] is config["logs"]
            ):
                return state
        key = (tracer_provider, meter_provider, logger_provider, config["tracing"], config["metrics"], config["logs"])
        unconfigured = self._unconfigured
        # FastAPI's own tests: enabled() in NativeTelemetry.enabled, the rest per request in its __call__.
        enabled = bool(
            (config["tracing"] and (config["tracer_provider"] is not None or not unconfigured(tracer_provider)))
            or (config["metrics"] and (config["meter_provider"] is not None or not unconfigured(meter_provider)))
            or (config["logs"] and (config["logger_provider"] is not None or not unconfigured(logger_provider)))
        )
        tracing = bool(config["tracing"]) and not (
            (config["tracer_provider"] is None and unconfigured(tracer_provider))
            or isinstance(tracer_provider, self._trace.NoOpTracerProvider)
        )
        metering = bool(config["metrics"]) and not (
            (config["meter_provider"] is None and unconfigured(meter_provider))
            or isinstance(meter_provider, self._metrics.NoOpMeterProvider)
        )
        logging = bool(config["logs"]) and not (
            (config["logger_provider"] is None and unconfigured(logger_provider))
            or isinstance(logger_provider, self._logs.NoOpLoggerProvider)
        )
        tracer = self.native._get_tracer(provider=tracer_provider) if tracing else None  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
        logger = (
            self._logs.get_logger(
                "fastapi",
                self._version,
                config["logger_provider"],
                schema_url=self._asgi._SCHEMA_URL,  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
            )
            if logging
            else None
        )
        state = self._state = (key, enabled, tracing, metering, logging, tracer, logger)
        return state

    def _default_propagation(self) -> bool:
        """Whether the global propagator is the default pair, whose headers we know (kept per propagator)."""
        propagate = self._propagate
        if propagate.get_global_textmap is not _API_GET_GLOBAL_TEXTMAP:
            return False  # replaced: whatever it hands out runs on every request, as FastAPI runs it
        propagator = getattr(propagate, "_HTTP_TEXT_FORMAT", None) or propagate.get_global_textmap()
        known, default = self._propagator
        if propagator is not known:
            default = _is_default_pair(propagator)
            self._propagator = (propagator, default)
        return default

    async def __call__(self, *, app: Any, scope: Any, receive: Any, send: Any, legacy_otel: bool = False) -> None:
        config = self.config
        if legacy_otel or scope["type"] != "http":
            await self.native(app=app, scope=scope, receive=receive, send=send, legacy_otel=legacy_otel)
            return
        if config["exclude"] is not None and config["exclude"](scope):
            # FastAPI's own branch for an excluded request (its exclude is asked once, as FastAPI asks it).
            scope["fastapi.telemetry"] = None  # mounted FastAPI apps must not observe it either
            context_api = self._context_api
            token = context_api.attach(context_api.set_value(self._key, None))
            try:
                await app(scope, receive, send)
            finally:
                context_api.detach(token)
                scope.pop("fastapi.telemetry", None)
            return
        # FastAPI.__call__ asked enabled() for this request a moment ago, with nothing awaited since:
        # the state it checked is this request's (worked out here when nothing asked first).
        state = self._state or self._providers_state()
        _, _, tracing, metering, logging, tracer, logger = state
        if not tracing and not metering and not logging:
            await app(scope, receive, send)
            return
        native = self.native
        original_method = scope.get("method", "")
        method = original_method if original_method in native._known_methods else "_OTHER"  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
        span_method = "HTTP" if method == "_OTHER" else method
        attributes: dict[str, Any] = {"url.scheme": scope.get("scheme", "http"), "http.request.method": method}
        if scope.get("http_version"):
            attributes["network.protocol.version"] = scope["http_version"]
        if metering:
            duration, active = native._instruments()  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
            active_attributes = {k: v for k, v in attributes.items() if k != "network.protocol.version"}
            active.add(1, active_attributes)
        else:
            duration = active = active_attributes = None
        started = perf_counter()
        span = None
        if tracing:
            asgi = self._asgi
            parent = None
            headers = scope.get("headers")
            if (headers.__class__ is list or headers.__class__ is tuple) and self._default_propagation():
                for name, _value in headers:
                    if name.__class__ is not bytes or name in _DEFAULT_PROPAGATION_HEADERS:
                        break  # one of their headers, or a name we do not read here: the propagators decide
                else:
                    parent = self._no_parent
            if parent is None:
                parent = self._propagate.extract(asgi.Headers(scope=scope), getter=asgi._HEADERS_GETTER)  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
            span_attributes = {**attributes, **asgi._server_attributes(scope)}  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
            span_attributes["url.path"] = scope["path"]
            if scope.get("query_string"):
                span_attributes["url.query"] = _redacted_query(scope["query_string"], asgi._SENSITIVE_QUERY_PARAMETERS)  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
            if original_method != method:
                span_attributes["http.request.method_original"] = original_method
            span = tracer.start_span(span_method, context=parent, kind=self._server, attributes=span_attributes)
            values = dict(parent)
            values[self._span_key] = span
        else:
            values = dict(self._context_api.get_current())
        request = self._request_telemetry(
            span=span,
            span_method=span_method,
            tracer=tracer if config["operation_spans"] else None,
            logger=logger,
            _mount_prefix=scope.get("app_root_path", scope.get("root_path", "")).rstrip("/"),
        )
        scope["fastapi.telemetry"] = request
        values[self._key] = request
        # What FastAPI's three attaches leave current (parent, request record, span), made current at once.
        token = self._context_api.attach(self._context(values))
        exchange = _Exchange(
            self, request, span, attributes, duration, active, active_attributes, started, send, receive
        )
        try:
            try:
                await app(scope, exchange.receive, exchange.send)
            except BaseException as exc:
                self._asgi._exception(scope=scope, exc=exc)  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
                exchange.finish(exc)
                raise
            finally:
                if not exchange.finished:
                    exchange.finish(
                        ConnectionError("Client disconnected")
                        if exchange.disconnected
                        else RuntimeError("Incomplete ASGI response")
                    )
        finally:
            request.data = None
            request._exceptions.clear()  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
            self._context_api.detach(token)
            scope.pop("fastapi.telemetry", None)


class _Exchange:
    """One request's send and receive wrappers and its end, as FastAPI's closures do them.

    One object with slots instead of three closures: a request in flight keeps
    about twenty fewer objects for the cyclic garbage collector to count and
    scan (the closures' cells, functions and tuples).
    """

    __slots__ = (
        "_receive",
        "_send",
        "active",
        "active_attributes",
        "attributes",
        "disconnected",
        "duration",
        "finished",
        "request",
        "span",
        "started",
        "telemetry",
        "trailers",
    )

    def __init__(
        self,
        telemetry: LeanRequestTelemetry,
        request: Any,
        span: Any,
        attributes: dict[str, Any],
        duration: Any,
        active: Any,
        active_attributes: Any,
        started: float,
        send: Any,
        receive: Any,
    ) -> None:
        self.telemetry = telemetry
        self.request = request
        self.span = span
        self.attributes = attributes
        self.duration = duration
        self.active = active
        self.active_attributes = active_attributes
        self.started = started
        self._send = send
        self._receive = receive
        self.finished = False
        self.trailers = False
        self.disconnected = False

    def finish(self, error: BaseException | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        request, span, attributes = self.request, self.span, self.attributes
        if request.route is not None:
            attributes["http.route"] = request.route
        status = request.status_code
        if status is not None:
            attributes["http.response.status_code"] = status
        failed = error is not None or status is None or status >= 500
        if failed:
            errors = request._exceptions  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
            failure = error or (errors[-1] if errors else None)
            attributes["error.type"] = (
                self.telemetry._exception_type(failure)  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
                if failure
                else str(status or "incomplete_response")
            )
        if span is not None:
            span.set_attributes(attributes)
            if failed:
                span.set_status(self.telemetry._error)  # noqa: SLF001 - FastAPI telemetry internals (compat: lean_requests)
        # Recorded while the span is current, as FastAPI does, so exemplars can correlate it.
        if self.duration is not None:
            self.duration.record(max(0, perf_counter() - self.started), attributes)
        if self.active is not None:
            self.active.add(-1, self.active_attributes)
        if span is not None:
            span.end()

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.request.status_code = message["status"]
            self.trailers = message.get("trailers", False)
        await self._send(message)
        if (
            (kind == "http.response.body" and not message.get("more_body", False) and not self.trailers)
            or (kind == "http.response.trailers" and not message.get("more_trailers", False))
            or kind == "http.response.pathsend"
        ):
            self.finish()

    async def receive(self) -> Any:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.disconnected = True
        return message


def _redacted_query(query_string: bytes, sensitive: Any) -> str:
    """FastAPI's ``url.query``: the query string with sensitive parameters' values replaced.

    A function of its own, so that the request path keeps no closure cell for it.
    """
    return urlencode(
        [
            (key, "REDACTED" if key in sensitive else value)
            for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        ]
    )


def _api_get_global_textmap() -> Any:
    from opentelemetry import propagate

    return propagate.get_global_textmap


_API_GET_GLOBAL_TEXTMAP = _api_get_global_textmap()


def _is_default_pair(propagator: Any) -> bool:
    """The global propagator is the default W3C trace context then W3C baggage, of the API's own classes."""
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if type(propagator) is not CompositePropagator:
        return False
    inner = [type(p) for p in getattr(propagator, "_propagators", ())]
    return inner == [TraceContextTextMapPropagator, W3CBaggagePropagator]
