"""An opt-in status page inside the app: ``OTEL_MONITOR_STATUS_PATH=/monitoring``.

For a one-process service without a console or a collector stack, the page
answers with what hand-written setups served at ``/monitoring``: per
operation the calls, throughput, errors (and client errors), success rate,
latency (mean, p50, p95, p99, max), the health checks, and the alerts that
hold now against the SLOs of the config file.

Nothing is aggregated twice.  The figures are read from the
``monitor.operation.duration`` histogram as the SDK's metric reader exports it:
:class:`StatusTap` wraps the reader's exporter and keeps the last two exports,
so "now" is the last export interval (``OTEL_METRIC_EXPORT_INTERVAL``, 60 s by
default) and the totals run since the process started.  The page therefore
lags the requests by up to one interval, and shows nothing before the first
export.

It is protected as ``/health/detailed`` is: with ``OTEL_MONITOR_HEALTH_TOKEN``
set, a request without the token gets only the verdict, one with a wrong
token a 401.  Its path joins ``OTEL_MONITOR_EXCLUDED_URLS``, so serving it is
never traced nor counted as an operation.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
import types
from dataclasses import dataclass, field
from typing import Any

from otel_monitor import patching, runtime, semconv
from otel_monitor.config.file import EMPTY, ConfigFile
from otel_monitor.semantics.slo import SLOs, load_slos_or_defaults

_NO_STORE = {"Cache-Control": "no-store"}
_MARK = "_otel_monitor_status_path"
_CLIENT = frozenset(semconv.OPERATION_OUTCOMES) - {"success", "server_error"}


@dataclass
class Totals:
    """One operation's cumulative figures: calls, failures, client errors, sum, max and bucket counts."""

    calls: float = 0.0
    errors: float = 0.0
    client_errors: float = 0.0
    sum: float = 0.0
    max: float | None = None
    bounds: tuple[float, ...] = ()
    buckets: list[float] = field(default_factory=list)

    def add(
        self,
        count: float,
        total: float,
        high: float | None,
        bounds: tuple[float, ...],
        buckets: Any,
        outcome: str,
        failed: bool,
    ) -> None:
        self.calls += count
        self.sum += total
        if failed:
            self.errors += count
        # A 4xx is a client error whether or not it fails (OTEL_MONITOR_CLIENT_ERRORS_FAIL), as in the console.
        if outcome in _CLIENT:
            self.client_errors += count
        if high is not None and math.isfinite(high) and (self.max is None or high > self.max):
            self.max = high
        if not self.bounds:
            self.bounds, self.buckets = bounds, [0.0] * (len(bounds) + 1)
        if bounds == self.bounds and len(buckets) == len(self.buckets):
            self.buckets = [a + b for a, b in zip(self.buckets, buckets, strict=True)]

    def minus(self, earlier: Totals | None) -> Totals:
        """The figures between ``earlier`` and this (the last export interval)."""
        if earlier is None or earlier.calls > self.calls or earlier.bounds != self.bounds:
            return self
        return Totals(
            self.calls - earlier.calls,
            self.errors - earlier.errors,
            self.client_errors - earlier.client_errors,
            self.sum - earlier.sum,
            None,
            self.bounds,
            [a - b for a, b in zip(self.buckets, earlier.buckets, strict=True)],
        )

    def percentile(self, q: float) -> float | None:
        """The q-quantile, interpolated linearly inside its bucket (capped at the observed max)."""
        if self.calls <= 0 or not self.bounds:
            return None
        rank, seen = q * self.calls, 0.0
        for i, count in enumerate(self.buckets):
            if count and seen + count >= rank:
                low = self.bounds[i - 1] if i > 0 else 0.0
                high = self.bounds[i] if i < len(self.bounds) else (self.max or low)
                value = low + (high - low) * (rank - seen) / count
                return min(value, self.max) if self.max is not None else value
            seen += count
        return self.max


