"""Which instrumentations load, when, and with which options.

The stock launcher imports every installed instrumentor at startup (and with
it FastAPI, SQLAlchemy, …) and checks each one's declared version range. We
take that loop over (the distro sets ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=*``
for the launcher and remembers the user's own list) so that:

* an instrumentor loads only when its library is first imported (a post-import
  hook), so ``opentelemetry-instrument python -c pass`` imports no web framework;
* SQLAlchemy 2.1, which contrib 0.66b1 declares out of range but which we test
  against, gets database spans instead of being skipped silently;
* FastAPI releases with native telemetry are served by it, the contrib
  middleware by older ones: exactly one server span per request either way;
* every decision is recorded in :data:`REPORT` for ``otel-monitor config``.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from otel_monitor import patching
from otel_monitor.guard import guarded
from otel_monitor.semantics.operations import excluded_url_matcher

_log = logging.getLogger("otel_monitor")

DISABLED_ENV = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
# Where the distro keeps the user's own OTEL_PYTHON_DISABLED_INSTRUMENTATIONS.
USER_DISABLED_ENV = "OTEL_MONITOR_USER_DISABLED_INSTRUMENTATIONS"

# Entry-point name -> the module whose import triggers it.  Unlisted names use
# the entry-point name itself; None means "load at startup".
_TRIGGERS: dict[str, str | None] = {
    "logging": None,
    "aiohttp-client": "aiohttp",
    "aiohttp-server": "aiohttp",
    "grpc_client": "grpc",
    "grpc_server": "grpc",
    "grpc_aio_client": "grpc",
    "grpc_aio_server": "grpc",
    "tortoiseorm": "tortoise",
    "mysqlclient": "MySQLdb",
    "pymemcache": "pymemcache",
    "confluent_kafka": "confluent_kafka",
}
# Loaded by otel-monitor itself or not meaningful on their own.
_SKIP: dict[str, str] = {
    "system_metrics": "runtime metrics are reported by otel-monitor (OTEL_MONITOR_RUNTIME_METRICS)",
    "asgi": "used through the FastAPI instrumentation, not on its own",
    "wsgi": "used through a framework instrumentation, not on its own",
    "dbapi": "used through a database instrumentation, not on its own",
}
# Declared ranges we have verified beyond: library -> newest major.minor tested.
_VERIFIED_BEYOND_RANGE = {"sqlalchemy": (2, 1)}


@dataclass
class Decision:
    name: str
    state: str  # "loaded", "waiting for import", "skipped", "failed", "native"
    reason: str = ""


REPORT: dict[str, Decision] = {}


def tuned_kwargs(name: str, settings: Any) -> dict[str, Any]:
    """The options we pass to each contrib instrumentor."""
    if name == "fastapi":
        return {
            # One span per request: no per-message "http send"/"http receive" spans.
            "exclude_spans": ["receive", "send"],
            # The contrib middleware searches these in the full URL (scheme://host/path).
            "excluded_urls": ",".join(f"^[^:/]+://[^/]+(?:{p})$" for p in settings.excluded_urls),
        }
    if name == "sqlalchemy":
        return {"enable_commenter": False}
    if name == "logging":
        return {
            "log_handler_level": settings.log_level,
            "inject_trace_context": settings.log_correlation,
            "set_logging_format": False,
        }
    return {}


def fastapi_has_native_telemetry() -> bool:
    """FastAPI 0.16x ships ``fastapi.telemetry``; older releases need the contrib middleware.

    Looked up on disk: ``find_spec("fastapi.telemetry")`` would import FastAPI
    itself at startup, which costs a quarter of a second.
    """
    try:
        spec = importlib.util.find_spec("fastapi")
    except (ImportError, ValueError):
        return False
    locations = list(spec.submodule_search_locations or []) if spec else []
    return any(os.path.isdir(os.path.join(location, "telemetry")) for location in locations)


def _dependency_conflict(entry_point: Any) -> str | None:
    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return None
    conflict = get_dist_dependency_conflicts(dist)
    if conflict is None:
        return None
    required = str(getattr(conflict, "required", "") or "")
    found = str(getattr(conflict, "found", "") or "")
    library = entry_point.name
    verified = _VERIFIED_BEYOND_RANGE.get(library)
    if verified and found:
        match = re.search(r"(\d+)\.(\d+)", found)
        if match and (int(match.group(1)), int(match.group(2))) <= verified:
            REPORT[library] = Decision(
                library, "loaded", f"{found} is outside the declared range ({required}) but verified by otel-monitor"
            )
            return None
    return f"installed {found or 'nothing'} does not satisfy {required}"


class InstrumentationLoader:
    """Loads instrumentor entry points lazily, with tuned options."""

    def __init__(self, settings: Any, load: Callable[..., Any] | None, *, dry_run: bool = False) -> None:
        self.settings = settings
        self._load = load  # distro.load_instrumentor(entry_point, **kwargs)
        # dry_run: only decide and report (``otel-monitor config``), import nothing.
        self.dry_run = dry_run

    def user_disabled(self) -> set[str]:
        # Under the launcher the distro moved the user's list aside (and set "*").
        raw = os.environ.get(USER_DISABLED_ENV, os.environ.get(DISABLED_ENV, ""))
        return {item.strip() for item in raw.split(",") if item.strip()}

    def start(self) -> None:
        from opentelemetry.util._importlib_metadata import entry_points

        disabled = self.user_disabled()
        if "*" in disabled:
            REPORT["*"] = Decision("*", "skipped", f"{DISABLED_ENV}=*")
            return
        for entry_point in entry_points(group="opentelemetry_instrumentor"):
            name = entry_point.name
            if name in disabled:
                REPORT[name] = Decision(name, "skipped", f"listed in {DISABLED_ENV}")
                continue
            if name in _SKIP:
                REPORT[name] = Decision(name, "skipped", _SKIP[name])
                continue
            if name == "fastapi" and fastapi_has_native_telemetry():
                REPORT[name] = Decision(name, "native", "FastAPI's own telemetry serves requests (one server span)")
                if self.dry_run:
                    _report_request_path(self.settings)
                else:
                    self._when_imported("fastapi", lambda _module: install_fastapi_native_defaults(self.settings))
                continue
            trigger = _TRIGGERS.get(name, name)
            if self.dry_run:
                problem = _dependency_conflict(entry_point)
                if problem:
                    REPORT[name] = Decision(name, "skipped", problem)
                    continue
            if trigger is None:
                if self.dry_run:
                    REPORT.setdefault(name, Decision(name, "loaded", "at startup"))
                else:
                    self._load_now(entry_point)
                continue
            try:
                found = importlib.util.find_spec(trigger) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                REPORT[name] = Decision(name, "skipped", f"library {trigger!r} is not installed")
                continue
            previous = REPORT.get(name)
            note = f"; {previous.reason}" if previous and previous.reason else ""
            REPORT[name] = Decision(name, "waiting for import", f"loads when {trigger!r} is imported{note}")
            if self.dry_run:
                continue
            self._when_imported(trigger, functools.partial(self._load_on_import, entry_point))

    def _load_on_import(self, entry_point: Any, _module: Any) -> None:
        self._load_now(entry_point)

    @staticmethod
    def _when_imported(module: str, hook: Callable[[Any], None]) -> None:
        import wrapt

        def guarded_hook(mod: Any) -> None:
            with guarded(f"instrumentation hook for {module}"):
                hook(mod)

        wrapt.register_post_import_hook(guarded_hook, module)

    def _load_now(self, entry_point: Any) -> None:
        name = entry_point.name
        try:
            problem = _dependency_conflict(entry_point)
            if problem:
                REPORT[name] = Decision(name, "skipped", problem)
                return
            assert self._load is not None
            self._load(entry_point, skip_dep_check=True, **tuned_kwargs(name, self.settings))
            previous = REPORT.get(name)
            reason = previous.reason.split("; ", 1)[-1] if previous and "verified" in previous.reason else ""
            REPORT[name] = Decision(name, "loaded", reason)
            if name == "sqlalchemy":
                if _lean_queries(self.settings):
                    lean_query_spans()
                drop_connect_spans()
                observe_pool_usage()
                instrument_existing_engines()
            elif name == "logging":
                keep_telemetry_logs_local()
                route_info_records_to_otlp(self.settings.log_level)
        except ModuleNotFoundError as exc:
            REPORT[name] = Decision(name, "skipped", f"missing module {exc.name!r}")
        except Exception as exc:  # noqa: BLE001 - one broken instrumentor must not stop the app
            REPORT[name] = Decision(name, "failed", f"{type(exc).__name__}: {exc}")
            _log.warning("otel-monitor: instrumentation %s failed to load: %s", name, exc)


class _NotTelemetryInternals:
    """Drop records of the SDK's and our own loggers from the OTLP log handler.

    Export trouble is logged by the exporters; sending those records through
    the same failing exporter would only feed the failure (and, when the
    queue is full, log again). They still reach the app's other handlers.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(("opentelemetry", "otel_monitor"))


