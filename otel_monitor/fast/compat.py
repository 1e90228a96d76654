"""Which fast paths are active for the installed versions, and why any fell back.

Each fast path depends on a dependency's private internals.  It runs only when
its switch is on and its check passes; otherwise the dependency's public path
serves, with the same telemetry.  The check is the one the path itself makes
before it installs (a trial run, a source digest, the internals it reads), so
the table says what the launcher will do.  The tested range is the range the
suite has run the path on (``make test`` and ``make test-lower-bounds``); a
version outside it still gets the path when the check passes, and the table
says so.  ``otel-monitor config`` prints it; ``.ci/canary`` prints it for the
newest releases.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FastPath:
    """A path that reads or replaces a dependency's private members."""

    name: str
    what: str
    setting: str  # key of its switch in config/settings.py
    packages: tuple[str, ...]  # the distributions whose internals it relies on
    tested: Mapping[str, str]  # distribution -> version range the suite covers
    unsupported: Callable[[], str | None]  # why the installed versions cannot take it; None when they can


@dataclass(frozen=True)
class PathStatus:
    name: str
    what: str
    active: bool
    reason: str
    switch: str  # the variable that turns it off
    versions: dict[str, str | None]  # distribution -> installed version (None: not installed)
    tested: dict[str, str]
    in_tested_range: bool


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _lean_spans_unsupported() -> str | None:
    from otel_monitor.fast import spans

    if spans.trial_run():
        return None
    return "a span of otel-monitor's type failed its trial run through the SDK's span methods"


def _lean_requests_unsupported() -> str | None:
    from otel_monitor.fast.fastapi_requests import unsupported_reason

    return unsupported_reason()


def direct_histograms_unsupported() -> str | None:
    """Record on a meter provider of its own; the direct path must take the repeats and sum as the SDK does."""
    import os

    # The direct path steps aside while exemplars are on; the launcher's default turns them off.
    exemplars = os.environ.get("OTEL_METRICS_EXEMPLAR_FILTER", "always_off").strip().lower()
    if exemplars != "always_off":
        return f"exemplars are on (OTEL_METRICS_EXEMPLAR_FILTER={exemplars})"
    try:
        from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        from otel_monitor.fast.histograms import DirectAggregations
        from otel_monitor.pipeline.instruments import create_instruments
    except ImportError as exc:
        return f"the metrics SDK lacks {exc.name or exc}"
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False, exemplar_filter=AlwaysOffExemplarFilter())
    try:
        histogram = create_instruments(
            provider, (1.0,), 10, direct=DirectAggregations.for_instrument
        ).operation_duration
        for value in (0.25, 0.5, 2.0):
            histogram.record(value, {"monitor.operation": "trial"})
        if histogram.direct_sets != 1:
            return "the SDK's metric storage is not where the direct path looks for it"
        data = reader.get_metrics_data()
        points: list[Any] = [
            point
            for rm in (data.resource_metrics if data else ())
            for sm in rm.scope_metrics
            for metric in sm.metrics
            for point in metric.data.data_points
        ]
        if len(points) != 1 or points[0].count != 3 or points[0].sum != 2.75:
            return "points recorded on the direct path did not add up as the SDK's own"
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means: the SDK's own record
        return f"trial recording failed: {type(exc).__name__}: {exc}"
    finally:
        provider.shutdown()


# The contrib functions and EngineTracer members that lean_query_spans and the dialect tracing use.
_CONTRIB_FUNCTIONS = (
    "_get_attributes_from_url",
    "_get_attributes_from_cursor_or_conn",
    "_get_db_name_from_cursor_or_conn",
    "_set_db_statement",
    "_set_db_system",
    "_set_db_operation",
    "_get_attributes_from_engine",
)
_ENGINE_TRACER_MEMBERS = ("_before_cur_exec", "_register_event_listener", "remove_all_event_listeners")
_DIALECT_METHODS = ("do_execute", "do_executemany", "do_execute_no_params")


def query_records_unsupported() -> str | None:
    """Why the contrib's own query spans must serve, or None when its internals are where they are expected."""
    try:
        from opentelemetry.instrumentation.sqlalchemy import engine as contrib
        from sqlalchemy.engine.default import DefaultDialect
    except ImportError as exc:
        return f"not installed: {exc.name or exc}"
    missing = [name for name in _CONTRIB_FUNCTIONS if not callable(getattr(contrib, name, None))]
    tracer = getattr(contrib, "EngineTracer", None)
    missing += [f"EngineTracer.{name}" for name in _ENGINE_TRACER_MEMBERS if not hasattr(tracer, name)]
    missing += [f"Dialect.{name}" for name in _DIALECT_METHODS if not callable(getattr(DefaultDialect, name, None))]
    if missing:
        return f"the SQLAlchemy instrumentation or SQLAlchemy lacks {', '.join(missing)}"
    return None


