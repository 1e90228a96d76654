"""Hourly roll-ups in the ``--db`` file: the 7- and 30-day views.

The store keeps every minute of the last day in memory (and the request log
rebuilds it at a restart), so the file needs only the coarse level: once an
hour is complete (``SETTLE_NS`` after its end, for late exports), its minutes
are compacted into one row per (service, operation) and one per counter
series, and rows older than 30 days are pruned.

Why an hour: a 30-day view then reads 720 rows per operation, a month stays a
few megabytes at the example shop's rate (docs/console.md), and a 7-day chart
in 3-hour steps or a 30-day chart in 12-hour steps never needs finer rows.
A row keeps what the views merge: calls, failures by category, outcomes, the
sum, min and max, and the duration histogram's bucket counts, so percentiles
over 30 days come from merged buckets exactly as over 15 minutes.

A long view (:func:`long_window_hours`) reads the rows of the hours older than
the in-memory cut and the store's minutes from the cut on: the newest day is
the same figures as the 24-hour view.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from otel_monitor.console.store import MINUTE_NS, Histogram, Store

HOUR_NS = 60 * MINUTE_NS
MINUTES_PER_HOUR = 60
# Windows answered from the roll-ups, in hours.
LONG_WINDOWS: dict[str, int] = {"7d": 7 * 24, "30d": 30 * 24}
KEEP_HOURS = 30 * 24 + 1
# An hour is compacted this long after its end: exports retried or late still count.
SETTLE_NS = 5 * MINUTE_NS
# The store keeps 24 h and 5 min of minutes: hours from this many back are complete in memory.
MEMORY_HOURS = 23
# Merges kept (a few windows, services and counters); all are dropped when there would be more.
_MAX_CACHED = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollup_bounds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bounds TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS operation_hours (
    service TEXT NOT NULL,
    operation TEXT NOT NULL,
    hour INTEGER NOT NULL,
    source TEXT NOT NULL,
    calls INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL,
    max REAL,
    bounds_id INTEGER NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (service, operation, hour)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counter_hours (
    metric TEXT NOT NULL,
    service TEXT NOT NULL,
    hour INTEGER NOT NULL,
    attributes TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (metric, service, hour, attributes)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS operation_hours_by_hour ON operation_hours (hour);
CREATE INDEX IF NOT EXISTS counter_hours_by_hour ON counter_hours (hour);
"""


def long_window_hours(window: str) -> int | None:
    """Hours of a long window (``7d``, ``30d``); None for the in-memory windows."""
    return LONG_WINDOWS.get(window)


def _encode(hist: Histogram) -> str:
    """The parts of a histogram its columns do not hold, as compact JSON."""
    return json.dumps(
        {"k": {str(i): c for i, c in sorted(hist.buckets.items())}, "c": hist.categories, "o": hist.outcomes},
        separators=(",", ":"),
        sort_keys=True,
    )


def _decode(
    bounds: tuple[float, ...], calls: int, errors: int, total: float, low: Any, high: Any, detail: str
) -> Histogram:
    parts = json.loads(detail)
    hist = Histogram()
    hist.bounds = bounds
    hist.count, hist.errors, hist.sum = int(calls), int(errors), float(total)
    hist.min, hist.max = low, high
    hist.buckets = {int(i): int(c) for i, c in parts.get("k", {}).items()}
    hist.categories = {str(k): int(v) for k, v in parts.get("c", {}).items()}
    hist.outcomes = {str(k): int(v) for k, v in parts.get("o", {}).items()}
    return hist


def _attrs_text(attrs: tuple[tuple[str, Any], ...]) -> str:
    return json.dumps([[k, v] for k, v in attrs], separators=(",", ":"))


def _attrs_key(text: str) -> tuple[tuple[str, Any], ...]:
    return tuple((str(k), v) for k, v in json.loads(text))


# (service, {(operation, minute): histogram} from metrics, the same from spans, {(metric, minute, attrs): sum})
_Tables = tuple[str, dict[tuple[str, int], Histogram], dict[tuple[str, int], Histogram], dict[tuple[Any, ...], float]]


def _service_tables(store: Store) -> Iterator[_Tables]:
    """The store's per-minute tables of each service (caller holds the store's lock)."""
    for service, kept in store.rollups.items():
        yield service, kept.op_metrics, kept.op_spans, kept.counters


