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


def _check(
    console_process: ConsoleProcess, service: str, client: Recorder, source: str, client_errors_fail: bool = False
) -> dict[str, float]:
    rates = {}
    for route in (ITEM, PRIVATE, WORK):
        calls = client.of(route)
        row = wait_for_operation(console_process, service, route, len(calls), source=source)
        check_counts(row, calls, client_errors_fail)
        rates[route] = row["success_rate"]
    every = client.calls
    summary = console_process.summary(service)
    queries = console_process.operations(service)["item_query"]["calls"]
    assert summary["calls"] == len(every) + queries
    failed = sum(c.fails(client_errors_fail) for c in every)
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


def test_4xx_storm_fails_when_configured(console_process: ConsoleProcess) -> None:
    """OTEL_MONITOR_CLIENT_ERRORS_FAIL=true: every 404 and 401 is a failure, from spans and from metrics alike,
    in the operations, the summary, `otel-monitor status` and the error groups."""
    service = "gt-4xx-fail"
    with (
        monitored_app(
            console_process.url, service, OTEL_METRIC_EXPORT_INTERVAL="600000", OTEL_MONITOR_CLIENT_ERRORS_FAIL="true"
        ) as app,
        Recorder(app.base_url) as client,
    ):
        _storm(client)
        from_spans = _check(console_process, service, client, "spans", client_errors_fail=True)
    wait_for(lambda: console_process.operations(service)[ITEM]["source"] == "metrics", 30, "the metric export")
    assert _check(console_process, service, client, "metrics", client_errors_fail=True) == from_spans
    assert from_spans[PRIVATE] == 0.0
    not_found = sum(c.status == 404 for c in client.calls)
    assert from_spans[ITEM] == round(1 - not_found / len(client.of(ITEM)), 6)
    groups = console_process.api("/api/errors", service=service)["errors"]
    by_status = {status: sum(g["requests"] for g in groups if g["error_type"] == str(status)) for status in (401, 404)}
    assert by_status == {401: sum(c.status == 401 for c in client.calls), 404: not_found}
