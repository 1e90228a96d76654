"""7- and 30-day views from the hourly roll-ups in the --db file: exact counts, success rates and
percentile bounds for traffic at known times spanning a month, kept across a restart."""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from otel_monitor.console.aggregates import Queries
from otel_monitor.console.app import Console
from otel_monitor.console.cli import serve
from otel_monitor.console.rollups import HOUR_NS, KEEP_HOURS
from tests.support.console_telemetry import get
from tests.support.otlp_spans import spans_request as _spans

DAY_NS = 24 * HOUR_NS
# A fixed "now": 2026-03-31 12:30 UTC.
NOW = 1_774_960_200 * 1_000_000_000


def _send(console: Console, body: bytes) -> None:
    console.receive("traces", body, "application/x-protobuf", None)


# The traffic: (when, operation, durations, failed).  Day -20 is inside 30 days only.
TRAFFIC = [
    (NOW - 20 * DAY_NS - 2 * HOUR_NS, "checkout", [0.1] * 90, False),
    (NOW - 20 * DAY_NS - 2 * HOUR_NS, "checkout", [0.3] * 10, True),
    (NOW - 3 * DAY_NS + 3 * HOUR_NS, "checkout", [0.2] * 196, False),
    (NOW - 3 * DAY_NS + 3 * HOUR_NS, "checkout", [2.0] * 4, True),
    (NOW - 3 * DAY_NS + 3 * HOUR_NS, "browse", [0.05] * 50, False),
    (NOW - 10 * 60 * 1_000_000_000, "checkout", [0.5] * 10, False),
]


def _run_month(db: str) -> Console:
    """A console living through the month: each batch arrives, then the hourly compaction and trim run."""
    console = Console(db=db)
    console.replay()
    for end_ns in sorted({t for t, *_ in TRAFFIC}):
        for _, operation, durations, failed in [batch for batch in TRAFFIC if batch[0] == end_ns]:
            _send(console, _spans("shop", operation, end_ns, durations, failed))
        later = min(end_ns + 2 * HOUR_NS, NOW)
        console.hourly.compact(console.store, later)
        console.store.trim(later)
    return console