def _lean_otlp_unsupported() -> str | None:
    try:
        from otel_monitor.fast import otlp_exporters  # noqa: F401 - importing it is the check
    except Exception as exc:  # noqa: BLE001 - what the configurator catches too: the SDK's exporters then
        return f"the OTLP/HTTP exporter package moved on: {type(exc).__name__}: {exc}"
    return None


_SDK = {"opentelemetry-sdk": ">=1.45.1,<1.46"}

# What each path buys per request is counted in benchmarks/README.md ("Fast paths and what they buy"); a path
# that took less than 3% off the production profile's added cost per request would go, unless it buys
# something a request count cannot show (as lean_otlp also does, below).
FAST_PATHS: tuple[FastPath, ...] = (
    FastPath(
        "lean_spans",
        "otel-monitor's span type (fast/spans)",
        "lean_spans",
        ("opentelemetry-sdk",),
        _SDK,
        _lean_spans_unsupported,
    ),
    FastPath(
        "lean_requests",
        "FastAPI's request path (fast/fastapi_requests)",
        "lean_requests",
        ("fastapi",),
        {"fastapi": ">=0.165,<0.166"},
        _lean_requests_unsupported,
    ),
    # Under review: a record alone is much cheaper on it, but a count of the whole app does not tell its gain
    # from the noise. Recount the whole app with more requests; if the gain stays under the bar, it goes and
    # its switch stays, as off.
    FastPath(
        "direct_histograms",
        "direct histogram records (fast/histograms)",
        "direct_histograms",
        ("opentelemetry-sdk",),
        _SDK,
        direct_histograms_unsupported,
    ),
    FastPath(
        "lean_queries",
        "held query records and dialect tracing (launcher/instrumentations)",
        "lean_queries",
        ("opentelemetry-instrumentation-sqlalchemy", "sqlalchemy"),
        {"opentelemetry-instrumentation-sqlalchemy": "==0.66b1", "sqlalchemy": ">=2.0,<2.2"},
        query_records_unsupported,
    ),
    # Its work is off the request path: items are encoded on the export thread without building protobuf
    # message objects, and no process imports google.protobuf, which is start-up time and memory in every
    # worker that a per-request count sees only in part.
    FastPath(
        "lean_otlp",
        "lean OTLP/HTTP exporters (fast/otlp_exporters)",
        "lean_otlp",
        ("opentelemetry-exporter-otlp-proto-http",),
        {"opentelemetry-exporter-otlp-proto-http": ">=1.45.1,<1.46"},
        _lean_otlp_unsupported,
    ),
)


def _in_range(version: str | None, spec: str) -> bool:
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    if version is None:
        return False
    try:
        return Version(version) in SpecifierSet(spec, prereleases=True)
    except InvalidVersion:
        return False


def status(path: FastPath, settings: Any) -> PathStatus:
    """Whether ``path`` runs with ``settings`` (resolved settings, by key) and the installed versions."""
    from otel_monitor.config.settings import BY_KEY

    switch = BY_KEY[path.setting].env
    versions = {name: installed_version(name) for name in path.packages}
    in_range = all(_in_range(versions[name], spec) for name, spec in path.tested.items())
    if not getattr(settings, path.setting):
        active, reason = False, f"off: {switch}=false"
    elif any(version is None for version in versions.values()):
        missing = ", ".join(name for name, version in versions.items() if version is None)
        active, reason = False, f"not installed: {missing}"
    else:
        why = path.unsupported()
        active = why is None
        if why is not None:
            reason = f"fell back: {why}"
        elif in_range:
            reason = "active"
        else:
            reason = "active: its check passed, though the version is outside the tested range"
    if path.name == "lean_queries" and active and not getattr(settings, "lean_spans", True):
        reason += " (the held records need lean_spans too: queries are spans)"
    return PathStatus(path.name, path.what, active, reason, switch, versions, dict(path.tested), in_range)


def table(settings: Any) -> list[PathStatus]:
    """The status of every fast path, in a fixed order."""
    return [status(path, settings) for path in FAST_PATHS]


def lines(statuses: list[PathStatus]) -> list[str]:
    """The table as text, one line per fast path and its installed versions against the tested ranges."""
    out = []
    for s in statuses:
        versions = ", ".join(
            f"{name} {version or '-'} (tested {s.tested[name]})" for name, version in s.versions.items()
        )
        out.append(f"  {s.name:<18} {'on' if s.active else 'OFF':<4} {s.reason}")
        out.append(f"  {'':<18}      {versions}; switch {s.switch}")
    return out
