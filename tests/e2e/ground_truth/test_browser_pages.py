"""The browser pages against the truth: what headless Chromium shows on the overview, the operations table
and the operation's own page, read as text, compared with the client's record of every call.

Counts and success rates must be exact (to the page's one-decimal percentages); percentiles within the
console's stated relative error of the truth and inside the observed min and max; throughput within 5 % of
the calls the client made in the window the console used.  The page rounds what it shows, so each check
allows half a unit of the figure as displayed.  The app is stopped before the pages are read: its last metric
export is in, and nothing changes the figures while the page is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.ground_truth.support import (
    Call,
    ConsoleProcess,
    Recorder,
    check_latency,
    check_throughput,
    monitored_app,
    wait_for_operation,
)
from tests.support.console_telemetry import CHROMIUM, chromium_page

pytestmark = [pytest.mark.slow, pytest.mark.browser]

WORK = "GET /work"
SERVICE = "gt-browser"


# --- reading what the page shows -----------------------------------------------------------------
def shown_seconds(text: str) -> tuple[float, float]:
    """A duration as the page prints it ("420 µs", "12.3 ms", "2.50 s"): seconds, and half its last digit."""
    match = re.fullmatch(r"([\d.]+) (µs|ms|s)", text.strip())
    assert match, f"not a duration: {text!r}"
    number, unit = match.groups()
    scale = {"µs": 1e-6, "ms": 1e-3, "s": 1.0}[unit]
    decimals = len(number.partition(".")[2])
    return float(number) * scale, 0.5 * 10**-decimals * scale


def shown_rate(text: str) -> tuple[float, float]:
    """A rate as the page prints it ("27.49/s"), and half its last digit."""
    match = re.fullmatch(r"([\d.]+)/s", text.strip())
    assert match, f"not a rate: {text!r}"
    return float(match.group(1)), 0.005


def pct(x: float) -> str:
    """The page's percentage (app.js fmt.pct)."""
    return f"{x * 100:.1f}%"


def _truth(calls: Sequence[Call]) -> tuple[int, int]:
    return len(calls), sum(c.failed for c in calls)


def _latencies(calls: Sequence[Call]) -> tuple[list[float], list[float]]:
    return [c.server["work"] for c in calls], [c.latency for c in calls]


def _check_shown_latency(
    page: Any, cells: str, names: Sequence[str], answer: Mapping[str, Any], calls: Sequence[Call]
) -> None:
    """The durations shown in ``cells`` (a selector with ``{}`` for the name) within the stated error of the
    truth and inside [min, max]."""
    shown: dict[str, Any] = {}
    slack = 2e-6
    for name in names:
        value, half = shown_seconds(page.locator(cells.format(name)).inner_text())
        shown[name] = value
        slack = max(slack, half)
    # The bound and the extremes the page does not show come from the answer the page rendered.
    shown.setdefault("min", answer["min"])
    shown.setdefault("max", answer["max"])
    shown["percentile_error"] = answer["percentile_error"]
    inner, outer = _latencies(calls)
    check_latency(shown, inner, outer, slack=slack)


def _check_shown_throughput(text: str, answer: Mapping[str, Any], calls: Sequence[Call]) -> None:
    value, half = shown_rate(text)
    check_throughput({**answer, "throughput_per_s": value}, calls, slack=half)


# --- the scenario ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Debian's chromium ({CHROMIUM}): apt-get install chromium")
    with chromium_page(tmp_path_factory.mktemp("browser")) as page:
        yield page


@pytest.fixture(scope="module")
def traffic(console_process: ConsoleProcess) -> list[Call]:
    """20 requests/s for 3 s to GET /work: 1 in 10 answered 500, 1 in 10 answered 404, durations 1-9 ms."""

    def plan(i: int) -> tuple[str, str]:
        status = 500 if i % 10 == 0 else 404 if i % 10 == 1 else 200
        return WORK, f"/work?ms={1 + (i % 5) * 2}&status={status}"

    with monitored_app(console_process.url, SERVICE) as app, Recorder(app.base_url) as client:
        calls = client.steady(20, 3, plan)
    # Stopped: its last export is in and nothing moves the figures any more.
    wait_for_operation(console_process, SERVICE, WORK, len(calls), source="metrics")
    return calls


def _open(page: Any, console_process: ConsoleProcess, view: str, api_path: str) -> dict[str, Any]:
    """Open a view; the answer of ``api_path`` the page rendered."""
    with page.expect_response(lambda r: api_path in r.url and r.status == 200) as answer:
        page.goto(f"{console_process.url}/?service={SERVICE}#/{view}")
    page.wait_for_selector(f"body[data-ready='{view.split('/')[0]}']")
    return answer.value.json()


def test_overview_shows_the_truth(page: Any, console_process: ConsoleProcess, traffic: list[Call]) -> None:
    """Overview: calls and error rate exact, p50/p95/p99/min/max and throughput within the stated tolerances."""
    answer = next(
        s for s in _open(page, console_process, "overview", "/api/summary")["services"] if s["service"] == SERVICE
    )
    section = page.locator(f"[data-testid='service-{SERVICE}']")
    calls, failed = _truth(traffic)
    assert section.locator("[data-testid='calls']").inner_text() == str(calls) == "60"
    assert section.locator("[data-testid='error-rate']").inner_text() == pct(failed / calls) == "10.0%"
    cells = f"[data-testid='service-{SERVICE}'] [data-testid='{{}}']"
    _check_shown_latency(page, cells, ("p50", "p95", "p99", "min", "max"), answer, traffic)
    _check_shown_throughput(section.locator("[data-testid='throughput']").inner_text(), answer, traffic)


def test_operations_table_shows_the_truth(page: Any, console_process: ConsoleProcess, traffic: list[Call]) -> None:
    """Operations table: calls and success rate exact, p50/p95/p99/max within the stated tolerances."""
    answer = next(
        r for r in _open(page, console_process, "operations", "/api/operations")["operations"] if r["operation"] == WORK
    )
    row = f"tr[data-testid='op-{SERVICE}-{WORK}']"
    calls, failed = _truth(traffic)
    assert page.locator(f"{row} [data-col='calls']").inner_text() == str(calls)
    assert page.locator(f"{row} [data-col='success']").inner_text() == pct((calls - failed) / calls) == "90.0%"
    assert page.locator(f"{row} [data-col='error']").inner_text() == pct(answer["percentile_error"])
    _check_shown_latency(page, row + " [data-col='{}']", ("p50", "p95", "p99", "max"), answer, traffic)


def test_operation_page_shows_the_truth(page: Any, console_process: ConsoleProcess, traffic: list[Call]) -> None:
    """The operation's page: calls and success rate exact, percentiles, min, max and throughput within tolerance."""
    answer = next(
        r
        for r in _open(page, console_process, f"operation/{quote(WORK, safe='')}", "/api/operations/")["rows"]
        if r["service"] == SERVICE
    )
    calls, failed = _truth(traffic)
    assert page.locator("[data-testid='calls']").inner_text() == str(calls)
    assert page.locator("[data-testid='success']").inner_text() == pct((calls - failed) / calls)
    _check_shown_latency(page, "#view [data-testid='{}']", ("p50", "p95", "p99", "min", "max"), answer, traffic)
    _check_shown_throughput(page.locator("[data-testid='throughput']").inner_text(), answer, traffic)