def keep_telemetry_logs_local() -> None:
    from opentelemetry.instrumentation.logging import LoggingInstrumentor

    handler = getattr(LoggingInstrumentor, "_logging_handler", None)
    if handler is not None and not any(isinstance(f, _NotTelemetryInternals) for f in handler.filters):
        handler.addFilter(_NotTelemetryInternals())


def route_info_records_to_otlp(level: int) -> None:
    """Records from ``level`` up reach the OTLP handler though the app left the root logger at WARNING."""
    from opentelemetry.instrumentation.logging import LoggingInstrumentor

    from otel_monitor.launcher.app_logging import route_info_records

    route_info_records(getattr(LoggingInstrumentor, "_logging_handler", None), level)


def drop_connect_spans() -> None:
    """Remove the contrib instrumentation's span around every ``Engine.connect``.

    It adds a span to every request that opens a session, telling only that a
    pooled connection was checked out; query spans and pool metrics remain.
    """
    from opentelemetry.instrumentation.utils import unwrap
    from sqlalchemy.engine.base import Engine

    if hasattr(Engine.connect, "__wrapped__"):
        unwrap(Engine, "connect")


_STATEMENTS_CACHED = 2048
_STATEMENT_CACHED_LENGTH = 4096
# Vendors whose database name the contrib reads off the cursor on every query.
_DATABASE_FROM_CURSOR = ("mysql", "mssql", "sqlserver")


