"""Instructions per request of a span and its query, through the processors the configurator installs.

A request span with one SQLite query in it, on a real SDK provider with the
lean span type, our operation processor behind its guard and our export
processor (into memory), the contrib's SQLAlchemy instrumentation on the
engine. Counted by valgrind, once with ``--few`` and once with ``--many``
requests; the difference per request is printed::

    python -m benchmarks.record_cost --case held

Cases, each against the others of its kind:

* ``none``: the request unsampled, its query not traced (the engine's
  instrumentation removed);
* ``held``: unsampled, the query held as a record (``spans.HeldSpan``), as
  otel-monitor does when nothing could tell the difference;
* ``span``: unsampled, the query a span, as when an app adds a span processor
  of its own;
* ``sampled``: the request sampled (nine attributes, as a server span has),
  the query a span; attributes kept as a plain dict where the SDK's bounded
  mapping would change nothing;
* ``sampled-bounded``: the same, every sampled span's attributes put in the
  SDK's bounded mapping at its end, as before that change.

Each count runs in a process of its own. Needs valgrind (Debian: ``apt-get
install valgrind``); ``--no-valgrind`` prints CPU µs per request instead
(noisy on a shared machine).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = ("none", "held", "span", "sampled", "sampled-bounded")
_SERVER_ATTRIBUTES = {
    "http.request.method": "GET", "url.path": "/api/products/1", "http.route": "/api/products/{product_id}",
    "http.response.status_code": 200, "server.address": "127.0.0.1", "server.port": 8000, "url.scheme": "http",
    "network.protocol.version": "1.1", "user_agent.original": "wrk",
}


def _requests(case: str, count: int, work: Path) -> None:
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
    from opentelemetry.trace import SpanKind
    from sqlalchemy import create_engine, text

    from otel_monitor.fast import spans
    from otel_monitor.guard import GuardedSpanProcessor
    from otel_monitor.launcher.instrumentations import lean_query_spans
    from otel_monitor.pipeline import instruments as metrics
    from otel_monitor.pipeline.processors import OperationSpanProcessor
    from otel_monitor.pipeline.tail_sampling import MonitorSpanExportProcessor, RecordAllSampler
    from otel_monitor.semantics import errors
    from otel_monitor.semantics.operations import OperationRules
    from otel_monitor.semantics.slo import DEFAULT_BUCKETS

    lean_query_spans()
    sampled = case.startswith("sampled")
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=RecordAllSampler(ParentBased(ALWAYS_ON if sampled else ALWAYS_OFF)),
                              shutdown_on_exit=False)
    provider.add_span_processor(MonitorSpanExportProcessor(exporter, keep_errors=True))
    instruments = metrics.create_instruments(MeterProvider(), DEFAULT_BUCKETS)
    operations = OperationSpanProcessor(OperationRules(), instruments, errors.ErrorClassifier())
    multi = provider._active_span_processor
    multi._span_processors = (GuardedSpanProcessor(operations), *multi._span_processors)
    spans.install(provider)
    if case == "span":
        spans.MonitorTracer.held_child = lambda *_args: None  # type: ignore[method-assign,assignment]
    if case == "sampled-bounded":
        spans._checked = spans._bounded
    engine = create_engine(f"sqlite:///{work / 'cost.db'}")
    usage = MeterProvider().get_meter("cost").create_up_down_counter("db.client.connections.usage")
    traced = EngineTracer(provider.get_tracer("opentelemetry.instrumentation.sqlalchemy"), engine, usage)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(text("INSERT OR REPLACE INTO t (id, name) VALUES (1, 'a')"))
    if case == "none":
        traced.remove_all_event_listeners()
    tracer = provider.get_tracer("cost")
    with engine.connect() as conn:
        for done in range(count):
            with tracer.start_as_current_span("GET /api/products/{product_id}", kind=SpanKind.SERVER) as span:
                span.set_attributes(_SERVER_ATTRIBUTES)
                conn.execute(text("SELECT name FROM t WHERE id = 1")).all()
            if done % 500 == 0:
                exporter.clear()  # the spans exported so far: memory stays flat
    provider.shutdown()
    engine.dispose()


def _command(case: str, count: int) -> list[str]:
    return [sys.executable, "-m", "benchmarks.record_cost", "--case", case, "--run", str(count)]


def _cpu_seconds(case: str, count: int) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(_command(case, count), check=True, timeout=900)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _instructions(case: str, count: int) -> int:
    from benchmarks.instructions import callgrind_total

    return callgrind_total(_command(case, count), None, 900)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.record_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=CASES, action="append", help="repeatable; default: all")
    parser.add_argument("--few", type=int, default=200)
    parser.add_argument("--many", type=int, default=1200)
    parser.add_argument("--no-valgrind", action="store_true", help="CPU µs per request instead of instructions")
    parser.add_argument("--run", type=int, default=None, help=argparse.SUPPRESS)  # one counted run, in a child
    args = parser.parse_args(argv)
    cases = args.case or list(CASES)
    if args.run is not None:
        with tempfile.TemporaryDirectory() as work:
            _requests(cases[0], args.run, Path(work))
        return 0
    if not 0 < args.few < args.many <= 100_000:
        parser.error("need 0 < --few < --many <= 100000")
    if not args.no_valgrind and shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (Debian: apt-get install valgrind); or --no-valgrind")
    for case in cases:  # each count in a process of its own: a case changes classes for its run
        if args.no_valgrind:
            few, many = _cpu_seconds(case, args.few), _cpu_seconds(case, args.many)
            print(f"{case:16} {(many - few) / (args.many - args.few) * 1e6:10.1f} µs CPU per request", flush=True)
            continue
        few, many = _instructions(case, args.few), _instructions(case, args.many)
        print(f"{case:16} {(many - few) / (args.many - args.few):12,.0f} instructions per request", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

