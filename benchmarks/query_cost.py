"""CPU per database query of the example shop, outside any web framework.

Run it plain and under ``opentelemetry-instrument``; the difference is what
the SQLAlchemy instrumentation and the SDK add to one query::

    python -m benchmarks.query_cost
    opentelemetry-instrument python -m benchmarks.query_cost

Each query is what ``GET /api/products/{id}`` runs: a session from the
shop's factory and one ``Session.get`` by primary key, on the shop's SQLite
database (``DATABASE_URL``).  ``--profile`` prints the telemetry functions
by cumulative time per query.  ``--empty-listeners`` (run plain) adds two
cursor-execute listeners that do nothing, as a tracing hook would: what
SQLAlchemy's event dispatch alone costs a query, whatever the hook does.
"""

from __future__ import annotations

import argparse
import time


def _unchanged(conn: object, cursor: object, statement: str, parameters: object, context: object,
               executemany: bool) -> tuple[str, object]:
    return statement, parameters


def _nothing(*_args: object) -> None:
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--empty-listeners", action="store_true",
                        help="add before/after cursor-execute listeners that do nothing")
    args = parser.parse_args(argv)
    if not 0 < args.queries <= 1_000_000:
        parser.error("--queries must be 1..1000000")

    from examples.shop.db import Product, create_schema, make_engine, make_session_factory
    from examples.shop.settings import ShopSettings

    engine = make_engine(ShopSettings.from_env())
    if args.empty_listeners:
        from sqlalchemy import event

        event.listen(engine, "before_cursor_execute", _unchanged, retval=True)
        event.listen(engine, "after_cursor_execute", _nothing)
    create_schema(engine)
    sessions = make_session_factory(engine)

    def query() -> None:
        with sessions() as session:
            session.get(Product, 1)

    for _ in range(min(300, args.queries)):
        query()
    cpu = time.process_time()
    for _ in range(args.queries):
        query()
    per_query = (time.process_time() - cpu) / args.queries * 1e6
    print(f"{per_query:.1f} µs CPU per query ({args.queries} queries)")
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.queries):
            query()
        profiler.disable()
        rows = [(cumulative, own, calls, f"{path.split('site-packages/')[-1]}:{line}({name})")
                for (path, line, name), (_, calls, own, cumulative, _) in pstats.Stats(profiler).stats.items()
                if "opentelemetry" in path or "otel_monitor" in path]
        print("under the profiler, per query: cumulative µs, own µs, calls, function")
        for cumulative, own, calls, where in sorted(rows, reverse=True)[:30]:
            print(f"{cumulative / args.queries * 1e6:8.1f} {own / args.queries * 1e6:7.1f} "
                  f"{calls / args.queries:5.1f}  {where}")
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