def _lean_queries(settings: Any) -> bool:
    """OTEL_MONITOR_LEAN_QUERIES, and the contrib's internals where :func:`lean_query_spans` expects them."""
    if not getattr(settings, "lean_queries", True):
        return False
    from otel_monitor.fast.compat import query_records_unsupported

    reason = query_records_unsupported()
    if reason is not None:
        _log.info("otel-monitor: SQLAlchemy query spans are the contrib's own: %s", reason)
    return reason is None


def lean_query_spans() -> None:
    """The contrib's query span, with its name and attributes worked out once per statement.

    For every query, ``EngineTracer._before_cur_exec`` reads the engine's URL
    (and, for PostgreSQL, the connection's info) for the same attributes, strips
    leading comments off the statement with a regular expression twice to name
    the span, sets each attribute on its own, and makes the span current for
    its instant only, which matters to sqlcommenter alone.  Here the
    connection's part is worked out once per pooled DBAPI connection (kept in
    the pool record's ``info``, which lives exactly as long as that
    connection; on MySQL and SQL Server, where ``USE`` changes the database,
    on every query as the contrib does), and the statement's part once per distinct statement and
    connection attributes (up to 2,048 statements of up to 4,096 characters per
    engine; others are worked out each time),
    both by the contrib's own functions, so names and attributes are the
    contrib's; the span gets them when it starts.  With sqlcommenter on, or a
    statement that is not a string, the contrib's own method runs.
    """
    from opentelemetry.instrumentation.sqlalchemy import engine as contrib
    from opentelemetry.instrumentation.utils import is_instrumentation_enabled
    from opentelemetry.trace import SpanKind

    from otel_monitor.fast.spans import KEPT_AS_THEY_ARE

    original = contrib.EngineTracer._before_cur_exec  # noqa: SLF001 - contrib sqlalchemy internals (compat: query_records)
    if getattr(original, "_otel_monitor_lean", False):
        return
    connection_key = "otel_monitor.query_span_connection"
    statements_key = "_otel_monitor_statements"

    def _before_cur_exec(
        self: Any, conn: Any, cursor: Any, statement: Any, params: Any, context: Any, executemany: Any
    ) -> Any:
        if self.enable_commenter or not isinstance(statement, str):
            return original(self, conn, cursor, statement, params, context, executemany)
        if not is_instrumentation_enabled():
            return statement, params
        span = _start(self, conn, cursor, statement)
        if span is None:  # a connection we cannot read: the contrib's own way
            return original(self, conn, cursor, statement, params, context, executemany)
        context._otel_span = span  # noqa: SLF001 - contrib sqlalchemy internals (compat: query_records)
        return statement, params

    def _start(self: Any, conn: Any, cursor: Any, statement: str, hold: bool = False) -> Any:
        """The query span, started; None when the connection cannot be read.

        With ``hold``, from a caller that only ends the span or sets its
        status, an unsampled request's query is held as a record where nothing
        could tell it from a span (``MonitorTracer.held_child``).
        """
        try:
            info = conn.info
            url = conn.engine.url
        except Exception:  # noqa: BLE001
            return None
        connection = info.get(connection_key)
        if connection is None or connection[0] is not url or connection[1] is not self:
            attrs, found = contrib._get_attributes_from_url(  # noqa: SLF001 - contrib sqlalchemy internals (compat: query_records)
                url,
                self._sem_conv_opt_in_mode_db,
                self._sem_conv_opt_in_mode_http,
            )
            if not found:
                attrs = contrib._get_attributes_from_cursor_or_conn(  # noqa: SLF001 - contrib sqlalchemy internals (compat: query_records)
                    self.vendor, conn, cursor, attrs, self._sem_conv_opt_in_mode_db, self._sem_conv_opt_in_mode_http
                )
            db_name = contrib._get_db_name_from_cursor_or_conn(self.vendor, conn, cursor)  # noqa: SLF001 - contrib sqlalchemy internals (compat: query_records)
            signature: Any = (db_name, tuple(attrs.items()))
            try:
                hash(signature)
            except TypeError:  # an attribute value that cannot be a key: nothing is cached for it
                signature = None
            if any(vendor in self.vendor for vendor in _DATABASE_FROM_CURSOR):
                signature = None  # the database can change on the connection (USE): read it each time
            connection = (url, self, signature, db_name, attrs)
            if signature is not None:
                info[connection_key] = connection
        statements = self.__dict__.get(statements_key)
        if statements is None:
            statements = self.__dict__.setdefault(statements_key, {})
        cacheable = connection[2] is not None and len(statement) <= _STATEMENT_CACHED_LENGTH
        key = (statement, connection[2]) if cacheable else None
        known = statements.get(key) if key is not None else None
        if known is None:
            db_name, attrs = connection[3], connection[4]
            span_attrs = dict(attrs)
            contrib._set_db_statement(span_attrs, statement, self._sem_conv_opt_in_mode_db)  # noqa: SLF001 - contrib sqlalchemy internals (compat: query_records)
            contrib._set_db_system(span_attrs, self.vendor, self._sem_conv_opt_in_mode_db)  # noqa: SLF001 - contrib sqlalchemy internals (compat: query_records)
            name = self._operation_name(db_name, statement)
            contrib._set_db_operation(span_attrs, name, self._sem_conv_opt_in_mode_db)  # noqa: SLF001 - contrib sqlalchemy internals (compat: query_records)
            # Shared (a sampler cannot change it); whether every key and value is
            # plain, as a held record's must be.
            known = (
                name,
                MappingProxyType(span_attrs),
                all(k.__class__ is str and k and v.__class__ in KEPT_AS_THEY_ARE for k, v in span_attrs.items()),
            )
            if key is not None and len(statements) < _STATEMENTS_CACHED:
                statements[key] = known
        if hold and known[2]:
            held_child = getattr(self.tracer, "held_child", None)
            if held_child is not None:
                span = held_child(known[0], SpanKind.CLIENT, known[1])
                if span is not None:
                    return span
        return self.tracer.start_span(known[0], kind=SpanKind.CLIENT, attributes=known[1])

    _before_cur_exec._otel_monitor_lean = True  # type: ignore[attr-defined]  # noqa: SLF001 - our marker on a dependency's object
    _before_cur_exec.__wrapped__ = original  # type: ignore[attr-defined]
    patching.replace(contrib.EngineTracer, "_before_cur_exec", _before_cur_exec)  # compat: query_records
    _trace_from_the_dialect(contrib, _before_cur_exec, _start)


