"""The example shop and its payment provider under the launcher, reporting to the console: the API's
answers (counts, error groups, funnel, health) match the traffic that was sent and the shop's own records."""

from __future__ import annotations

import os
import signal
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.traffic import TrafficReport, run_traffic
from otel_monitor.console.cli import serve
from tests.support.console_telemetry import CHROMIUM, chromium_page, get
from tests.support.launch import ROOT, LaunchedApp, launched
from tests.support.shop import OPERATION_OF

pytestmark = pytest.mark.slow

CONFIG_FILE = ROOT / "examples" / "shop" / "otel-monitor.yaml"
ARTIFACTS = ROOT / "test-artifacts" / "console-shop"
PASSWORD = "correct horse battery"
# Crashes sent on purpose, besides the ones the traffic mix happens to send.
EXTRA_CRASHES = 3


def stop_flushing(app: LaunchedApp) -> str:
    """Stop with SIGINT and wait: uvicorn re-raises a SIGTERM after its graceful shutdown, which ends
    the process before the SDK's exit flush, so the last spans and metrics would never be sent."""
    app.process.send_signal(signal.SIGINT)
    app.process.wait(30)
    return app.stop()


@dataclass
class ShopRun:
    console_url: str
    report: TrafficReport
    expected_calls: Counter[str]
    crashes: int
    declined: int
    database: Path


def _crash_on_purpose(base_url: str) -> Counter[str]:
    """One customer who browses, fills a cart, checks out with LEGACY2019 a few times, then with a declined card.

    Returns the calls per operation it made."""
    calls: Counter[str] = Counter()
    with httpx.Client(base_url=base_url, timeout=10) as client:
        signup = client.post(
            "/api/signup", json={"email": "legacy.fan@example.com", "password": PASSWORD, "name": "Lee"}
        )
        assert signup.status_code == 201, signup.text
        auth = {"Authorization": f"Bearer {signup.json()['token']}"}
        assert client.get("/api/products", headers=auth).status_code == 200
        assert client.post("/api/cart/items", json={"product_id": 1, "quantity": 1}, headers=auth).status_code == 201
        calls.update(signup=1, catalog_browse=1, cart_add=1)
    for _ in range(EXTRA_CRASHES):
        # A fresh connection each time: uvicorn closes the connection after an unhandled error.
        crashed = httpx.post(
            f"{base_url}/api/checkout",
            json={"card_token": "tok_visa", "coupon": "LEGACY2019"},
            headers=auth,
            timeout=10,
        )
        assert crashed.status_code == 500
        calls["checkout"] += 1
    declined = httpx.post(f"{base_url}/api/checkout", json={"card_token": "tok_declined"}, headers=auth, timeout=10)
    assert declined.status_code == 402
    calls["checkout"] += 1
    return calls


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory: pytest.TempPathFactory):
    """Console in-process; payments and shop under opentelemetry-instrument; seeded traffic, then a few crashes."""
    database = tmp_path_factory.mktemp("shop") / "shop.db"
    with serve(port=0, config_path=str(CONFIG_FILE), evaluate_every=3600) as console:
        common = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": console.url,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_MONITOR_CONFIG": str(CONFIG_FILE),
            "OTEL_MONITOR_HEALTH_INTERVAL": "1",
        }
        with launched(
            "examples.payments.app:app", {**common, "OTEL_SERVICE_NAME": "payments", "PAYMENTS_DELAY_MS": "0"}
        ) as payments:
            shop_env = {
                **common,
                "OTEL_SERVICE_NAME": "shop",
                "DATABASE_URL": f"sqlite:///{database}",
                "SHOP_PAYMENTS_PRIMARY_URL": f"{payments.base_url}/primary",
                "SHOP_PAYMENTS_FALLBACK_URL": f"{payments.base_url}/fallback",
                "SHOP_PASSWORD_ITERATIONS": "1000",
                "OTEL_MONITOR_USER_ID_KEY": "test-key",
            }
            with launched("examples.shop.app:app", shop_env) as shop:
                report = run_traffic(shop.base_url, requests=240, duration=90, concurrency=3, seed=20261123)
                extra = _crash_on_purpose(shop.base_url)
                output = stop_flushing(shop)
            stop_flushing(payments)
        # uvicorn closes a connection after an unhandled error; a request already sent on it is
        # dropped unanswered, before the app sees it. Nothing else may fail in transport.
        assert sum(report.transport_errors.values()) <= report.by_status[500], f"{report.summary()}\n{output[-3000:]}"
        unknown = set(report.by_endpoint) - set(OPERATION_OF)
        assert not unknown, f"the traffic called endpoints this test does not map: {unknown}"
        expected = Counter({OPERATION_OF[endpoint]: n for endpoint, n in report.answered_by_endpoint.items()}) + extra
        yield ShopRun(
            console.url, report, expected, report.by_status[500] + EXTRA_CRASHES, report.by_status[402] + 1, database
        )


