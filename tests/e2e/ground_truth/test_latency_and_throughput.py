"""Steady load, a burst, one slow request, sub-millisecond queries: the console's figures against the
client's record."""

from __future__ import annotations

import pytest

from tests.e2e.ground_truth.support import (
    ConsoleProcess,
    Recorder,
    check_counts,
    check_latency,
    check_throughput,
    monitored_app,
    status_row,
    wait_for_operation,
)

pytestmark = pytest.mark.slow

WORK = "GET /work"


def test_steady_load(console_process: ConsoleProcess) -> None:
    """20 requests/s for 3 s: counts exact, throughput within 5 %, percentiles within the stated error."""
    service = "gt-steady"
    with monitored_app(console_process.url, service) as app, Recorder(app.base_url) as client:
        calls = client.steady(20, 3, lambda i: (WORK, "/work?ms=5"))
        row = wait_for_operation(console_process, service, WORK, len(calls), source="metrics")
        check_counts(row, calls)
        check_latency(row, [c.server["work"] for c in calls], [c.latency for c in calls])
        check_throughput(row, calls)
        summary = console_process.summary(service)
        check_throughput(summary, calls)
        line = status_row(console_process, service)
        assert int(line["calls"]) == summary["calls"] == len(calls)
        assert line["errors"] == "0.0%"


def test_burst(console_process: ConsoleProcess) -> None:
    """150 requests from 16 threads at once: every call counted, the burst's rate and latency as measured."""
    service = "gt-burst"
    with monitored_app(console_process.url, service) as app, Recorder(app.base_url) as client:
        client.steady(5, 1, lambda i: (WORK, "/work?ms=1"))  # a quiet start before the burst
        client.burst(150, 16, lambda i: (WORK, "/work?ms=2"))
        calls = client.of(WORK)
        row = wait_for_operation(console_process, service, WORK, len(calls), source="metrics")
        check_counts(row, calls)
        check_latency(row, [c.server["work"] for c in calls], [c.latency for c in calls])
        check_throughput(row, calls)


def test_one_slow_request_among_fast_ones(console_process: ConsoleProcess) -> None:
    """A 2.5 s request shows 2.5 s at every percentile, not beyond it; the fast ones keep their own figures."""
    service = "gt-slow"
    with monitored_app(console_process.url, service) as app, Recorder(app.base_url) as client:
        client.steady(20, 1.5, lambda i: (WORK, "/work?ms=5"))
        client.call("GET /slow", "/slow?ms=2500")
        client.steady(20, 0.5, lambda i: (WORK, "/work?ms=5"))
        slow, fast = client.of("GET /slow"), client.of(WORK)
        row = wait_for_operation(console_process, service, "GET /slow", 1, source="metrics")
        check_counts(row, slow)
        check_latency(row, [c.server["work"] for c in slow], [c.latency for c in slow])
        row = wait_for_operation(console_process, service, WORK, len(fast), source="metrics")
        check_latency(row, [c.server["work"] for c in fast], [c.latency for c in fast])
        summary = console_process.summary(service)
        every = slow + fast
        check_latency(summary, [c.server["work"] for c in every], [c.latency for c in every])


def test_sub_millisecond_database_operations(console_process: ConsoleProcess) -> None:
    """Single-row SQLite queries of a fraction of a millisecond get percentiles of that size."""
    service = "gt-queries"
    with monitored_app(console_process.url, service) as app, Recorder(app.base_url) as client:
        calls = client.steady(50, 2, lambda i: ("GET /items/{item_id}", f"/items/{i % 3 + 1}"))
        row = wait_for_operation(console_process, service, "item_query", len(calls), source="metrics")
        assert row["calls"] == len(calls) and row["errors"] == 0
        # The query span lies between the DBAPI call (inside it) and Connection.execute (around it).
        check_latency(row, [c.server["query"] for c in calls], [c.server["execute"] for c in calls])
        assert row["p99"] < 0.005, row
