"""otel_monitor.launcher.instrumentations.lean_query_spans: the contrib's query spans, worked out once per statement."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import create_engine, text

from otel_monitor.launcher.instrumentations import lean_query_spans
from tests.support.postgres import postgres_server, postgres_url  # noqa: F401 (the shared throwaway server)

STATEMENTS = [
    ("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, name TEXT)", None),
    ("DELETE FROM t", None),
    ("INSERT INTO t (id, name) VALUES (:id, :name)", [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]),
    ("SELECT name FROM t WHERE id = :id", {"id": 1}),
    ("SELECT name FROM t WHERE id = :id", {"id": 2}),  # the same statement again: from the cache
    ("/* a leading comment */ SELECT count(*) FROM t", None),
    ("  \n UPDATE t SET name = :name WHERE id = :id", {"id": 1, "name": "c"}),
]


class _Contrib(EngineTracer):
    """The contrib's own method, whatever the class holds now."""


_Contrib._before_cur_exec = getattr(EngineTracer._before_cur_exec, "__wrapped__", EngineTracer._before_cur_exec)


TRACERS: list[EngineTracer] = []
CONNECTION_INFO: list[dict[str, Any]] = []


def _spans(
    url: str, tracer_class: type[EngineTracer], vendor: str | None = None
) -> list[tuple[str, Any, dict[str, Any]]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    usage = MeterProvider().get_meter("t").create_up_down_counter("db.client.connections.usage")
    engine = create_engine(url)
    TRACERS.append(tracer_class(provider.get_tracer("opentelemetry.instrumentation.sqlalchemy"), engine, usage))
    if vendor is not None:
        TRACERS[-1].vendor = vendor
    try:
        with engine.begin() as conn:
            for statement, params in STATEMENTS:
                conn.execute(text(statement), params)
            with suppress_instrumentation():
                conn.execute(text("SELECT 1"))
            try:
                CONNECTION_INFO.append(dict(conn.info))
            except RuntimeError:  # the test that makes it unreadable
                CONNECTION_INFO.append({})
    finally:
        engine.dispose()
    return [(s.name, s.kind, dict(s.attributes)) for s in exporter.get_finished_spans()]


def _compare(url: str) -> list[tuple[str, Any, dict[str, Any]]]:
    lean_query_spans()
    assert getattr(EngineTracer._before_cur_exec, "_otel_monitor_lean", False)
    expected = _spans(url, _Contrib)
    got = _spans(url, EngineTracer)
    assert got == expected
    cached = TRACERS[-1].__dict__.get("_otel_monitor_statements", {})
    assert "SELECT name FROM t WHERE id = %(id)s" in {k[0] for k in cached} or "SELECT name FROM t WHERE id = ?" in {
        k[0] for k in cached
    }  # worked out once, then from the cache
    assert len(got) == len(STATEMENTS)  # the insert's executemany is one span; the suppressed query none
    return got


def test_sqlite_query_spans_have_the_contribs_names_and_attributes(tmp_path: Any) -> None:
    got = _compare(f"sqlite:///{tmp_path / 'q.db'}")
    database = str(tmp_path / "q.db")
    assert [name for name, _, _ in got] == [
        f"{verb} {database}" for verb in ("CREATE", "DELETE", "INSERT", "SELECT", "SELECT", "SELECT", "UPDATE")
    ]
    assert got[3][2] == {
        "db.name": database,
        "db.statement": "SELECT name FROM t WHERE id = ?",
        "db.system": "sqlite",
        "db.operation": f"SELECT {database}",
    }


def test_postgresql_query_spans_have_the_contribs_names_and_attributes(postgres_url: str) -> None:  # noqa: F811
    got = _compare(postgres_url)
    assert all("server.address" in attributes or "net.peer.name" in attributes for _, _, attributes in got)


def test_a_connection_that_cannot_be_read_still_gets_the_engines_spans(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.engine import Connection

    lean_query_spans()

    def unreadable(self: Any) -> Any:
        raise RuntimeError("invalidated")

    monkeypatch.setattr(Connection, "info", property(unreadable))
    got = _spans(f"sqlite:///{tmp_path / 'f.db'}", EngineTracer)
    database = str(tmp_path / "f.db")
    assert [name for name, _, _ in got][:2] == [f"CREATE {database}", f"DELETE {database}"]
    assert len(got) == len(STATEMENTS)


def test_a_vendor_whose_database_can_change_on_a_connection_is_read_each_time(tmp_path: Any) -> None:
    """On MySQL (USE) the contrib reads the database off the cursor per query; nothing is kept per connection."""
    lean_query_spans()
    url = f"sqlite:///{tmp_path / 'm.db'}"
    expected = _spans(url, _Contrib, vendor="mysql")
    got = _spans(url, EngineTracer, vendor="mysql")
    assert got == expected
    assert not any(key.startswith("otel_monitor") for key in CONNECTION_INFO[-1])
    _spans(url, EngineTracer)
    assert any(key.startswith("otel_monitor") for key in CONNECTION_INFO[-1])  # SQLite: kept per connection


def _recorder() -> tuple[Any, InMemorySpanExporter, Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    usage = MeterProvider().get_meter("t").create_up_down_counter("db.client.connections.usage")
    return provider.get_tracer("opentelemetry.instrumentation.sqlalchemy"), exporter, usage


def _traced_engine(url: str, tracer_class: type[EngineTracer] = EngineTracer, **kwargs: Any) -> tuple[Any, Any]:
    tracer, exporter, usage = _recorder()
    engine = create_engine(url)
    TRACERS.append(tracer_class(tracer, engine, usage, **kwargs))
    return engine, exporter


def test_query_spans_come_from_the_dialect_and_connections_dispatch_no_events(tmp_path: Any) -> None:
    """The engine gets no connection-event listener (SQLAlchemy's dispatch per connection is skipped); the dialect's
    execute methods make the spans. With sqlcommenter, which rewrites statements, the contrib's events stay."""
    lean_query_spans()
    engine, exporter = _traced_engine(f"sqlite:///{tmp_path / 'd.db'}")
    try:
        assert engine._has_events is False
        assert {"do_execute", "do_executemany", "do_execute_no_params"} <= set(vars(engine.dialect))
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            assert not len(conn.dispatch.before_cursor_execute) and not len(conn.dispatch.after_cursor_execute)
        assert [s.name for s in exporter.get_finished_spans()] == [f"SELECT {tmp_path / 'd.db'}"]
    finally:
        engine.dispose()
    commented, _ = _traced_engine(f"sqlite:///{tmp_path / 'c.db'}", enable_commenter=True)
    assert commented._has_events is True and "do_execute" not in vars(commented.dialect)
    commented.dispose()


@pytest.mark.parametrize("first", ["engine", "options"])
def test_an_engine_sharing_a_traced_dialect_gets_one_span_per_query(tmp_path: Any, first: str) -> None:
    """engine.execution_options() shares its parent's dialect: traced in either order, each query is one span."""
    lean_query_spans()
    tracer, exporter, usage = _recorder()
    engine = create_engine(f"sqlite:///{tmp_path / 'o.db'}")
    options = engine.execution_options(isolation_level="AUTOCOMMIT")
    for target in (engine, options) if first == "engine" else (options, engine):
        TRACERS.append(EngineTracer(tracer, target, usage))
    for target in (engine, options):
        with target.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert not len(target.dispatch.before_cursor_execute) and not len(target.dispatch.after_cursor_execute)
    engine.dispose()
    assert len(exporter.get_finished_spans()) == 2


def test_an_app_rewriting_statements_keeps_the_events(tmp_path: Any) -> None:
    """An app's own before_cursor_execute (retval) runs before ours on the events, so the span shows the statement
    as the contrib saw it: such an engine keeps the events, all three, and every span ends."""
    from sqlalchemy import event

    lean_query_spans()
    tracer, exporter, usage = _recorder()
    engine = create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    event.listen(engine, "before_cursor_execute", lambda c, cur, st, p, ctx, m: (st + " -- app", p), retval=True)
    TRACERS.append(EngineTracer(tracer, engine, usage))
    assert "do_execute" not in vars(engine.dialect)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    engine.dispose()
    (span,) = exporter.get_finished_spans()
    assert span.end_time is not None


def test_a_failing_query_has_the_contribs_error_status(tmp_path: Any) -> None:
    """A statement the database refuses: the span ends with the contrib's error status and description."""
    lean_query_spans()
    found = []
    for tracer_class in (_Contrib, EngineTracer):
        engine, exporter = _traced_engine(f"sqlite:///{tmp_path / 'e.db'}", tracer_class)
        with engine.connect() as conn, pytest.raises(Exception, match="no such table"):
            conn.execute(text("SELECT * FROM missing"))
        engine.dispose()
        (span,) = exporter.get_finished_spans()
        found.append((span.name, span.status.status_code, span.status.description, dict(span.attributes)))
    assert found[0] == found[1]
    assert found[1][1].name == "ERROR" and "no such table: missing" in found[1][2]


def test_removing_the_listeners_gives_the_dialect_back(tmp_path: Any) -> None:
    """The instrumentor's uninstrument (remove_all_event_listeners) restores the dialect's own methods."""
    lean_query_spans()
    engine, exporter = _traced_engine(f"sqlite:///{tmp_path / 'u.db'}")
    assert "do_execute" in vars(engine.dialect)
    EngineTracer.remove_all_event_listeners()
    assert not {"do_execute", "do_executemany", "do_execute_no_params"} & set(vars(engine.dialect))
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    engine.dispose()
    assert exporter.get_finished_spans() == ()
