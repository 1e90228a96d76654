"""Query spans of unsampled requests held as records (otel_monitor.fast.spans.HeldSpan).

Each test builds the span processors as the configurator does (our operation
processor behind its guard, then our export processor) on a real SDK provider
with the lean span type, traces a real SQLite engine with the contrib's
instrumentation, and compares what is exported with and without records.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import create_engine, text

from otel_monitor import semconv
from otel_monitor.config.file import parse_config_text
from otel_monitor.fast import spans
from otel_monitor.fast.sampling import parent_rules
from otel_monitor.guard import GuardedSpanProcessor
from otel_monitor.launcher.instrumentations import lean_query_spans
from otel_monitor.pipeline import instruments as metrics
from otel_monitor.pipeline.processors import OperationSpanProcessor
from otel_monitor.pipeline.tail_sampling import MonitorSpanExportProcessor, RecordAllSampler
from otel_monitor.semantics import errors
from otel_monitor.semantics.operations import load_operation_rules
from otel_monitor.semantics.slo import DEFAULT_BUCKETS

# Each rig (two in some tests) runs them on the same database file.
STATEMENTS = [
    ("SELECT name FROM t WHERE id = :id", {"id": 1}),
    ("SELECT name FROM t WHERE id = :id", {"id": 2}),
    ("UPDATE t SET name = :name WHERE id = :id", {"id": 1, "name": "c"}),
    ("INSERT OR REPLACE INTO t (id, name) VALUES (:id, :name)", [{"id": 3, "name": "x"}, {"id": 4, "name": "y"}]),
]
RULE_NAMING_QUERIES = """
operations:
  - name: catalog_db
    kind: client
    attributes: {db.system.name: sqlite}
"""
RULE_NAMING_NOTHING_HERE = """
operations:
  - name: payments_db
    kind: client
    attributes: {db.system.name: postgresql}
"""


class _Seen(SpanProcessor):
    """An app's own span processor: what it is shown."""

    def __init__(self) -> None:
        self.ended: list[Any] = []

    def on_end(self, span: Any) -> None:
        self.ended.append(span)


class Rig:
    def __init__(
        self,
        tmp_path: Any,
        *,
        root_rule: Any = ALWAYS_OFF,
        rules: str = "",
        keep_errors: bool = True,
        slow_threshold_ms: float = 0.0,
        max_pending: int = 4096,
        limits: SpanLimits | None = None,
        own_processor: SpanProcessor | None = None,
    ) -> None:
        lean_query_spans()
        self.exporter = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        self.provider = TracerProvider(
            sampler=RecordAllSampler(ParentBased(root_rule), parent_rules=parent_rules),
            shutdown_on_exit=False,
            span_limits=limits,
        )
        self.export = MonitorSpanExportProcessor(
            self.exporter, keep_errors=keep_errors, slow_threshold_ms=slow_threshold_ms, max_pending=max_pending
        )
        self.provider.add_span_processor(self.export)
        if own_processor is not None:
            self.provider.add_span_processor(own_processor)
        instruments = metrics.create_instruments(MeterProvider(metric_readers=[self.reader]), DEFAULT_BUCKETS)
        config = parse_config_text(rules or "{}", "monitor.yaml")
        operations = OperationSpanProcessor(
            load_operation_rules(config, strict=True), instruments, errors.ErrorClassifier()
        )
        multi = self.provider._active_span_processor
        multi._span_processors = (GuardedSpanProcessor(operations), *multi._span_processors)  # as the configurator
        assert spans.install(self.provider)
        self.tracer = self.provider.get_tracer("tests")
        self.engine = create_engine(f"sqlite:///{tmp_path / 'held.db'}")  # one database: the same attributes
        usage = MeterProvider().get_meter("t").create_up_down_counter("db.client.connections.usage")
        self.engine_tracer = EngineTracer(
            self.provider.get_tracer("opentelemetry.instrumentation.sqlalchemy"), self.engine, usage
        )
        with self.engine.begin() as conn:  # outside any request: root query spans, decided at once
            conn.execute(text("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, name TEXT)"))
            conn.execute(text("INSERT OR REPLACE INTO t (id, name) VALUES (1, 'a'), (2, 'b')"))
        self.provider.force_flush()
        self.exporter.clear()
        self.held = 0
        original = self.export.hold

        def counted(span: Any) -> None:
            self.held += 1
            original(span)

        self.export.hold = counted  # type: ignore[method-assign]

    @contextmanager
    def request(self, name: str = "GET /items", fail: bool = False) -> Iterator[Any]:
        with self.tracer.start_as_current_span(name, kind=SpanKind.SERVER) as root:
            yield root
            if fail:
                root.set_status(Status(StatusCode.ERROR, "failed"))

    def queries(self) -> None:
        with self.engine.begin() as conn:
            for statement, params in STATEMENTS:
                conn.execute(text(statement), params)

    def exported(self) -> list[Any]:
        self.provider.force_flush()
        return list(self.exporter.get_finished_spans())

    def operation_counts(self) -> dict[str, int]:
        data = self.reader.get_metrics_data()
        counts: dict[str, int] = {}
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == semconv.METRIC_OPERATION_DURATION:
                        for point in m.data.data_points:
                            name = point.attributes[semconv.MONITOR_OPERATION]
                            counts[name] = counts.get(name, 0) + point.count
        return counts

    def close(self) -> None:
        self.engine_tracer.remove_all_event_listeners()
        self.engine.dispose()
        self.provider.shutdown()