def api(run: ShopRun, path: str) -> Any:
    return get(f"{run.console_url}{path}")


def test_operation_counts_equal_the_requests_sent(shop_run: ShopRun) -> None:
    """/api/operations gives, per operation of the shop, exactly as many calls as requests the shop answered."""
    rows = api(shop_run, "/api/operations?service=shop")["operations"]
    requests = {row["operation"]: row["calls"] for row in rows if row["operation"] in OPERATION_OF.values()}
    assert requests == dict(shop_run.expected_calls)
    assert all(row["source"] == "metrics" for row in rows)


def test_operations_inside_requests_are_listed_too(shop_run: ShopRun) -> None:
    """The shop's own operations (catalog load on a cache miss, each payment provider call) have rows of their own."""
    rows = {row["operation"]: row for row in api(shop_run, "/api/operations?service=shop")["operations"]}
    assert set(rows) - set(OPERATION_OF.values()) == {"catalog_load", "payment_authorize"}
    # The provider was healthy: each declined card (402) is the only failed provider call, in the config's category.
    payment = rows["payment_authorize"]
    assert payment["errors"] == shop_run.declined and payment["calls"] > shop_run.declined
    assert payment["error_categories"] == {"payment_declined": shop_run.declined}


def test_operation_failures_equal_the_server_errors_sent(shop_run: ShopRun) -> None:
    """Checkout's errors and success rate count the 500s (the crashes), not the 4xx answers such as declined cards."""
    checkout = next(
        r for r in api(shop_run, "/api/operations?service=shop")["operations"] if r["operation"] == "checkout"
    )
    assert checkout["errors"] == shop_run.crashes
    assert checkout["success_rate"] == pytest.approx(
        1 - shop_run.crashes / shop_run.expected_calls["checkout"], abs=1e-6
    )
    assert checkout["error_categories"] == {"bug": shop_run.crashes}


def test_the_legacy_coupon_crash_is_one_error_group_with_its_count(shop_run: ShopRun) -> None:
    """Every LEGACY2019 crash lands in one error group (category bug, operation checkout) counted once per crash."""
    groups = [g for g in api(shop_run, "/api/errors?service=shop")["errors"] if g["category"] == "bug"]
    assert len(groups) == 1, groups
    group = groups[0]
    assert (group["operation"], group["count"]) == ("checkout", shop_run.crashes)
    assert len(group["fingerprint"]) == 16 and group["error_type"]
    assert "discount" in group["stacktrace"] and group["trace_ids"]