def _truth(window_days: int) -> dict[str, list[tuple[float, bool]]]:
    """Each operation's calls (duration, failed) within the last ``window_days`` (whole hours)."""
    first_ns = (NOW // HOUR_NS - window_days * 24 + 1) * HOUR_NS
    out: dict[str, list[tuple[float, bool]]] = {}
    for end_ns, operation, durations, failed in TRAFFIC:
        if end_ns >= first_ns:
            out.setdefault(operation, []).extend((d, failed) for d in durations)
    return out


def _rows(console: Console, window: str) -> dict[str, dict]:
    """The operation rows of the window; throughput is the last minute's, whatever the window: left out."""
    queries = Queries(console.store, NOW, rollups=console.hourly)
    return {
        r["operation"]: {k: v for k, v in r.items() if not k.startswith("throughput")}
        for r in queries.operations("shop", window)
    }


def _check(rows: dict[str, dict], truth: dict[str, list[tuple[float, bool]]]) -> None:
    assert set(rows) == set(truth)
    for operation, calls in truth.items():
        row = rows[operation]
        durations = sorted(d for d, _ in calls)
        failures = sum(1 for _, failed in calls if failed)
        assert (row["calls"], row["errors"]) == (len(calls), failures)
        assert row["success_rate"] == round((len(calls) - failures) / len(calls), 6)
        assert (row["min"], row["max"]) == (durations[0], durations[-1])
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            true_value = durations[max(0, math.ceil(q * len(durations)) - 1)]
            # The estimate and the true q-th call share a bucket narrowed to min and max:
            # they differ by at most the stated relative error.
            assert abs(row[name] - true_value) <= row["percentile_error"] * true_value + 1e-9, (operation, name)


def test_seven_and_thirty_days_count_exactly_from_the_hourly_rollups(tmp_path: Path) -> None:
    """Traffic 20 days, 3 days and 10 minutes back: 7d and 30d give exact calls, success, min, max, percentiles."""
    console = _run_month(str(tmp_path / "console.db"))
    try:
        seven, thirty = _rows(console, "7d"), _rows(console, "30d")
        _check(seven, _truth(7))
        _check(thirty, _truth(30))
        assert (seven["checkout"]["calls"], seven["checkout"]["errors"]) == (210, 4)
        assert (thirty["checkout"]["calls"], thirty["checkout"]["errors"]) == (310, 14)
        assert thirty["checkout"]["success_rate"] == round(296 / 310, 6)
        # The day -20 and day -3 minutes left memory long ago: only the file still has them.
        day = _rows(console, "24h")
        assert set(day) == {"checkout"} and day["checkout"]["calls"] == 10
        summary = Queries(console.store, NOW, rollups=console.hourly).summary("shop", "30d")[0]
        assert (summary["calls"], summary["errors"]) == (360, 14)
        series = Queries(console.store, NOW, rollups=console.hourly).operation_series("shop", None, "30d")
        assert len(series) == 60 and sum(p["calls"] for p in series) == 360
    finally:
        console.close()


def test_a_restart_keeps_the_long_views(tmp_path: Path) -> None:
    """Stopped and started again on the same file: the 7- and 30-day figures are the same."""
    db = str(tmp_path / "console.db")
    first = _run_month(db)
    before = {w: _rows(first, w) for w in ("7d", "30d")}
    first.close()
    second = Console(db=db)
    try:
        second.replay()
        second.hourly.compact(second.store, NOW)  # what the first tick does: nothing is counted twice
        assert {w: _rows(second, w) for w in ("7d", "30d")} == before
        _check(_rows(second, "30d"), _truth(30))
    finally:
        second.close()


def test_rows_older_than_thirty_days_are_pruned(tmp_path: Path) -> None:
    """Eleven days later the day -20 hour is past 30 days and leaves the file."""
    console = _run_month(str(tmp_path / "console.db"))
    try:
        assert len(console.hourly.operation_hours(None, 0, NOW // HOUR_NS)) == 3
        console.hourly.compact(console.store, NOW + 11 * DAY_NS)
        kept = console.hourly.operation_hours(None, 0, NOW // HOUR_NS + 11 * 24)
        assert all(hour >= (NOW + 11 * DAY_NS) // HOUR_NS - KEEP_HOURS for _, _, hour, _, _ in kept)
        assert {(op, hist.count) for _, op, _, _, hist in kept} == {("checkout", 200), ("browse", 50), ("checkout", 10)}
    finally:
        console.close()


def _status(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.slow
def test_the_api_answers_seven_days_with_db_and_refuses_it_without(tmp_path: Path) -> None:
    """/api/operations?window=7d counts from the roll-ups; other endpoints and a console without --db say why not."""
    now = time.time_ns()
    with serve(port=0, db=str(tmp_path / "console.db"), evaluate_every=3600) as handle:
        handle.wait_replayed()
        _send(handle.console, _spans("shop", "checkout", now - 3 * DAY_NS, [0.2] * 6))
        _send(handle.console, _spans("shop", "checkout", now - 60 * 1_000_000_000, [0.2] * 3, failed=True))
        handle.console.hourly.compact(handle.console.store, now)
        row = get(f"{handle.url}/api/operations?window=7d")["operations"][0]
        assert (row["operation"], row["calls"], row["errors"]) == ("checkout", 9, 3)
        assert get(f"{handle.url}/api/summary?window=30d")["services"][0]["calls"] == 9
        assert get(f"{handle.url}/api/operations?window=24h")["operations"][0]["calls"] == 3
        assert get(f"{handle.url}/api/services")["long_windows"] == ["7d", "30d"]
        status, body = _status(f"{handle.url}/api/errors?window=7d")
        assert status == 400 and b"only for the summary and the operations" in body
    with serve(port=0, evaluate_every=3600) as handle:
        status, body = _status(f"{handle.url}/api/operations?window=30d")
        assert status == 400 and b"--db" in body


def test_an_app_sending_metrics_and_spans_is_counted_once_from_its_metrics(tmp_path: Path) -> None:
    """Like an otel-monitor app: the same calls as duration points and as spans, 4 days and 1 hour back.
    7d counts each call once, from the metric, before and after compaction and a restart."""
    from tests.support.otlp_spans import duration_request

    db = str(tmp_path / "console.db")
    console = Console(db=db)
    console.replay()
    calls = [
        (NOW - 4 * DAY_NS, [0.05] * 40, False),
        (NOW - 4 * DAY_NS, [0.4] * 2, True),
        (NOW - HOUR_NS, [0.05] * 8, False),
    ]
    try:
        for when, durations, failed in calls:
            _send(console, _spans("shop", "browse", when, durations, failed))
            console.receive(
                "metrics", duration_request("shop", "browse", when, durations, failed), "application/x-protobuf", None
            )
        for when in sorted({when for when, _, _ in calls}):  # the hours compacted once they are over
            console.hourly.compact(console.store, min(when + 2 * HOUR_NS, NOW))
        row = _rows(console, "7d")["browse"]
        assert (row["source"], row["calls"], row["errors"], row["min"], row["max"]) == ("metrics", 50, 2, 0.05, 0.4)
    finally:
        console.close()
    again = Console(db=db)
    try:
        again.replay()
        again.hourly.compact(again.store, NOW)
        assert _rows(again, "7d")["browse"] == row
    finally:
        again.close()