@pytest.fixture
def rigs(tmp_path: Any) -> Iterator[Any]:
    made: list[Rig] = []

    def make(**options: Any) -> Rig:
        made.append(Rig(tmp_path, **options))
        return made[-1]

    yield make
    for rig in made:
        rig.close()


def _as_exported(span: Any) -> dict[str, Any]:
    """What an exporter is given, but for the span id (drawn per span)."""
    context, parent = span.context, span.parent
    return {
        "name": span.name,
        "kind": span.kind,
        "attributes": dict(span.attributes),
        "status": (span.status.status_code, span.status.description),
        "flags": int(context.trace_flags),
        "trace_state": context.trace_state,
        "remote": context.is_remote,
        "parent is remote": parent.is_remote if parent else None,
        "resource": span.resource,
        "scope": span.instrumentation_scope,
        "events": list(span.events),
        "links": list(span.links),
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
    }


def _failed_request(rig: Rig) -> tuple[Any, list[Any]]:
    with rig.request(fail=True) as root:
        rig.queries()
    exported = rig.exported()
    (server,) = [s for s in exported if s.kind is SpanKind.SERVER]
    assert server.context.span_id == root.get_span_context().span_id
    return server, [s for s in exported if s.kind is SpanKind.CLIENT]


@pytest.mark.parametrize(
    "limits",
    [None, SpanLimits(max_span_attributes=2, max_span_attribute_length=5)],
    ids=["default limits", "tight limits"],
)
def test_a_kept_requests_held_queries_are_exported_as_the_spans_would_have_been(rigs: Any, limits: Any) -> None:
    """An unsampled request that failed: its query spans, from records, equal those an app's processor forces."""
    held = rigs(limits=limits)
    server, from_records = _failed_request(held)
    assert held.held == len(STATEMENTS)  # every query was a record

    spans_rig = rigs(limits=limits, own_processor=_Seen())
    _, from_spans = _failed_request(spans_rig)
    assert spans_rig.held == 0

    assert [_as_exported(s) for s in from_records] == [_as_exported(s) for s in from_spans]
    assert len(from_records) == len(STATEMENTS)
    ids = {s.context.span_id for s in from_records}
    assert len(ids) == len(STATEMENTS) and 0 not in ids and server.context.span_id not in ids
    for span in from_records:
        assert span.context.trace_id == server.context.trace_id
        assert span.parent.span_id == server.context.span_id
        assert server.start_time <= span.start_time <= span.end_time <= server.end_time
    if limits is not None:  # the checked mapping's bounds, counted as the SDK counts them
        assert all(len(s.attributes) == 2 and s.dropped_attributes > 0 for s in from_records)
        assert all(len(v) <= 5 for s in from_records for v in s.attributes.values() if isinstance(v, str))


def test_a_healthy_unsampled_request_exports_nothing_and_keeps_nothing(rigs: Any) -> None:
    rig = rigs()
    with rig.request():
        rig.queries()
    assert rig.held == len(STATEMENTS)
    assert rig.exported() == []
    assert rig.export._pending == {} and rig.export._pending_count == 0


def test_a_failing_query_keeps_its_request_with_the_contribs_error_status(rigs: Any) -> None:
    """The driver refuses a statement: the record takes the error status the span would, and the request is kept."""
    found = []
    for options in ({}, {"own_processor": _Seen()}):
        rig = rigs(**options)
        with rig.request(), rig.engine.connect() as conn, pytest.raises(Exception, match="no such table"):
            conn.execute(text("SELECT * FROM missing"))
        exported = rig.exported()
        assert sorted(s.kind.name for s in exported) == ["CLIENT", "SERVER"]
        (query,) = [s for s in exported if s.kind is SpanKind.CLIENT]
        found.append((rig.held, _as_exported(query)))
    assert found[0][0] == 1 and found[1][0] == 0
    assert found[0][1] == found[1][1]
    assert found[0][1]["status"][0] is StatusCode.ERROR and "no such table: missing" in found[0][1]["status"][1]


