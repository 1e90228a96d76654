"""In Chromium: the 7d and 30d windows (--db roll-ups) on the overview and operations, the note on other
pages, and the overview's queues; every figure read back from the API."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from otel_monitor import queues
from otel_monitor.console.cli import serve
from tests.support.console_telemetry import CHROMIUM, chromium_page, get, meter
from tests.support.otlp_spans import spans_request

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
DAY_NS = 24 * 3600 * 10**9

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Debian's chromium: apt-get install chromium")
    db = tmp_path_factory.mktemp("console") / "console.db"
    now = time.time_ns()
    with serve(port=0, db=str(db), evaluate_every=3600) as handle:
        handle.wait_replayed()
        receive = handle.console.receive
        receive(
            "traces", spans_request("shop", "checkout", now - 3 * DAY_NS, [0.2] * 6), "application/x-protobuf", None
        )
        receive(
            "traces", spans_request("shop", "checkout", now - 20 * DAY_NS, [0.2] * 5), "application/x-protobuf", None
        )
        receive(
            "traces",
            spans_request("shop", "checkout", now - 60 * 10**9, [0.2] * 3, True),
            "application/x-protobuf",
            None,
        )
        handle.console.hourly.compact(handle.console.store, now)
        try:
            with meter(handle.url) as (_, provider):
                queues.watch_queue("order_emails", lambda: 42, meter_provider=provider)
                provider.force_flush()
        finally:
            queues.unwatch_queue("order_emails")
        yield handle


@pytest.fixture(scope="module")
def page(console):
    with chromium_page(ARTIFACTS) as page:
        yield page


def _choose(page, console, view: str, window: str) -> None:
    page.goto(f"{console.url}/#/{view}")
    page.wait_for_selector(f"body[data-ready='{view}']")
    page.wait_for_selector(f"#window option[value='{window}']:not([disabled])", state="attached")
    page.select_option("#window", window)
    page.wait_for_selector("[data-testid='long-window-note']")


def test_seven_and_thirty_days_on_the_overview_are_the_rollups(page, console):
    """Choosing 7d then 30d, the overview's calls and error rate are the API's for that window (9, then 14)."""
    for window, calls in (("7d", 9), ("30d", 14)):
        _choose(page, console, "overview", window)
        page.wait_for_selector(f"[data-testid='service-shop'] [data-testid='calls'] >> text='{calls}'")
        svc = get(f"{console.url}/api/summary?window={window}")["services"][0]
        assert svc["calls"] == calls and svc["errors"] == 3
        error_rate = page.locator("[data-testid='service-shop'] [data-testid='error-rate']").inner_text()
        assert error_rate == f"{svc['error_rate'] * 100:.1f}%"
        # Points are hourly roll-ups merged in steps of 3 hours (7d) or 12 (30d): the charts say so.
        step = {"7d": "3 h", "30d": "12 h"}[window]
        assert page.locator(f"[data-testid='service-shop'] svg[aria-label^='calls per {step}']").count() == 1
        page.screenshot(path=str(ARTIFACTS / f"overview_{window}.png"), full_page=True)


def test_the_operations_table_answers_seven_days(page, console):
    """The operations page at 7d shows the roll-ups' calls and success rate."""
    _choose(page, console, "operations", "7d")
    row = get(f"{console.url}/api/operations?window=7d")["operations"][0]
    cells = "[data-testid='op-shop-checkout']"
    page.wait_for_selector(f"{cells} [data-col='calls'] >> text='9'")
    assert page.locator(f"{cells} [data-col='success']").inner_text() == f"{row['success_rate'] * 100:.1f}%"


def test_other_pages_say_they_show_the_last_day(page, console):
    """The errors page with 7d chosen asks the API for 24h and says so, without an error."""
    _choose(page, console, "errors", "7d")
    note = page.locator("[data-testid='long-window-note']").inner_text()
    assert "shows the last 24h" in note
    assert page.locator(".error-box").count() == 0


def test_the_overview_lists_the_queues(page, console):
    """The shop's order_emails queue: 42 waiting, from the queue gauge."""
    _choose(page, console, "overview", "7d")
    row = "[data-testid='queue-order_emails']"
    page.wait_for_selector(row)
    assert page.locator(f"{row} [data-col='depth']").inner_text() == "42"
    assert page.locator(f"{row} [data-testid='status']").text_content() == "ok"  # under QueueDepthHigh's 500
    assert get(f"{console.url}/api/summary")["services"][0]["queues"][0]["depth"] == 42