def test_purchase_funnel_counts_the_users_the_shop_recorded(shop_run: ShopRun) -> None:
    """The purchase funnel's users per step are the shop's accounts that reached each step, read from its database."""
    with sqlite3.connect(shop_run.database) as db:
        recorded = db.execute(
            "SELECT count(*), count(first_browse_at), count(first_add_to_cart_at), count(first_purchase_at) FROM users"
        ).fetchone()
    funnel = next(f for f in api(shop_run, "/api/funnels?service=shop")["funnels"] if f["journey"] == "purchase")
    assert [step["step"] for step in funnel["steps"]] == [
        "signup",
        "first_browse",
        "first_add_to_cart",
        "first_purchase",
    ]
    assert tuple(step["users"] for step in funnel["steps"]) == recorded
    assert recorded[0] >= 5 and recorded[3] >= 1, "the traffic should have created customers who bought"
    steps = funnel["steps"]
    assert steps[3]["conversion_from_previous"] == pytest.approx(recorded[3] / recorded[2], abs=1e-4)


def test_health_shows_the_shops_checks_with_uptime(shop_run: ShopRun) -> None:
    """/api/health lists the shop's database (critical) and payments (not critical) checks, up all along."""
    checks = {c["check"]: c for c in api(shop_run, "/api/health?service=shop")["checks"]}
    assert {"database", "payments"} <= set(checks)
    assert (checks["database"]["critical"], checks["payments"]["critical"]) == (True, False)
    for name in ("database", "payments"):
        assert (checks[name]["state"], checks[name]["uptime"]) == ("up", 1.0)
    # The config file's shared disk check reaches the console once, beside the shop's own.
    assert "disk" in checks and checks["disk"]["instances"] == 1


# --- in the browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(shop_run: ShopRun):
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Debian's chromium: apt-get install chromium")
    with chromium_page(ARTIFACTS) as page:
        yield page


def _open(page: Any, run: ShopRun, view: str) -> None:
    page.goto(f"{run.console_url}/#/{view}")
    page.wait_for_selector(f"body[data-ready='{view}']")
    page.screenshot(path=str(ARTIFACTS / f"{view}.png"), full_page=True)


@pytest.mark.browser
def test_overview_shows_the_shops_calls_and_errors(page: Any, shop_run: ShopRun) -> None:
    """The overview's card for the shop shows every call of its operations and the error rate of the crashes."""
    _open(page, shop_run, "overview")
    section = page.locator("[data-testid='service-shop']")
    # Every call of every operation: the requests and the operations inside them.
    calls = sum(row["calls"] for row in api(shop_run, "/api/operations?service=shop")["operations"])
    assert calls > sum(shop_run.expected_calls.values())
    assert section.locator("[data-testid='calls']").inner_text() == str(calls)
    errors = shop_run.crashes + shop_run.declined  # crashes, and the provider calls of declined cards
    assert section.locator("[data-testid='error-rate']").inner_text() == f"{errors / calls * 100:.1f}%"
    assert page.locator("[data-testid='service-payments']").is_visible()


@pytest.mark.browser
def test_health_page_shows_the_shops_checks_with_uptime(page: Any, shop_run: ShopRun) -> None:
    """The Health page has a row per shop check, up, with 100.0% uptime."""
    _open(page, shop_run, "health")
    for check in ("database", "payments"):
        row = page.locator(f"[data-testid='check-shop-{check}']")
        assert row.locator("[data-testid='status']").inner_text().lower() == "up"
        assert row.locator("[data-col='uptime']").inner_text() == "100.0%"


@pytest.mark.browser
def test_errors_and_journeys_pages_render_the_shops_data(page: Any, shop_run: ShopRun) -> None:
    """The Errors page shows the crash group's count; the Journeys page the purchase funnel (screenshots)."""
    _open(page, shop_run, "errors")
    group = next(g for g in api(shop_run, "/api/errors?service=shop")["errors"] if g["category"] == "bug")
    row = page.locator(f"[data-testid='error-{group['fingerprint']}'] [data-col='count']")
    assert row.inner_text().strip() == str(shop_run.crashes)
    _open(page, shop_run, "journeys")
    assert page.locator("[data-testid='funnel-purchase']").is_visible()