def _hours_of(
    tables: list[_Tables], first: int, last: int
) -> tuple[dict[tuple[str, str, int], tuple[str, Histogram]], dict[tuple[str, str, int, Any], float]]:
    """The minutes of hours ``first``..``last`` merged per hour.

    Per service and hour, from the duration metric when the service sent it
    in that hour, else from spans: the same choice the views make.
    """
    lo, hi = first * MINUTES_PER_HOUR, (last + 1) * MINUTES_PER_HOUR
    ops: dict[tuple[str, str, int], tuple[str, Histogram]] = {}
    counters: dict[tuple[str, str, int, Any], float] = defaultdict(float)
    for service, op_metrics, op_spans, sums in tables:
        with_metrics = {minute // MINUTES_PER_HOUR for _, minute in op_metrics if lo <= minute < hi}
        for source, table in (("metrics", op_metrics), ("spans", op_spans)):
            for (operation, minute), hist in table.items():
                hour = minute // MINUTES_PER_HOUR
                if lo <= minute < hi and (hour in with_metrics) == (source == "metrics"):
                    ops.setdefault((service, operation, hour), (source, Histogram()))[1].merge(hist)
        for (metric, minute, attrs), value in sums.items():
            if lo <= minute < hi:
                counters[(metric, service, minute // MINUTES_PER_HOUR, attrs)] += value
    return ops, counters


class HourlyRollups:
    """Hourly operation histograms and counter sums in the console's SQLite file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute(
                "SELECT MAX(h) FROM (SELECT MAX(hour) AS h FROM operation_hours "
                "UNION ALL SELECT MAX(hour) FROM counter_hours)"
            ).fetchone()
        # The newest hour compacted: later ones are compacted as they complete.
        self.compacted_through: int | None = row[0]
        self._bounds: dict[tuple[float, ...], int] = {}
        self._bounds_by_id: dict[int, tuple[float, ...]] = {}
        self._cache: dict[tuple[Any, ...], Any] = {}

    # --- writing -----------------------------------------------------------------
    def compact(self, store: Store, now_ns: int) -> int:
        """Compact every complete hour the store holds and the file does not yet; prune old rows.

        Returns the hours written.  Call it only with the store complete (not
        while ``--db`` requests are replayed).
        """
        last_complete = (now_ns - SETTLE_NS) // HOUR_NS - 1
        if self.compacted_through is not None and last_complete <= self.compacted_through:
            return 0  # nothing new: the store is not even read (this runs at every alert evaluation)
        with store.lock:
            tables = list(_service_tables(store))
            minutes = [k[-1] for _, ops, spans, _ in tables for k in (*ops, *spans)]
            minutes += [k[1] for _, _, _, counters in tables for k in counters]
            if not minutes:
                return 0
            first = min(minutes) // MINUTES_PER_HOUR
            if self.compacted_through is not None:
                first = max(first, self.compacted_through + 1)
            if first > last_complete:
                return 0
            ops, counters = _hours_of(tables, first, last_complete)
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for (service, operation, hour), (source, hist) in ops.items():
                    self._db.execute(
                        "INSERT OR IGNORE INTO operation_hours VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            service,
                            operation,
                            hour,
                            source,
                            hist.count,
                            hist.errors,
                            hist.sum,
                            hist.min,
                            hist.max,
                            self._bounds_id(hist.bounds or ()),
                            _encode(hist),
                        ),
                    )
                for (metric, service, hour, attrs), value in counters.items():
                    self._db.execute(
                        "INSERT OR IGNORE INTO counter_hours VALUES (?, ?, ?, ?, ?)",
                        (metric, service, hour, _attrs_text(attrs), value),
                    )
                oldest = now_ns // HOUR_NS - KEEP_HOURS
                self._db.execute("DELETE FROM operation_hours WHERE hour < ?", (oldest,))
                self._db.execute("DELETE FROM counter_hours WHERE hour < ?", (oldest,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self.compacted_through = last_complete
        with self._lock:
            self._cache.clear()  # new rows: merges are worked out again
        return last_complete - first + 1

    def _bounds_id(self, bounds: tuple[float, ...]) -> int:
        """Bucket boundaries are stored once (caller holds the lock): most rows share them."""
        found = self._bounds.get(bounds)
        if found is not None:
            return found
        text = json.dumps(list(bounds))
        self._db.execute("INSERT OR IGNORE INTO rollup_bounds (bounds) VALUES (?)", (text,))
        found = int(self._db.execute("SELECT id FROM rollup_bounds WHERE bounds = ?", (text,)).fetchone()[0])
        self._bounds[bounds], self._bounds_by_id[found] = found, bounds
        return found

    def _bounds_of(self, bounds_id: int) -> tuple[float, ...]:
        found = self._bounds_by_id.get(bounds_id)
        if found is None:
            row = self._db.execute("SELECT bounds FROM rollup_bounds WHERE id = ?", (bounds_id,)).fetchone()
            found = tuple(float(b) for b in json.loads(row[0])) if row else ()
            self._bounds_by_id[bounds_id], self._bounds[found] = found, bounds_id
        return found

    # --- reading -----------------------------------------------------------------
    def operation_hours(
        self, service: str | None, first_hour: int, end_hour: int
    ) -> list[tuple[str, str, int, str, Histogram]]:
        """(service, operation, hour, source, histogram) of the hours in [first_hour, end_hour)."""
        query = (
            "SELECT service, operation, hour, source, calls, errors, sum, min, max, bounds_id, detail "
            "FROM operation_hours WHERE hour >= ? AND hour < ?"
        )
        args: tuple[Any, ...] = (first_hour, end_hour)
        if service:
            query, args = query + " AND service = ?", (*args, service)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
            return [
                (svc, op, hour, source, _decode(self._bounds_of(bid), calls, errors, total, low, high, detail))
                for svc, op, hour, source, calls, errors, total, low, high, bid, detail in rows
            ]

    def counter_hours(
        self, metric: str, service: str | None, first_hour: int, end_hour: int
    ) -> list[tuple[str, int, tuple[tuple[str, Any], ...], float]]:
        """(service, hour, attributes, sum) of one counter in the hours [first_hour, end_hour)."""
        query = "SELECT service, hour, attributes, value FROM counter_hours WHERE metric = ? AND hour >= ? AND hour < ?"
        args: tuple[Any, ...] = (metric, first_hour, end_hour)
        if service:
            query, args = query + " AND service = ?", (*args, service)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [(svc, hour, _attrs_key(attrs), value) for svc, hour, attrs, value in rows]

    # --- merged, cached ----------------------------------------------------------
    # A long window's rows change only when an hour is compacted or the window moves on by an
    # hour: its merges are worked out once and kept until then (the views ask every few seconds).
    def operations(self, first_hour: int, end_hour: int) -> dict[tuple[str, str], tuple[str, Histogram]]:
        """(service, operation) -> (source, histogram of the hours in [first_hour, end_hour)); do not modify."""
        key = ("operations", first_hour, end_hour)
        found = self._cached(key)
        if found is None:
            found = {}
            for svc, op, _hour, source, hist in self.operation_hours(None, first_hour, end_hour):
                kept, merged = found.get((svc, op), (source, Histogram()))
                # Hours of either source: "metrics" when any of them is.
                found[(svc, op)] = ("metrics" if "metrics" in (kept, source) else source, merged)
                merged.merge(hist)
            self._cache_put(key, found)
        return found

    def operation_steps(self, first_hour: int, end_hour: int, step_hours: int) -> dict[tuple[str, str, int], Histogram]:
        """(service, operation, step index) -> histogram of that step's hours (step 0 starts at ``first_hour``)."""
        key = ("steps", first_hour, end_hour, step_hours)
        found = self._cached(key)
        if found is None:
            found = defaultdict(Histogram)
            for svc, op, hour, _source, hist in self.operation_hours(None, first_hour, end_hour):
                found[(svc, op, (hour - first_hour) // step_hours)].merge(hist)
            found = dict(found)
            self._cache_put(key, found)
        return found

    def counter_sums(
        self, metric: str, first_hour: int, end_hour: int
    ) -> dict[tuple[str, tuple[tuple[str, Any], ...]], float]:
        """(service, attributes) -> the counter's sum over the hours in [first_hour, end_hour)."""
        key = ("counter", metric, first_hour, end_hour)
        found = self._cached(key)
        if found is None:
            found = defaultdict(float)
            for svc, _hour, attrs, value in self.counter_hours(metric, None, first_hour, end_hour):
                found[(svc, attrs)] += value
            found = dict(found)
            self._cache_put(key, found)
        return found

    def _cached(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            return self._cache.get(key)

    def _cache_put(self, key: tuple[Any, ...], value: Any) -> None:
        with self._lock:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()  # windows moved on: the old merges are of no use any more
            self._cache[key] = value

    def close(self) -> None:
        with self._lock:
            self._db.close()
