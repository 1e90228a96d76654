"""The size of a month of the console's hourly roll-ups (``--db``) at the example shop's rate.

    .venv/bin/python -m benchmarks.rollup_month [--rate 20] [--days 30] [--db PATH]

A month is generated synthetically, hour by hour, through the console's own
compaction (:meth:`HourlyRollups.compact`): each hour, every operation of the
demo's two services gets its share of ``--rate`` requests per second (the
``make demo`` default) as a duration histogram spread over the buckets around
the operation's median, with a few failures and client errors, and every
counter series the shop sends (cache lookups, fallbacks, journey milestones,
business events, users and amounts) its hourly sum.  Then the roll-up tables'
size is printed: SQLite's own page count of the file, vacuumed.

The request log beside them (raw requests of the last day, for replay) is a
separate bound: one day and ``RequestLog.max_bytes``.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import sqlite3
import tempfile
from typing import Any

from otel_monitor import semconv
from otel_monitor.console.rollups import HOUR_NS, HourlyRollups
from otel_monitor.console.store import AMOUNT_COUNT, AMOUNT_SUM, Histogram, ServiceRollups, Store

# The demo's operations and their share of requests and median seconds: the shop's named operations
# (examples/shop/otel-monitor.yaml) and /ping, and the payment provider's charge, ping and health.
OPERATIONS: dict[str, dict[str, tuple[float, float]]] = {
    "shop": {
        "catalog_browse": (0.30, 0.004),
        "product_view": (0.22, 0.003),
        "cart_add": (0.10, 0.006),
        "cart_view": (0.06, 0.004),
        "cart_remove": (0.01, 0.005),
        "checkout": (0.05, 0.06),
        "signup": (0.03, 0.02),
        "login": (0.05, 0.02),
        "order_history": (0.02, 0.004),
        "refund": (0.004, 0.008),
        "GET /ping": (0.08, 0.001),
    },
    "payments": {
        "POST /{provider}/v1/charges": (0.05, 0.05),
        "GET /ping": (0.01, 0.001),
        "GET /health": (0.006, 0.001),
    },
}
# The shop's counter series: (metric, attributes) as its code sends them.
_CACHE = [
    (
        semconv.METRIC_CACHE_REQUESTS,
        {"monitor.cache.name": "catalog", "monitor.cache.hit": hit, "monitor.operation": op},
    )
    for hit in (True, False)
    for op in ("catalog_browse", "product_view")
]
_FALLBACKS = [
    (semconv.METRIC_FALLBACKS, {"monitor.operation": "checkout", "monitor.service.layer": layer})
    for layer in ("primary", "fallback")
]
_MILESTONES = [
    (
        semconv.METRIC_JOURNEY_MILESTONES,
        {"monitor.journey.name": "purchase", "monitor.journey.step": s, "monitor.journey.first": f},
    )
    for s in ("signup", "first_browse", "first_add_to_cart", "first_purchase")
    for f in (True, False)
]
_BUSINESS: list[tuple[str, dict[str, Any]]] = [
    *[(semconv.METRIC_BUSINESS_EVENTS, {"monitor.kpi": k}) for k in ("cart_started", "order_placed")],
    *[
        (semconv.METRIC_BUSINESS_USERS, {"monitor.kpi": k, "monitor.business.returning": r})
        for k in ("visitor", "buyer")
        for r in (True, False)
    ],
    *[
        (name, {"monitor.kpi": k, "monitor.business.currency": "EUR"})
        for name in (AMOUNT_COUNT, AMOUNT_SUM)
        for k in ("revenue", "refund")
    ],
]
COUNTERS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "shop": [*_CACHE, *_FALLBACKS, *_MILESTONES, *_BUSINESS],
    "payments": [],
}


def _hour_histogram(bounds: tuple[float, ...], calls: int, median: float, chance: random.Random) -> Histogram:
    """``calls`` durations log-normally spread around ``median`` (sigma 0.6), counted per bucket."""
    hist = Histogram()
    weights = []
    edges = (0.0, *bounds, math.inf)
    for low, high in itertools.pairwise(edges):
        cdf = [
            0.5 * (1 + math.erf(math.log(x / median) / (0.6 * math.sqrt(2)))) if 0 < x < math.inf else float(x > 0)
            for x in (low, high)
        ]
        weights.append(cdf[1] - cdf[0])
    counts = [int(calls * w * chance.uniform(0.9, 1.1)) for w in weights]
    failed = max(1, calls // 200)
    client = max(1, calls // 50)
    hist.add(bounds, counts, median * sum(counts), sum(counts), None, median / 4, median * 8, "success")
    hist.add(bounds, {len(bounds) - 4: failed}, median * 4 * failed, failed, "timeout", None, None, "server_error")
    hist.add(bounds, {2: client}, median * client, client, None, None, None, "client_error")
    return hist


def build_month(path: str, rate: float, days: int, seed: int = 1) -> HourlyRollups:
    """A month of roll-ups in ``path``: each hour's minutes in a store, compacted as the console does."""
    chance = random.Random(seed)
    rollups = HourlyRollups(path)
    store = Store()
    bounds = store.slos.buckets
    start_hour = 1_774_915_200 * 1_000_000_000 // HOUR_NS  # a fixed month start: 2026-03-31 00:00 UTC
    per_hour = rate * 3600
    for hour in range(start_hour, start_hour + days * 24):
        minute = hour * 60 + 30
        for service, operations in OPERATIONS.items():
            kept = store.rollups.setdefault(service, ServiceRollups())
            kept.op_metrics.clear()
            kept.counters.clear()
            for operation, (share, median) in operations.items():
                kept.op_metrics[(operation, minute)] = _hour_histogram(bounds, int(per_hour * share), median, chance)
            for metric, attrs in COUNTERS[service]:
                key = tuple(sorted(attrs.items()))
                kept.counters[(metric, minute, key)] = float(chance.randint(1, int(per_hour * 0.05)))
        rollups.compact(store, (hour + 1) * HOUR_NS + 6 * 60 * 1_000_000_000)
    return rollups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second (make demo's default, 20)")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--db", help="the SQLite file to write (default: a temporary one)")
    args = parser.parse_args()
    path = args.db or os.path.join(tempfile.mkdtemp(), "month.db")
    build_month(path, args.rate, args.days).close()
    db = sqlite3.connect(path)
    db.execute("VACUUM")
    rows = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("operation_hours", "counter_hours")}
    pages = db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    operations = sum(len(o) for o in OPERATIONS.values())
    counters = sum(len(c) for c in COUNTERS.values())
    print(
        f"{args.days} days at {args.rate:g} requests/s, {operations} operations and {counters} counter series: "
        f"{rows['operation_hours']} operation rows, {rows['counter_hours']} counter rows, "
        f"{pages / 1e6:.2f} MB ({pages / 1e6 / args.days * 30:.2f} MB per 30 days)"
    )


if __name__ == "__main__":
    main()