class _NoConnection:
    """Stands in for the Connection when a dialect method is called without an execution context."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.info: dict[str, Any] = {}  # nothing kept: worked out on each such call


_DIALECT_METHODS = ("do_execute", "do_executemany", "do_execute_no_params")


def _trace_from_the_dialect(contrib: Any, lean_hook: Any, start: Any) -> None:
    """Query spans from the engine's dialect methods instead of the connection's events.

    Once an engine has a connection-event listener, SQLAlchemy dispatches every
    connection's events (begin, execute, cursor execute, commit, rollback)
    through per-connection listener collections built on first use, for each
    new ``Connection``: about 17 µs a query here (``python -m
    benchmarks.query_cost --empty-listeners``), whatever the listeners do.
    The contrib registers three (before and after cursor execute, errors);
    instead, the engine's dialect object gets ``do_execute``,
    ``do_executemany`` and ``do_execute_no_params`` that start the same span
    (:func:`lean_query_spans`' own work), call SQLAlchemy's, and end it, with
    the error status the contrib's ``handle_error`` sets when the driver
    raises. Left to the events: sqlcommenter (it rewrites the statement),
    targets other than an ``Engine``, and ``EngineTracer`` subclasses with
    their own hook. An app's own ``DialectEvents`` handler that executes a
    statement itself gets no span, as it gets no ``after_cursor_execute``.
    """
    import weakref

    from opentelemetry.instrumentation.utils import is_instrumentation_enabled
    from opentelemetry.trace import Status, StatusCode
    from sqlalchemy.engine import Engine

    register = contrib.EngineTracer._register_event_listener.__func__  # noqa: SLF001 - contrib EngineTracer internals (compat: dialect_tracing)
    remove_all = contrib.EngineTracer.remove_all_event_listeners.__func__
    if getattr(register, "_otel_monitor_dialect", False):
        return
    taken: weakref.WeakSet[Any] = weakref.WeakSet()  # engines traced from their dialect
    # Dialects traced, with our wrappers; an engine sharing one (engine.execution_options()) is traced by it.
    dialects: weakref.WeakSet[Any] = weakref.WeakSet()

    def traced(tracer: Any, engine: Any, dialect: Any) -> None:
        originals = {name: getattr(dialect, name) for name in _DIALECT_METHODS}
        engine_ref = weakref.ref(engine)  # the dialect outlives no engine of its own; no cycle through us

        def begin(cursor: Any, statement: str, context: Any) -> Any:
            if not is_instrumentation_enabled() or not isinstance(statement, str):
                return None
            conn = getattr(context, "root_connection", None) if context is not None else None
            if conn is not None and not getattr(conn, "_allow_autobegin", True):
                # The dialect's first-connect queries, on a connection SQLAlchemy makes without events.
                return None
            # Held as a record where it can be: run() only sets its status and ends it.
            span = start(tracer, conn, cursor, statement, True) if conn is not None else None
            # No context, or a connection that cannot be read: the engine's own attributes.
            return span if span is not None else start(tracer, _NoConnection(engine_ref()), cursor, statement, True)

        def run(span: Any, call: Any, *args: Any) -> Any:
            if span is None:
                return call(*args)
            try:
                result = call(*args)
            except BaseException as exc:
                if span.is_recording():
                    span.set_status(Status(StatusCode.ERROR, str(exc)))
                span.end()
                raise
            span.end()
            return result

        def do_execute(cursor: Any, statement: Any, parameters: Any, context: Any = None) -> Any:
            return run(
                begin(cursor, statement, context), originals["do_execute"], cursor, statement, parameters, context
            )

        def do_executemany(cursor: Any, statement: Any, parameters: Any, context: Any = None) -> Any:
            return run(
                begin(cursor, statement, context), originals["do_executemany"], cursor, statement, parameters, context
            )

        def do_execute_no_params(cursor: Any, statement: Any, context: Any = None) -> Any:
            return run(begin(cursor, statement, context), originals["do_execute_no_params"], cursor, statement, context)

        wrapper: Any
        for wrapper in (do_execute, do_executemany, do_execute_no_params):
            wrapper._otel_monitor_query_span = True  # noqa: SLF001 - our marker on a dependency's object
            patching.replace(dialect, wrapper.__name__, wrapper)
        dialects.add(dialect)

    def register_from_dialect(cls: Any, target: Any, identifier: str, func: Any, *args: Any, **kw: Any) -> None:
        try:
            if identifier == "before_cursor_execute":
                tracer = getattr(func, "__self__", None)
                lean = (
                    isinstance(target, Engine)
                    and getattr(func, "__func__", None) is lean_hook
                    and tracer is not None
                    and not tracer.enable_commenter
                    # an app's own statement rewriting runs first on the events: the span shows its result
                    and not len(target.dispatch.before_cursor_execute)
                )
                if lean and target.dialect in dialects:  # already traced through its shared dialect
                    taken.add(target)
                    return
                if lean and not any(name in vars(target.dialect) for name in _DIALECT_METHODS):
                    traced(tracer, target, target.dialect)
                    taken.add(target)
                    return
                taken.discard(target)  # the events, all three of them
            elif identifier in ("after_cursor_execute", "handle_error") and target in taken:
                return
        except TypeError:  # a target that cannot be weakly referenced or compared: the events then
            pass
        register(cls, target, identifier, func, *args, **kw)

    def remove_all_event_listeners(cls: Any) -> None:
        try:
            remove_all(cls)
        finally:
            for dialect in list(dialects):
                for name in _DIALECT_METHODS:  # ours only, not something set over ours since
                    if getattr(vars(dialect).get(name), "_otel_monitor_query_span", False):
                        patching.restore(dialect, name)
            dialects.clear()
            taken.clear()

    register_from_dialect._otel_monitor_dialect = True  # type: ignore[attr-defined]  # noqa: SLF001 - our marker on a dependency's object
    # compat: dialect_tracing
    patching.replace(contrib.EngineTracer, "_register_event_listener", classmethod(register_from_dialect))
    patching.replace(contrib.EngineTracer, "remove_all_event_listeners", classmethod(remove_all_event_listeners))


_POOL_EVENTS = frozenset({"connect", "close", "checkin", "checkout"})
_pooled_engines: Any = None


def observe_pool_usage() -> None:
    """Report ``db.client.connections.usage`` when metrics are collected, not on every checkout.

    The contrib instrumentation updates that up-down counter four times per
    session (idle -1, used +1, and back), each a full metric recording on the
    request path. The pool knows both numbers at any moment: an observable
    instrument reads them once per export instead; same name, attributes
    and values.
    """
    global _pooled_engines
    if _pooled_engines is not None:
        return
    import weakref

    from opentelemetry import metrics
    from opentelemetry.instrumentation.sqlalchemy import engine as contrib
    from opentelemetry.metrics import CallbackOptions, Observation

    engines: weakref.WeakSet[Any] = weakref.WeakSet()
    _pooled_engines = engines
    # A classmethod read through its class is a bound method: __func__ is the function itself.
    register = contrib.EngineTracer._register_event_listener.__func__  # type: ignore[attr-defined]  # noqa: SLF001 - contrib EngineTracer internals (compat: dialect_tracing)

    def register_without_pool_events(cls: Any, target: Any, identifier: str, func: Any, *args: Any, **kw: Any) -> None:
        if identifier in _POOL_EVENTS:
            engines.add(target)
            return
        register(cls, target, identifier, func, *args, **kw)

    # compat: dialect_tracing
    patching.replace(contrib.EngineTracer, "_register_event_listener", classmethod(register_without_pool_events))

    def observe(options: CallbackOptions) -> list[Observation]:
        observations = []
        for engine in list(engines):
            pool = getattr(engine, "pool", None)
            used, idle = getattr(pool, "checkedout", None), getattr(pool, "checkedin", None)
            if not callable(used) or not callable(idle):
                continue
            attributes = contrib._get_attributes_from_engine(engine)  # noqa: SLF001 - contrib sqlalchemy internals (compat: query_records)
            observations.append(Observation(used(), {**attributes, "state": "used"}))
            observations.append(Observation(idle(), {**attributes, "state": "idle"}))
        return observations

    metrics.get_meter("otel_monitor.sqlalchemy").create_observable_up_down_counter(
        "db.client.connections.usage",
        callbacks=[observe],
        unit="connections",
        description="The number of connections that are currently in state described by the state attribute.",
    )


def instrument_existing_engines() -> None:
    """Instrument SQLAlchemy engines created before the instrumentation loaded.

    ``SQLAlchemyInstrumentor`` wraps ``create_engine`` for engines made later;
    engines made earlier (``otel_monitor.configure()`` called after the app
    module created its engine) are found once and traced too.
    """
    if "sqlalchemy.engine.base" not in sys.modules:
        return
    import gc

    from sqlalchemy.engine.base import Engine

    engines = [obj for obj in gc.get_objects() if isinstance(obj, Engine)]
    if not engines:
        return
    from opentelemetry import metrics, trace
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    t = trace.get_tracer("opentelemetry.instrumentation.sqlalchemy")
    usage = metrics.get_meter("opentelemetry.instrumentation.sqlalchemy").create_up_down_counter(
        "db.client.connections.usage", unit="connections"
    )
    for engine in engines:
        if getattr(engine, "_otel_monitor_traced", False):
            continue
        EngineTracer(t, engine, usage, False, {}, False)
        engine._otel_monitor_traced = True  # type: ignore[attr-defined]  # noqa: SLF001 - our marker on a dependency's object


# --- FastAPI native telemetry ---------------------------------------------------


def install_fastapi_native_defaults(settings: Any) -> None:
    """Give every ``FastAPI()`` our telemetry defaults unless the app set its own.

    FastAPI's native telemetry takes its options only from the constructor's
    ``telemetry=`` argument; we fill in the keys the app did not pass:
    ``exclude`` (health and metrics URLs), ``operation_spans`` and ``metrics``.
    """
    import fastapi

    if patching.is_patched(fastapi.FastAPI, "__init__"):
        return

    excluded = excluded_url_matcher(settings.excluded_urls)
    defaults = {
        "operation_spans": settings.operation_spans,
        # Three metric recordings per request that monitor.operation.duration repeats.
        "metrics": settings.http_metrics,
        "exclude": lambda scope: excluded(scope.get("path", "")),
    }
    original_init = fastapi.FastAPI.__init__

    lean = False
    with guarded("FastAPI request path check"):  # a failure here leaves FastAPI's own path, with our defaults
        lean = _report_request_path(settings)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        telemetry = dict(kwargs.get("telemetry") or {})
        for key, value in defaults.items():
            telemetry.setdefault(key, value)
        kwargs["telemetry"] = telemetry
        original_init(self, *args, **kwargs)
        if lean:
            from otel_monitor.fast.fastapi_requests import serve

            with guarded("FastAPI request path"):
                serve(self)

    __init__.__wrapped__ = original_init  # type: ignore[attr-defined]
    patching.replace(fastapi.FastAPI, "__init__", __init__)
    remember_request_invariants()


def _report_request_path(settings: Any) -> bool:
    """Whether otel-monitor's request path serves FastAPI's telemetry here; the report says which and why."""
    if not getattr(settings, "lean_requests", False):
        return False
    from otel_monitor.fast.fastapi_requests import unsupported_reason

    reason = unsupported_reason()
    served = "through otel-monitor's shorter request path" if reason is None else f"on its own path: {reason}"
    REPORT["fastapi"] = Decision(
        "fastapi", "native", f"FastAPI's own telemetry serves requests (one server span), {served}"
    )
    return reason is None


_SERVER_ADDRESSES_KEPT = 256


def remember_request_invariants() -> None:
    """Work FastAPI's native telemetry redoes on every request, done once per distinct input.

    * ``_server_attributes(scope)`` parses the ``Host`` header with
      ``urlsplit`` for ``server.address`` and ``server.port``: the answer is
      kept per (Host header, scheme, server) for 256 such triples; beyond
      that (a client sending made-up hosts) it is worked out each time;
    * ``_legacy_otel(stack)`` walks the whole middleware stack to see whether
      the contrib's ASGI middleware is in it: the answer is kept for the last
      stack asked about (an app builds its stack once; a rebuilt stack is a new
      object and is walked again).

    Both wrap FastAPI's own functions, which still give every answer; an
    older or newer FastAPI without them is left alone.
    """
    try:
        from fastapi import applications
        from fastapi.telemetry import _asgi
    except ImportError:
        return
    server_attributes = getattr(_asgi, "_server_attributes", None)
    legacy_otel = getattr(applications, "_legacy_otel", None)
    if callable(server_attributes) and not hasattr(server_attributes, "__wrapped__"):
        addresses: dict[tuple[Any, ...], dict[str, Any]] = {}

        def _server_attributes(scope: Any) -> dict[str, Any]:
            headers = scope.get("headers")
            if headers.__class__ is not list and headers.__class__ is not tuple:
                return server_attributes(scope)  # e.g. a one-shot iterator
            host = None
            for name, value in headers:
                if name == b"host":
                    host = value
                    break
            try:
                # FastAPI reads a missing scheme as "http": a missing and a None scheme differ.
                key = (host, scope.get("scheme", "http"), scope.get("server"))
                known = addresses.get(key)
            except TypeError:  # a server entry that is not hashable: FastAPI's own way
                return server_attributes(scope)
            if known is None:
                known = server_attributes(scope)
                if len(addresses) < _SERVER_ADDRESSES_KEPT:
                    addresses[key] = known
            return dict(known)

        _server_attributes.__wrapped__ = server_attributes  # type: ignore[attr-defined]
        _server_attributes.kept = addresses  # type: ignore[attr-defined]
        patching.replace(_asgi, "_server_attributes", _server_attributes)  # compat: lean_requests
    if callable(legacy_otel) and not hasattr(legacy_otel, "__wrapped__"):
        last: list[tuple[Any, bool]] = [(None, False)]

        def _legacy_otel(stack: Any) -> bool:
            known_stack, answer = last[0]  # one read: a stack and its own answer, whatever other threads do
            if stack is None or stack is not known_stack:
                answer = legacy_otel(stack)
                last[0] = (stack, answer)
            return answer

        _legacy_otel.__wrapped__ = legacy_otel  # type: ignore[attr-defined]
        patching.replace(applications, "_legacy_otel", _legacy_otel)  # FastAPI's legacy-telemetry check, memoised