class StatusTap:
    """Wraps a metric exporter: keeps the operation figures of the last two exports, then exports as before.

    Called by the SDK's reader on its own thread; never raises (a failure only
    leaves the page's figures as they were).
    """

    def __init__(self, exporter: Any) -> None:
        self.exporter = exporter
        self._lock = threading.Lock()
        # (time of export, operation -> cumulative totals); delta points are accumulated.
        self.snapshots: list[tuple[float, dict[str, Totals]]] = []
        self._running: dict[str, Totals] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.exporter, name)  # temporality, aggregation, shutdown... are the exporter's

    def export(self, metrics_data: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            self.observe(metrics_data, time.time())
        except Exception as exc:  # noqa: BLE001 - the page must never cost an export
            from otel_monitor.guard import internal_error

            internal_error("status page", exc)
        return self.exporter.export(metrics_data, *args, **kwargs)

    def observe(self, metrics_data: Any, now: float) -> None:
        current: dict[str, Totals] = {}
        delta = False
        for resource_metrics in getattr(metrics_data, "resource_metrics", ()) or ():
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != semconv.METRIC_OPERATION_DURATION:
                        continue
                    delta = getattr(metric.data.aggregation_temporality, "name", "") == "DELTA"
                    for point in metric.data.data_points:
                        attrs = point.attributes or {}
                        operation = str(attrs.get(semconv.MONITOR_OPERATION, ""))
                        outcome = str(attrs.get(semconv.MONITOR_OPERATION_OUTCOME, "success"))
                        current.setdefault(operation, Totals()).add(
                            point.count,
                            point.sum,
                            point.max,
                            tuple(point.explicit_bounds),
                            point.bucket_counts,
                            outcome,
                            semconv.ERROR_TYPE in attrs,
                        )
        with self._lock:
            if delta:
                for operation, totals in current.items():
                    running = self._running.setdefault(operation, Totals())
                    running.add(totals.calls, totals.sum, totals.max, totals.bounds, totals.buckets, "success", False)
                    running.errors += totals.errors
                    running.client_errors += totals.client_errors
                current = {k: _copy(v) for k, v in self._running.items()}
            self.snapshots = [*self.snapshots[-1:], (now, current)]

    def latest(self) -> tuple[tuple[float, dict[str, Totals]] | None, tuple[float, dict[str, Totals]] | None]:
        with self._lock:
            snapshots = list(self.snapshots)
        last = snapshots[-1] if snapshots else None
        previous = snapshots[-2] if len(snapshots) > 1 else None
        return previous, last


def _copy(totals: Totals) -> Totals:
    return Totals(
        totals.calls, totals.errors, totals.client_errors, totals.sum, totals.max, totals.bounds, list(totals.buckets)
    )


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def status_document(tap: StatusTap, slos: SLOs, health: Any = None, now: float | None = None) -> dict[str, Any]:
    """The page: per-operation figures (last interval and since start), health, and the alerts holding now."""
    previous, last = tap.latest()
    operations: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    interval = (last[0] - previous[0]) if previous and last else None
    for operation, totals in sorted((last[1] if last else {}).items()):
        recent = totals.minus(previous[1].get(operation) if previous else None) if previous else None
        t = slos.for_operation(operation)
        row: dict[str, Any] = {
            "operation": operation,
            "calls": totals.calls,
            "errors": totals.errors,
            "client_errors": totals.client_errors,
            "success_rate": _round((totals.calls - totals.errors) / totals.calls) if totals.calls else None,
            "mean": _round(totals.sum / totals.calls) if totals.calls else None,
            "p50": _round(totals.percentile(0.5)),
            "p95": _round(totals.percentile(0.95)),
            "p99": _round(totals.percentile(0.99)),
            "max": _round(totals.max),
        }
        if recent is not None and interval:
            success = (recent.calls - recent.errors) / recent.calls if recent.calls else None
            latency = recent.percentile(t.latency_percentile)
            row["last_interval"] = {
                "seconds": round(interval, 3),
                "calls": recent.calls,
                "errors": recent.errors,
                "throughput_per_s": _round(recent.calls / interval),
                "success_rate": _round(success),
                f"p{round(t.latency_percentile * 100)}": _round(latency),
            }
            if success is not None and t.success_state(success) != "ok":
                alerts.append(
                    {
                        "alert": "OperationSuccessRateLow",
                        "operation": operation,
                        "severity": t.success_state(success),
                        "value": _round(success),
                        "threshold": t.success_warning if t.success_state(success) == "warning" else t.success_critical,
                    }
                )
            if latency is not None and t.latency_state(latency) != "ok":
                alerts.append(
                    {
                        "alert": "OperationLatencyHigh",
                        "operation": operation,
                        "severity": t.latency_state(latency),
                        "value": _round(latency),
                        "threshold": t.latency_warning if t.latency_state(latency) == "warning" else t.latency_critical,
                    }
                )
        operations.append(row)
    document: dict[str, Any] = {
        "updated": last[0] if last else None,
        "note": (
            "Figures from the last metric export (calls, errors, latency since the process started; "
            "last_interval: between the last two exports)."
            if last
            else "No metric export yet: figures appear after the first one (OTEL_METRIC_EXPORT_INTERVAL)."
        ),
        "operations": operations,
    }
    if health is not None:
        report = health.report()
        document["health"] = report.to_dict()
        for check in report.checks:
            if check.state not in ("down", "degraded"):
                continue  # up, or no result yet
            failing = check.critical and check.state == "down"
            alerts.append(
                {
                    "alert": "HealthCheckFailing" if failing else "HealthCheckDegraded",
                    "check": check.name,
                    "severity": "critical" if failing else "warning",
                    "value": check.state,
                }
            )
    document["alerts"] = alerts
    document["status"] = (
        "critical" if any(a["severity"] == "critical" for a in alerts) else "warning" if alerts else "ok"
    )
    return document


def add_status_endpoint(
    app: Any, tap: StatusTap, path: str, *, token: str | None = None, slos: SLOs | None = None, health: Any = None
) -> None:
    """Serve :func:`status_document` at ``path`` of a FastAPI app."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    from otel_monitor.health.endpoints import token_given

    expected = token.encode() if token else None
    slos = slos or SLOs()

    async def status(request: Any) -> Any:
        document = status_document(tap, slos, health)
        if expected is not None:
            given = token_given(request)
            if given is None:
                return JSONResponse({"status": document["status"]}, headers=_NO_STORE)
            if not hmac.compare_digest(given.encode(), expected):
                return JSONResponse(
                    {"error": "invalid token"}, status_code=401, headers={**_NO_STORE, "WWW-Authenticate": "Bearer"}
                )
        return JSONResponse(document, headers=_NO_STORE)

    status.__annotations__["request"] = Request  # FastAPI injects the request by its annotation
    app.add_api_route(path, status, methods=["GET", "HEAD"], include_in_schema=False, name="otel_monitor_status")
    setattr(app, _MARK, path)


# --- under the launcher ----------------------------------------------------------------

_hook_lock = threading.Lock()
_hooked = False  # the import hook is registered once per process; what it adds is the runtime's


def install(settings: Any, config: ConfigFile = EMPTY, meter_provider: Any = None) -> StatusTap | None:
    """Tap the meter provider's exporters and add the page to every FastAPI app (``status_path`` set)."""
    global _hooked
    path = settings.status_path
    if not path:
        return None
    tap = None
    for reader in getattr(meter_provider, "_metric_readers", None) or ():
        inner = getattr(reader, "_exporter", None)
        if inner is not None:
            tap = StatusTap(inner)
            reader._exporter = tap  # noqa: SLF001 - the SDK reader's exporter, wrapped (as configurator does)
            break
    if tap is None:
        tap = StatusTap(None)  # no exporting reader: the page says no export happened
    from otel_monitor.health.registry import default_registry

    with _hook_lock:
        runtime.current().status_page = {
            "tap": tap,
            "path": path,
            "token": settings.health_token,
            "slos": load_slos_or_defaults(config),
            "health": default_registry(),
        }
        first, _hooked = not _hooked, True
    if first:
        import wrapt

        wrapt.register_post_import_hook(_patch_fastapi, "fastapi.applications")
    return tap


def _patch_fastapi(module: Any) -> None:
    build = module.FastAPI.build_middleware_stack

    def build_middleware_stack(app: Any, *args: Any, **kwargs: Any) -> Any:
        return _add_on_build(types.MethodType(build, app), app, args, kwargs)

    patching.replace(module.FastAPI, "build_middleware_stack", build_middleware_stack)


def _add_on_build(wrapped: Any, app: Any, args: Any, kwargs: Any) -> Any:
    # As the health endpoints: added when the app builds its middleware stack, after its own routes,
    # so a route of the app's own at the same path wins.
    options = runtime.current().status_page
    if options is not None and not hasattr(app, _MARK):
        from otel_monitor.guard import guarded

        with guarded("status page"):
            taken = {getattr(r, "path", None) for r in getattr(app.router, "routes", ())}
            if options["path"] in taken:
                setattr(app, _MARK, None)
            else:
                add_status_endpoint(
                    app,
                    options["tap"],
                    options["path"],
                    token=options["token"],
                    slos=options["slos"],
                    health=options["health"],
                )
    return wrapped(*args, **kwargs)


def uninstall_for_tests() -> None:
    """Stop adding the page to new apps (the class patch stays, inert)."""
    with _hook_lock:
        runtime.current().status_page = None
