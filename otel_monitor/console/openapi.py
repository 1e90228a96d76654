"""The console API's OpenAPI document, served at ``/api/openapi.json``.

Built by Starlette's :class:`~starlette.schemas.SchemaGenerator` from the
YAML after ``---`` in each endpoint's docstring (see
:mod:`otel_monitor.console.api`); what they share (parameters, the error
body) is declared once here, under ``components``.  An endpoint without its
YAML is missing from the document, and a test walking the app's routes says
which.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.schemas import SchemaGenerator

_WINDOW = {"type": "string", "enum": ["15m", "1h", "4h", "24h", "7d", "30d"], "default": "15m"}


def _query(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def _path(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


def _json(description: str, required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    """A JSON answer: an object with these keys (more may come: additional properties are allowed)."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"type": "object", "required": required, "properties": properties}}},
    }


_TEXT: dict[str, Any] = {"type": "string"}
_INT: dict[str, Any] = {"type": "integer"}
_NUMBER: dict[str, Any] = {"type": "number"}
_MS: dict[str, Any] = {"type": "integer", "minimum": 0}
_ROWS: dict[str, Any] = {"type": "array", "items": {"type": "object"}}
_COUNTS: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "integer"}}
_PAGE: dict[str, Any] = {"total": _INT, "offset": _INT, "limit": _INT}
_WEBHOOK: dict[str, Any] = {
    "type": "object",
    "nullable": True,
    "description": "the alert webhook's notifications: sent, failed (given up), failed_attempts, retries, dropped, "
    "queued, last_error, last_error_at (ms); null without a webhook",
}
_ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}

