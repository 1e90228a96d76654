"""A 4xx storm: one meaning of success, from the first span to the last metric export."""

from __future__ import annotations

import pytest

from tests.e2e.ground_truth.support import (
    ConsoleProcess,
    Recorder,
    check_counts,
    monitored_app,
    status_row,
    wait_for,
    wait_for_operation,
)

pytestmark = pytest.mark.slow

ITEM, PRIVATE, WORK = "GET /items/{item_id}", "GET /private", "GET /work"


def _storm(client: Recorder) -> None:
    """404s, 401s and a few 500s among successes."""

    def plan(i: int) -> tuple[str, str]:
        kind = i % 8
        if kind in (0, 1, 2):
            return ITEM, "/items/999"  # 404
        if kind in (3, 4):
            return PRIVATE, "/private"  # 401
        if kind == 5:
            return WORK, "/work?status=500"
        return ITEM, f"/items/{i % 3 + 1}"

    client.burst(80, 4, plan)


def _check(console_process: ConsoleProcess, service: str, client: Recorder, source: str) -> dict[str, float]:
    rates = {}
    for route in (ITEM, PRIVATE, WORK):
        calls = client.of(route)
        row = wait_for_operation(console_process, service, route, len(calls), source=source)
        check_counts(row, calls)
        rates[route] = row["success_rate"]
    every = client.calls
    summary = console_process.summary(service)
    queries = console_process.operations(service)["item_query"]["calls"]
    assert summary["calls"] == len(every) + queries
    failed = sum(c.failed for c in every)
    assert summary["errors"] == failed
    assert summary["error_rate"] == round(failed / summary["calls"], 6)
    line = status_row(console_process, service)
    assert int(line["calls"]) == summary["calls"]
    assert line["errors"] == f"{failed / summary['calls']:.1%}"
    return rates


def test_4xx_storm_counts_as_success_from_spans_and_from_metrics(console_process: ConsoleProcess) -> None:
    """404 and 401 are successes whether the figures come from spans (before the first metric export) or metrics."""
    service = "gt-4xx"
    # No metric export until the app stops: first the console only has spans.
    with (
        monitored_app(console_process.url, service, OTEL_METRIC_EXPORT_INTERVAL="600000") as app,
        Recorder(app.base_url) as client,
    ):
        _storm(client)
        from_spans = _check(console_process, service, client, "spans")
    # The app's last metric export, at shutdown, makes metrics the source: the same figures.
    wait_for(lambda: console_process.operations(service)[ITEM]["source"] == "metrics", 30, "the metric export")
    assert _check(console_process, service, client, "metrics") == from_spans
    assert from_spans[PRIVATE] == 1.0 and from_spans[ITEM] == 1.0
