"""The console's JSON API: one endpoint behind every view.

Every list endpoint takes ``service`` (omit for all services) and ``window``
(``15m``, ``1h``, ``4h``, ``24h``; default ``15m``).  Bad parameters get a 400
naming the parameter.
"""

from __future__ import annotations

from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from otel_monitor.console.aggregates import WINDOWS, Queries
from otel_monitor.console.alerts import AlertBook
from otel_monitor.console.persist import RequestLog
from otel_monitor.console.store import Store


class Console(Protocol):
    """What the API reads of the console (``otel_monitor.console.app.Console``)."""

    store: Store
    alerts: AlertBook
    request_log: RequestLog | None
    replaying: bool
    replay_progress: dict[str, int]

DEFAULT_WINDOW = "15m"


class BadParameter(ValueError):
    pass


def _params(request: Request) -> tuple[str | None, str]:
    service = request.query_params.get("service") or None
    window = request.query_params.get("window") or DEFAULT_WINDOW
    if window not in WINDOWS:
        raise BadParameter(f"window={window!r} is not one of {', '.join(WINDOWS)}")
    return service, window


def _console(request: Request) -> Console:
    return request.app.state.console


def _answer(request: Request, build: Any) -> JSONResponse:
    try:
        service, window = _params(request)
        body = build(_console(request), Queries(_console(request).store), service, window)
    except (BadParameter, ValueError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    if body is None:
        return JSONResponse({"error": "not found"}, status_code=404)
    return JSONResponse(_flag_replay(_console(request), body))


def _flag_replay(console: Console, body: dict[str, Any]) -> dict[str, Any]:
    """While stored requests are replayed (``--db``), figures cover only part of them: say so."""
    if console.replaying:
        body["replaying"] = True
        body["replay"] = dict(console.replay_progress)
    return body


async def services(request: Request) -> JSONResponse:
    console = _console(request)
    with console.store.lock:
        received, evicted = dict(console.store.received), dict(console.store.evicted)
        spans, logs = console.store.span_count, len(console.store.logs)
    return JSONResponse({
        "services": Queries(console.store).services(), "windows": list(WINDOWS),
        "received": received, "evicted": evicted,
        "kept": {"spans": spans, "logs": logs}, "limits": console.store.limits.__dict__,
        "persistent": console.request_log is not None,
        "replaying": console.replaying, "replay": dict(console.replay_progress),
    })


async def summary(request: Request) -> JSONResponse:
    return _answer(request, lambda c, q, s, w: {
        "window": w, "services": q.summary(s, w),
        "note": ("Percentiles are interpolated within a histogram bucket narrowed to the observed min and max; "
                 "throughput is the rate over the last minute.")})


async def operations(request: Request) -> JSONResponse:
    return _answer(request, lambda c, q, s, w: {"window": w, "operations": q.operations(s, w)})


async def operation(request: Request) -> JSONResponse:
    name = request.path_params["name"]

    def build(c: Console, q: Queries, s: str | None, w: str) -> dict[str, Any] | None:
        rows = [r for r in q.operations(s, w) if r["operation"] == name]
        if not rows:
            return None
        thresholds = q.slos.for_operation(name)
        return {"window": w, "operation": name, "rows": rows,
                "thresholds": thresholds.__dict__,
                "series": q.operation_series(s, name, w),
                "errors": [g for g in q.errors(s, w) if g["operation"] == name],
                "traces": [t for t in q.traces(s, w, "recent", 500)
                           if t["name"] and name in _ops_of(c, t["trace_id"])][:20]}
    return _answer(request, build)


def _ops_of(console: Console, trace_id: str) -> set[str]:
    from otel_monitor import semconv

    with console.store.lock:
        trace = console.store.traces.get(trace_id)
        return {str(s["attributes"].get(semconv.MONITOR_OPERATION)) for s in (trace.spans if trace else [])}


async def errors(request: Request) -> JSONResponse:
    return _answer(request, lambda c, q, s, w: {"window": w, "errors": q.errors(s, w)})


async def traces(request: Request) -> JSONResponse:
    kind = request.query_params.get("kind", "recent")
    return _answer(request, lambda c, q, s, w: {"window": w, "kind": kind, "traces": q.traces(s, w, kind)})


async def trace(request: Request) -> JSONResponse:
    trace_id = request.path_params["trace_id"]
    if len(trace_id) != 32 or any(ch not in "0123456789abcdefABCDEF" for ch in trace_id):
        return JSONResponse({"error": "trace_id must be 32 hexadecimal characters"}, status_code=400)
    found = Queries(_console(request).store).trace(trace_id)
    if found is None:
        return JSONResponse({"error": f"trace {trace_id} not found (never received, or evicted)"}, status_code=404)
    return JSONResponse(found)


async def metrics(request: Request) -> JSONResponse:
    return _answer(request, lambda c, q, s, w: {"window": w, "metrics": q.metrics(s, w)})


async def funnels(request: Request) -> JSONResponse:
    return _answer(request, lambda c, q, s, w: {"window": w, "funnels": q.funnels(s, w, c.funnels)})


async def health(request: Request) -> JSONResponse:
    return _answer(request, lambda c, q, s, w: {"window": w, "checks": q.health(s, w)})


async def alerts(request: Request) -> JSONResponse:
    console = _console(request)
    if not console.replaying:  # alerts judge complete data only
        console.alerts.evaluate()
    service = request.query_params.get("service") or None
    return JSONResponse(_flag_replay(console, console.alerts.as_json(service)))


async def acknowledge(request: Request) -> JSONResponse:
    alert_id = request.path_params["alert_id"]
    if not _console(request).alerts.acknowledge(alert_id):
        return JSONResponse({"error": f"no firing alert {alert_id!r}"}, status_code=404)
    return JSONResponse({"acknowledged": alert_id})


ROUTES = [
    Route("/api/services", services),
    Route("/api/summary", summary),
    Route("/api/operations", operations),
    Route("/api/operations/{name:path}", operation),
    Route("/api/errors", errors),
    Route("/api/traces", traces),
    Route("/api/traces/{trace_id}", trace),
    Route("/api/metrics", metrics),
    Route("/api/funnels", funnels),
    Route("/api/health", health),
    Route("/api/alerts", alerts),
    Route("/api/alerts/{alert_id:path}/ack", acknowledge, methods=["POST"]),
]
