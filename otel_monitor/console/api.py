"""The console's JSON API: one endpoint behind every view.

Every list endpoint takes ``service`` (omit for all services) and ``window``
(``15m``, ``1h``, ``4h``, ``24h``; default ``15m``); the summary and the
operations also take ``7d`` and ``30d`` when the console keeps a ``--db``.  Bad parameters get a 400
naming the parameter.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from otel_monitor.console import explore
from otel_monitor.console.aggregates import WINDOWS, Queries, window_minutes
from otel_monitor.console.alerts import AlertBook
from otel_monitor.console.persist import RequestLog
from otel_monitor.console.rollups import LONG_WINDOWS, HourlyRollups
from otel_monitor.console.store import Store


class Console(Protocol):
    """What the API reads of the console (``otel_monitor.console.app.Console``)."""

    store: Store
    alerts: AlertBook
    request_log: RequestLog | None
    hourly: HourlyRollups | None
    replaying: bool
    replay_progress: dict[str, int]


DEFAULT_WINDOW = "15m"


class BadParameter(ValueError):
    pass


def _params(request: Request, long_windows: bool = False) -> tuple[str | None, str]:
    """``service`` and ``window``; the 7- and 30-day windows only where ``long_windows`` (the
    summary and the operations, answered from the hourly roll-ups of ``--db``)."""
    service = request.query_params.get("service") or None
    window = request.query_params.get("window") or DEFAULT_WINDOW
    if window in LONG_WINDOWS and long_windows:
        if _console(request).hourly is None:
            raise BadParameter(f"window={window} needs the hourly roll-ups: start the console with --db")
        return service, window
    if window not in WINDOWS:
        more = f" ({', '.join(LONG_WINDOWS)} only for the summary and the operations)" if window in LONG_WINDOWS else ""
        raise BadParameter(f"window={window!r} is not one of {', '.join(WINDOWS)}{more}")
    return service, window


def _console(request: Request) -> Console:
    return request.app.state.console


def _answer(request: Request, build: Any, long_windows: bool = False) -> JSONResponse:
    try:
        service, window = _params(request, long_windows)
        console = _console(request)
        body = build(console, Queries(console.store, rollups=console.hourly), service, window)
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
    """Services seen, and what the console received, kept and evicted.
    ---
    summary: Services seen, and what the console received, kept and evicted
    responses:
      200: {$ref: '#/components/responses/Services'}
    """
    console = _console(request)
    with console.store.lock:
        received, evicted = dict(console.store.received), dict(console.store.evicted)
        spans, logs = console.store.span_count, len(console.store.logs)
        index = console.store.search_index.memory()  # trace search's index: keys, entries, bytes
    return JSONResponse(
        {
            "services": Queries(console.store).services(),
            "windows": list(WINDOWS),
            # The summary and the operations also take these, with --db (hourly roll-ups).
            "long_windows": list(LONG_WINDOWS) if console.hourly is not None else [],
            "received": received,
            "evicted": evicted,
            "kept": {"spans": spans, "logs": logs, **index},
            "limits": console.store.limits.__dict__,
            "persistent": console.request_log is not None,
            "replaying": console.replaying,
            "replay": dict(console.replay_progress),
            # The console's own notifications: delivered, retried and failed posts (None: no webhook).
            "alert_webhook": console.alerts.notifier.stats() if console.alerts.notifier is not None else None,
        }
    )


async def summary(request: Request) -> JSONResponse:
    """Per service, calls, errors, throughput, latency percentiles and status.
    ---
    summary: Per service, calls, errors, throughput, latency percentiles and status
    parameters:
      - $ref: '#/components/parameters/service'
      - $ref: '#/components/parameters/window'
    responses:
      200: {$ref: '#/components/responses/Summary'}
      400: {$ref: '#/components/responses/BadParameter'}
    """
    return _answer(
        request,
        lambda c, q, s, w: {
            "window": w,
            "services": q.summary(s, w),
            "note": (
                "Percentiles are interpolated within a histogram bucket narrowed to the observed min and max; "
                "throughput is the rate over the last minute."
            ),
        },
        long_windows=True,
    )


async def operations(request: Request) -> JSONResponse:
    """Per operation, rate, errors and duration percentiles against its SLO.
    ---
    summary: Per operation, rate, errors and duration percentiles against its SLO
    parameters:
      - $ref: '#/components/parameters/service'
      - $ref: '#/components/parameters/window'
    responses:
      200: {$ref: '#/components/responses/Operations'}
      400: {$ref: '#/components/responses/BadParameter'}
    """
    return _answer(request, lambda c, q, s, w: {"window": w, "operations": q.operations(s, w)}, long_windows=True)


async def operation(request: Request) -> JSONResponse:
    """One operation, its per-minute series, error groups and example traces.
    ---
    summary: One operation, its per-minute series, error groups and example traces
    parameters:
      - $ref: '#/components/parameters/operation_name'
      - $ref: '#/components/parameters/service'
      - $ref: '#/components/parameters/window'
    responses:
      200: {$ref: '#/components/responses/Operation'}
      400: {$ref: '#/components/responses/BadParameter'}
      404: {$ref: '#/components/responses/NotFound'}
    """
    name = request.path_params["name"]

    def build(c: Console, q: Queries, s: str | None, w: str) -> dict[str, Any] | None:
        rows = [r for r in q.operations(s, w) if r["operation"] == name]
        if not rows:
            return None
        thresholds = q.slos.for_operation(name)
        return {
            "window": w,
            "operation": name,
            "rows": rows,
            "thresholds": thresholds.__dict__,
            "series": q.operation_series(s, name, w),
            "errors": [g for g in q.errors(s, w) if g["operation"] == name],
            "traces": explore.recent_traces_with(c.store, name, s, _since_ns(q, w)),
        }

    return _answer(request, build)


async def errors(request: Request) -> JSONResponse:
    """Error groups by fingerprint, with counts, users, stack trace and example traces.
    ---
    summary: Error groups by fingerprint, with counts, users, stack trace and example traces
    parameters:
      - $ref: '#/components/parameters/service'
      - $ref: '#/components/parameters/window'
    responses:
      200: {$ref: '#/components/responses/Errors'}
      400: {$ref: '#/components/responses/BadParameter'}
    """
    return _answer(request, lambda c, q, s, w: {"window": w, "errors": q.errors(s, w)})


def _since_ns(q: Queries, window: str) -> int:
    return (q.now_ns // explore.MINUTE_NS - window_minutes(window) + 1) * explore.MINUTE_NS


async def traces(request: Request) -> JSONResponse:
    """Search traces, newest first (``kind=slow``: longest first), one page at a time.

    Query: ``service``, ``window``, ``kind`` (recent, slow, failed), ``operation`` (a span name,
    its ``monitor.operation`` or HTTP route), ``status`` (ok, error), ``min_ms``, ``max_ms``,
    ``attr`` (``key=value`` on a span or its resource, repeatable), ``start`` and ``end`` (ms since
    the epoch), ``limit`` (at most 500), ``offset``.  Answer: ``total`` matching and ``traces``.
    ---
    summary: Search traces
    parameters:
      - $ref: '#/components/parameters/service'
      - $ref: '#/components/parameters/window'
      - $ref: '#/components/parameters/trace_kind'
      - $ref: '#/components/parameters/operation'
      - $ref: '#/components/parameters/status'
      - $ref: '#/components/parameters/min_ms'
      - $ref: '#/components/parameters/max_ms'
      - $ref: '#/components/parameters/attr'
      - $ref: '#/components/parameters/start'
      - $ref: '#/components/parameters/end'
      - $ref: '#/components/parameters/limit'
      - $ref: '#/components/parameters/offset'
    responses:
      200: {$ref: '#/components/responses/Traces'}
      400: {$ref: '#/components/responses/BadParameter'}
    """
    kind = request.query_params.get("kind", "recent")

    def build(c: Console, q: Queries, s: str | None, w: str) -> dict[str, Any]:
        if kind not in ("recent", "slow", "failed"):
            raise ValueError(f"kind={kind!r} is not one of recent, slow, failed")
        f = explore.parse_filters(request.query_params)
        if kind == "failed":
            f.status = "error"
        # kind=slow: the slowest of every match, then paged
        found = explore.search_traces(c.store, f, _since_ns(q, w), order="slow" if kind == "slow" else "recent")
        return {"window": w, "kind": kind, **found}

    return _answer(request, build)


async def trace(request: Request) -> JSONResponse:
    """One trace in full: every span (attributes, events, links, resource, scope, status, the
    statement of a database span, duration in ms and µs) and the trace's logs by time.
    ---
    summary: One trace, every span in full, and its logs
    parameters:
      - $ref: '#/components/parameters/trace_id_path'
    responses:
      200: {$ref: '#/components/responses/Trace'}
      400: {$ref: '#/components/responses/BadParameter'}
      404: {$ref: '#/components/responses/NotFound'}
    """
    trace_id = request.path_params["trace_id"]
    if len(trace_id) != 32 or any(ch not in "0123456789abcdefABCDEF" for ch in trace_id):
        return JSONResponse({"error": "trace_id must be 32 hexadecimal characters"}, status_code=400)
    found = explore.trace_detail(_console(request).store, trace_id.lower())
    if found is None:
        return JSONResponse({"error": f"trace {trace_id} not found (never received, or evicted)"}, status_code=404)
    return JSONResponse(found)


async def logs(request: Request) -> JSONResponse:
    """Structured logs, newest first, one page at a time.

    Query: ``service``, ``window``, ``level`` (the lowest severity shown: trace, debug, info, warn,
    error, fatal), ``q`` (text in the body or event name), ``attr`` (``key=value``, repeatable),
    ``trace_id``, ``span_id``, ``start``, ``end`` (ms), ``after`` (only records numbered above it:
    the live tail sends the ``last_seq`` of its previous answer), ``limit`` (at most 500), ``offset``.
    ---
    summary: Search structured logs
    parameters:
      - $ref: '#/components/parameters/service'
      - $ref: '#/components/parameters/window'
      - $ref: '#/components/parameters/level'
      - $ref: '#/components/parameters/q'
      - $ref: '#/components/parameters/attr'
      - $ref: '#/components/parameters/trace_id'
      - $ref: '#/components/parameters/span_id'
      - $ref: '#/components/parameters/start'
      - $ref: '#/components/parameters/end'
      - $ref: '#/components/parameters/after'
      - $ref: '#/components/parameters/limit'
      - $ref: '#/components/parameters/offset'
    responses:
      200: {$ref: '#/components/responses/Logs'}
      400: {$ref: '#/components/responses/BadParameter'}
    """
    return _answer(
        request,
        lambda c, q, s, w: {
            "window": w,
            **explore.search_logs(c.store, explore.parse_filters(request.query_params), _since_ns(q, w)),
        },
    )


async def metrics(request: Request) -> JSONResponse:
    """Every metric received in the window (the app's own included): kind, unit, last value, and
    the attribute keys its series carry (``attribute_keys``: what a chart can be grouped by).
    ---
    summary: Every metric received, with kind, unit, last value and attribute keys
    parameters:
      - $ref: '#/components/parameters/service'
      - $ref: '#/components/parameters/window'
    responses:
      200: {$ref: '#/components/responses/Metrics'}
      400: {$ref: '#/components/responses/BadParameter'}
    """

    def build(c: Console, q: Queries, s: str | None, w: str) -> dict[str, Any]:
        rows = q.metrics(s, w)
        keys = explore.metric_attribute_keys(c.store)
        for row in rows:
            row["attribute_keys"] = keys.get((row["service"], row["name"]), [])
        return {"window": w, "metrics": rows}

    return _answer(request, build)


async def metric_series(request: Request) -> JSONResponse:
    """One metric over the window, charted by its kind: a sum as a rate per second, a gauge's
    value, a histogram's p50, p95 and p99 (p95 per group when grouped).

    Query: ``name`` (required), ``service``, ``window``, ``group_by`` (an attribute key, or
    ``service.instance.id``).  Answer: ``kind``, ``unit``, ``stat``, ``step_s`` and ``groups``,
    each ``{group, points: [{t (ms), v, ...}]}``; 404 when no such metric was received.
    ---
    summary: One metric charted over the window by its kind
    parameters:
      - $ref: '#/components/parameters/metric_name'
      - $ref: '#/components/parameters/service'
      - $ref: '#/components/parameters/window'
      - $ref: '#/components/parameters/group_by'
    responses:
      200: {$ref: '#/components/responses/MetricSeries'}
      400: {$ref: '#/components/responses/BadParameter'}
      404: {$ref: '#/components/responses/NotFound'}
    """
    name = request.query_params.get("name") or ""
    group_by = request.query_params.get("group_by") or None

    def build(c: Console, q: Queries, s: str | None, w: str) -> dict[str, Any] | None:
        if not name:
            raise ValueError("name is required: the metric to chart")
        minutes = window_minutes(w)
        chart = explore.metric_chart(c.store, name, s, group_by, q.now_ns // explore.MINUTE_NS - minutes + 1, minutes)
        return None if chart is None else {"window": w, **chart}

    return _answer(request, build)


async def resources(request: Request) -> JSONResponse:
    """Services and their instances: resource attributes, SDK and distro versions, first and last
    seen, and whether each is stale (silent for longer than the console's stale-after).
    ---
    summary: Services and instances, resource attributes, versions, first and last seen, staleness
    responses:
      200: {$ref: '#/components/responses/Resources'}
    """
    console = _console(request)
    q = Queries(console.store)
    return JSONResponse(
        {"stale_after_s": console.store.stale_after_ns / 1e9, "services": explore.resources(console.store, q.now_ns)}
    )


async def funnels(request: Request) -> JSONResponse:
    """Journey funnels of the config file, users per step.
    ---
    summary: Journey funnels of the config file, users per step
    parameters:
      - $ref: '#/components/parameters/service'
      - $ref: '#/components/parameters/window'
    responses:
      200: {$ref: '#/components/responses/Funnels'}
      400: {$ref: '#/components/responses/BadParameter'}
    """
    return _answer(request, lambda c, q, s, w: {"window": w, "funnels": q.funnels(s, w, c.funnels)})


async def health(request: Request) -> JSONResponse:
    """Health checks per service and instance, availability over the window.
    ---
    summary: Health checks per service and instance, availability over the window
    parameters:
      - $ref: '#/components/parameters/service'
      - $ref: '#/components/parameters/window'
    responses:
      200: {$ref: '#/components/responses/Health'}
      400: {$ref: '#/components/responses/BadParameter'}
    """
    return _answer(request, lambda c, q, s, w: {"window": w, "checks": q.health(s, w)})


async def alerts(request: Request) -> JSONResponse:
    """Firing, pending and recently resolved alerts.
    ---
    summary: Firing, pending and recently resolved alerts
    parameters:
      - $ref: '#/components/parameters/service'
    responses:
      200: {$ref: '#/components/responses/Alerts'}
    """
    console = _console(request)
    if not console.replaying:  # alerts judge complete data only
        await console.alerts.evaluate_in_steps()
    service = request.query_params.get("service") or None
    return JSONResponse(_flag_replay(console, console.alerts.as_json(service)))


_MAX_NAME = 100


async def _acknowledged_by(request: Request) -> str | JSONResponse | None:
    """Who acknowledges: ``{"by": "..."}`` in the body or ``?by=``; absent is anonymous, a bad one a 400."""
    by: object = request.query_params.get("by")
    if by is None and await request.body():
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": 'the body must be JSON: {"by": "<name>"}'}, status_code=400)
        by = body.get("by") if isinstance(body, dict) else None
    if by is None or by == "":
        return None
    if not isinstance(by, str) or len(by) > _MAX_NAME or not by.isprintable():
        return JSONResponse(
            {"error": f"by must be a name of at most {_MAX_NAME} printable characters"}, status_code=400
        )
    return by.strip()


async def acknowledge(request: Request) -> JSONResponse:
    """Acknowledge a firing alert.
    ---
    summary: Acknowledge a firing alert
    parameters:
      - $ref: '#/components/parameters/alert_id'
    responses:
      200: {$ref: '#/components/responses/Acknowledged'}
      404: {$ref: '#/components/responses/NotFound'}
    """
    alert_id = request.path_params["alert_id"]
    by = await _acknowledged_by(request)
    if isinstance(by, JSONResponse):
        return by
    if not _console(request).alerts.acknowledge(alert_id, by):
        return JSONResponse({"error": f"no firing alert {alert_id!r}"}, status_code=404)
    return JSONResponse({"acknowledged": alert_id})


# A stream ends after this long (the browser's EventSource reconnects by itself),
# so no connection is held for ever.
EVENTS_LIFETIME_S = 600.0


def _data_state(console: Console) -> dict[str, Any]:
    store = console.store
    with store.lock:
        return {"received": dict(store.received), "last_log": store.log_seq, "services": len(store.services)}


async def events(request: Request) -> StreamingResponse:
    """Server-sent events for live pages: an ``update`` event (``data``: received counts, the
    newest log number ``last_log``, the number of services) when new data has arrived since the
    previous one, checked every ``interval`` seconds (default 1, at least 0.1), and a comment line
    every 15 s otherwise.  ``max`` ends the stream after that many events; every stream ends after
    10 minutes (EventSource reconnects).
    ---
    summary: Server-sent events announcing new data, for live pages
    parameters:
      - $ref: '#/components/parameters/interval'
      - $ref: '#/components/parameters/max_events'
    responses:
      200: {$ref: '#/components/responses/Events'}
      400: {$ref: '#/components/responses/BadParameter'}
    """
    console = _console(request)
    try:
        interval = max(0.1, float(request.query_params.get("interval") or 1.0))
        limit = int(request.query_params.get("max") or 0)
    except ValueError:
        return JSONResponse({"error": "interval and max must be numbers"}, status_code=400)  # type: ignore[return-value]

    async def stream() -> AsyncIterator[str]:
        last: dict[str, Any] | None = None
        sent, quiet, deadline = 0, 0.0, time.monotonic() + EVENTS_LIFETIME_S
        yield "retry: 2000\n\n"
        while time.monotonic() < deadline and not await request.is_disconnected():
            now = _data_state(console)
            if now != last:
                last, quiet = now, 0.0
                yield f"event: update\ndata: {json.dumps(now)}\n\n"
                sent += 1
                if limit and sent >= limit:
                    return
            elif quiet >= 15:
                quiet = 0.0
                yield ": idle\n\n"
            await asyncio.sleep(interval)
            quiet += interval

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


ROUTES = [
    Route("/api/services", services),
    Route("/api/summary", summary),
    Route("/api/operations", operations),
    Route("/api/operations/{name:path}", operation),
    Route("/api/errors", errors),
    Route("/api/traces", traces),
    Route("/api/traces/{trace_id}", trace),
    Route("/api/metrics", metrics),
    Route("/api/metrics/series", metric_series),
    Route("/api/logs", logs),
    Route("/api/resources", resources),
    Route("/api/events", events),
    Route("/api/funnels", funnels),
    Route("/api/health", health),
    Route("/api/alerts", alerts),
    Route("/api/alerts/{alert_id:path}/ack", acknowledge, methods=["POST"]),
]