def test_a_slow_unsampled_request_keeps_its_held_queries(rigs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = rigs(slow_threshold_ms=50)
    with rig.request():
        rig.queries()
    assert rig.exported() == []  # quick: forgotten
    with rig.request() as slow:
        rig.queries()
        monkeypatch.setattr(spans, "time_ns", lambda: slow.start_time + 60_000_000)  # it ends 60 ms after its start
    exported = rig.exported()
    assert sorted(s.kind.name for s in exported) == ["CLIENT"] * len(STATEMENTS) + ["SERVER"]
    assert {s.context.trace_id for s in exported} == {slow.get_span_context().trace_id}
    assert rig.held == 2 * len(STATEMENTS)


def test_an_apps_own_span_processor_still_sees_every_query_span(rigs: Any) -> None:
    seen = _Seen()
    rig = rigs(own_processor=seen)
    with rig.request() as root:
        rig.queries()
    assert rig.held == 0
    queries = [s for s in seen.ended if s.parent is not None and s.parent.span_id == root.get_span_context().span_id]
    assert [s.name.split()[0] for s in queries] == ["SELECT", "SELECT", "UPDATE", "INSERT"]
    assert not any(s.context.trace_flags.sampled for s in queries)


def test_a_processor_hook_replaced_after_spans_have_run_is_called_for_later_queries(rigs: Any) -> None:
    """The holding plan is kept per processor list; a hook replaced on a processor is checked on every query."""
    rig = rigs()
    with rig.request():
        rig.queries()
    assert rig.held == len(STATEMENTS)
    ended: list[Any] = []
    original = rig.export.on_end
    rig.export.on_end = lambda span: (ended.append(span), original(span))  # type: ignore[method-assign]
    with rig.request():
        rig.queries()
    assert rig.held == len(STATEMENTS)  # no more records
    assert [s.kind for s in ended].count(SpanKind.CLIENT) == len(STATEMENTS)


def test_an_operation_rule_naming_queries_gets_a_metric_from_every_query(rigs: Any) -> None:
    rig = rigs(rules=RULE_NAMING_QUERIES)
    before = rig.operation_counts().get("catalog_db", 0)  # the setup's own queries
    with rig.request():
        rig.queries()
    assert rig.held == 0
    assert rig.operation_counts()["catalog_db"] - before == len(STATEMENTS)


def test_an_operation_rule_that_names_other_spans_leaves_queries_held(rigs: Any) -> None:
    rig = rigs(rules=RULE_NAMING_NOTHING_HERE)
    with rig.request():
        rig.queries()
    assert rig.held == len(STATEMENTS)
    assert rig.operation_counts() == {"HTTP": 1}  # the request's server span only


def test_sampled_requests_and_queries_outside_a_request_get_spans(rigs: Any) -> None:
    rig = rigs(root_rule=ALWAYS_ON)
    with rig.request():
        rig.queries()
    assert rig.held == 0
    assert len(rig.exported()) == len(STATEMENTS) + 1
    unsampled = rigs()
    unsampled.queries()  # no parent: each query is a root, decided when it ends
    assert unsampled.held == 0


def test_held_queries_count_towards_the_bound_on_what_is_held(rigs: Any) -> None:
    rig = rigs(max_pending=6)
    roots = [rig.tracer.start_span("GET /items", kind=SpanKind.SERVER) for _ in range(3)]
    for root in roots:
        with trace.use_span(root, end_on_exit=False):
            rig.queries()
    assert rig.held == 3 * len(STATEMENTS)
    assert rig.export._pending_count <= 6
    assert list(rig.export._pending) == [roots[2].get_span_context().trace_id]  # the oldest traces forgotten
    for root in roots:
        root.set_status(Status(StatusCode.ERROR, "failed"))
        root.end()
    exported = rig.exported()
    assert len([s for s in exported if s.kind is SpanKind.CLIENT]) == len(STATEMENTS)
    assert len([s for s in exported if s.kind is SpanKind.SERVER]) == 3


def test_without_keeping_failed_or_slow_requests_a_query_is_held_nowhere(rigs: Any) -> None:
    rig = rigs(keep_errors=False)
    with rig.request(fail=True):
        rig.queries()
    assert rig.held == 0 and rig.export._pending == {}
    assert rig.exported() == []


def test_a_held_span_takes_status_as_the_sdks_span_does(rigs: Any) -> None:
    rig = rigs()
    sdk = TracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False).get_tracer("t")
    sequences = [
        [Status(StatusCode.ERROR, "a"), Status(StatusCode.UNSET)],
        [(StatusCode.ERROR, "b")],
        [(StatusCode.OK, None), Status(StatusCode.ERROR, "ignored once OK")],
        [Status(StatusCode.ERROR, "first"), (StatusCode.ERROR, "second")],
        [(StatusCode.UNSET, "nothing")],
    ]
    for sequence in sequences:
        with rig.request():
            held = rig.tracer.held_child("SELECT", SpanKind.CLIENT, {"db.system.name": "sqlite"})
        assert isinstance(held, spans.HeldSpan)
        span = sdk.start_span("SELECT")
        for step in sequence:
            for target in (held, span):
                target.set_status(*step) if isinstance(step, tuple) else target.set_status(step)
        assert (held.status.status_code, held.status.description) == (span.status.status_code, span.status.description)
        assert held.is_recording()
        held.end()
        span.end()
        assert not held.is_recording()
        held.set_status(Status(StatusCode.ERROR, "after the end"))  # ignored, as on an ended span
        held.end()  # a second end is ignored too
        assert held.status.description == span.status.description