COMPONENTS: dict[str, Any] = {
    "parameters": {
        "service": _query("service", _TEXT, "only this service (omit for all)"),
        "window": _query(
            "window", _WINDOW, "how far back the figures look (7d and 30d: the summary and operations, with --db)"
        ),
        "operation": _query("operation", _TEXT, "a span name, its monitor.operation or its HTTP route"),
        "attr": {
            **_query(
                "attr",
                {"type": "array", "items": {"type": "string", "pattern": "^[^=]+=.*$"}},
                "key=value on the item or its resource; repeat for several",
            ),
            "explode": True,
        },
        "start": _query("start", _MS, "from (ms since the epoch)"),
        "end": _query("end", _MS, "until (ms since the epoch)"),
        "limit": _query(
            "limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "page size (at most 500)"
        ),
        "offset": _query("offset", {"type": "integer", "minimum": 0, "default": 0}, "rows skipped"),
        "trace_kind": _query(
            "kind",
            {"type": "string", "enum": ["recent", "slow", "failed"], "default": "recent"},
            "newest first, longest first, or failed only",
        ),
        "status": _query("status", {"type": "string", "enum": ["ok", "error"]}, "only traces with(out) an error"),
        "min_ms": _query("min_ms", {"type": "number", "minimum": 0}, "shortest duration (ms)"),
        "max_ms": _query("max_ms", {"type": "number", "minimum": 0}, "longest duration (ms)"),
        "level": _query(
            "level",
            {"type": "string", "enum": ["trace", "debug", "info", "warn", "error", "fatal"]},
            "the lowest severity shown",
        ),
        "q": _query("q", _TEXT, "text in the body or event name"),
        "trace_id": _query("trace_id", {"type": "string", "pattern": "^[0-9a-f]{32}$"}, "only this trace's"),
        "span_id": _query("span_id", {"type": "string", "pattern": "^[0-9a-f]{16}$"}, "only this span's"),
        "after": _query(
            "after",
            {"type": "integer", "minimum": 0},
            "only records numbered above it (the live tail sends the last_seq it has)",
        ),
        "metric_name": _query("name", {"type": "string", "minLength": 1}, "the metric", required=True),
        "group_by": _query("group_by", _TEXT, "an attribute key (or service.instance.id) to group by"),
        "interval": _query(
            "interval", {"type": "number", "minimum": 0.1, "default": 1}, "seconds between checks for new data"
        ),
        "max_events": _query("max", {"type": "integer", "minimum": 0}, "events before the stream ends (0: none)"),
        "operation_name": _path("name", _TEXT, "the operation"),
        "trace_id_path": _path("trace_id", {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"}, "the trace"),
        "alert_id": _path("alert_id", _TEXT, "the alert, as /api/alerts lists it"),
    },
    "schemas": {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string", "description": "what was wrong, naming the parameter"}},
        },
    },
    "responses": {
        "BadParameter": {"description": "a parameter is invalid; the message names it", "content": _ERROR_BODY},
        "NotFound": {"description": "nothing by that name or id", "content": _ERROR_BODY},
        "Services": _json(
            "services seen; counts received, evicted and kept; the limits",
            ["services", "windows", "received", "evicted", "kept", "limits", "persistent", "replaying"],
            services={"type": "array", "items": _TEXT},
            windows={"type": "array", "items": _TEXT},
            long_windows={"type": "array", "items": _TEXT},
            received=_COUNTS,
            evicted=_COUNTS,
            kept=_COUNTS,
            limits=_COUNTS,
            persistent={"type": "boolean"},
            replaying={"type": "boolean"},
            alert_webhook=_WEBHOOK,
        ),
        "Summary": _json("one row per service", ["window", "services"], window=_TEXT, services=_ROWS, note=_TEXT),
        "Operations": _json(
            "one row per service and operation", ["window", "operations"], window=_TEXT, operations=_ROWS
        ),
        "Operation": _json(
            "the operation in each service, its series, error groups and example traces",
            ["window", "operation", "rows", "thresholds", "series", "errors", "traces"],
            window=_TEXT,
            operation=_TEXT,
            rows=_ROWS,
            thresholds={"type": "object"},
            series={"type": "object"},
            errors=_ROWS,
            traces=_ROWS,
        ),
        "Errors": _json("one row per error group", ["window", "errors"], window=_TEXT, errors=_ROWS),
        "Traces": _json(
            "a page of matching traces",
            ["window", "kind", "total", "offset", "limit", "traces"],
            window=_TEXT,
            kind=_TEXT,
            traces=_ROWS,
            **_PAGE,
        ),
        "Trace": _json(
            "the trace",
            ["trace_id", "spans"],
            trace_id=_TEXT,
            start=_INT,
            duration_ms=_NUMBER,
            services={"type": "array", "items": _TEXT},
            spans=_ROWS,
        ),
        "Logs": _json(
            "a page of matching log records, newest first",
            ["window", "total", "offset", "limit", "last_seq", "logs"],
            window=_TEXT,
            last_seq=_INT,
            logs=_ROWS,
            **_PAGE,
        ),
        "Metrics": _json("one row per service and metric", ["window", "metrics"], window=_TEXT, metrics=_ROWS),
        "MetricSeries": _json(
            "the chart: groups of points {t (ms), v}",
            ["window", "kind", "groups"],
            window=_TEXT,
            kind=_TEXT,
            unit=_TEXT,
            stat=_TEXT,
            step_s=_NUMBER,
            groups=_ROWS,
        ),
        "Resources": _json(
            "one row per service, with its instances",
            ["stale_after_s", "services"],
            stale_after_s=_NUMBER,
            services=_ROWS,
        ),
        "Funnels": _json("one funnel per journey", ["window", "funnels"], window=_TEXT, funnels=_ROWS),
        "Health": _json("one row per check", ["window", "checks"], window=_TEXT, checks=_ROWS),
        "Alerts": _json(
            "alerts by state",
            ["firing", "pending", "resolved"],
            firing=_ROWS,
            pending=_ROWS,
            resolved=_ROWS,
            webhook=_WEBHOOK,
        ),
        "Acknowledged": _json("acknowledged", ["acknowledged"], acknowledged=_TEXT),
        "Events": {
            "description": "a text/event-stream of 'update' events; it ends after 10 minutes",
            "content": {"text/event-stream": {"schema": _TEXT}},
        },
    },
}

SCHEMAS = SchemaGenerator(
    {
        "openapi": "3.0.3",
        "info": {
            "title": "otel-monitor console API",
            "version": "1",
            "description": "The JSON API behind every view of the console. With a token, send "
            "'Authorization: Bearer <token>'.",
        },
        "components": COMPONENTS,
    }
)


def document(routes: list[Any]) -> dict[str, Any]:
    """The OpenAPI document of ``routes`` (only the endpoints whose docstring carries YAML)."""
    return SCHEMAS.get_schema(routes)


async def openapi(request: Request) -> JSONResponse:
    """The OpenAPI document of this API.
    ---
    summary: This OpenAPI document
    responses:
      200:
        description: the document
        content:
          application/json:
            schema: {type: object, required: [openapi, paths]}
    """
    return JSONResponse(document(request.app.routes))


ROUTE = Route("/api/openapi.json", openapi)

__all__ = ["COMPONENTS", "ROUTE", "document"]
